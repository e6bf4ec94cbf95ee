"""Data-free distillation: the generator's images, its training rounds and pool, and the guarantee
that the distill pass hands the student no training image (a dataset that raises on any read of
its images or labels still distils)."""
import numpy as np
import pytest
import torch
from torch import nn

from edgebench.compress import Candidate, Context
from edgebench.compress.distill import DistillPass, imageless
from edgebench.compress.losses.synthesis import balanced_labels, masked_disagreement, pair_diversity
from edgebench.models.data import IMAGENET_MEAN, IMAGENET_STD, Dataset, Split
from edgebench.models.zoo import build_module, resolve_model

SMALL = {"width": 4, "latent": 8, "batch": 10, "warmup": 2, "generator_steps": 2, "round_every": 1}


def _cnn(width: int, classes: int = 5) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, classes))


def _models():
    torch.manual_seed(0)
    return _cnn(4).train(), _cnn(16).eval()


def _loss(student, teacher, **options):
    sample = np.zeros((2, 3, 16, 16), np.float32)
    loss_fn, extra, cleanup = DistillPass({"losses": [{"name": "datafree", "options": {**SMALL, **options}}]}).objective(
        student, teacher, sample)
    return loss_fn, extra, cleanup, loss_fn.modules[0]


def _pixels(x):
    return x * torch.from_numpy(IMAGENET_STD) + torch.from_numpy(IMAGENET_MEAN)


def test_the_generator_draws_balanced_classes_in_the_inputs_range_and_one_channel_when_gray():
    student, teacher = _models()
    for gray in (True, False):
        _, _, cleanup, loss = _loss(student, teacher, gray=gray, batch=23)
        fake = loss.synthesize(23)
        cleanup()
        assert fake.shape == (23, 3, 16, 16)
        pixels = _pixels(fake)
        assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5  # the real inputs' range, not zero-mean noise
        assert torch.allclose(pixels[:, 0], pixels[:, 2], atol=1e-5) == gray
        counts = torch.bincount(loss.synthesizer.pool_labels[:len(loss.synthesizer)], minlength=5)
        assert counts.max() - counts.min() <= 2  # class-balanced targets (each half within one)
    labels = balanced_labels(20, 5)
    assert torch.equal(labels[:10], labels[10:]) and sorted(labels[:10].tolist()) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert len(balanced_labels(7, 5)) == 7


def test_generator_steps_lower_its_loss_on_a_fixed_batch():
    student, teacher = _models()
    _, _, cleanup, loss = _loss(student, teacher, adversarial=0.0, generator_lr=1e-2)
    synthesizer = loss.synthesizer
    torch.manual_seed(1)
    z, labels = torch.randn(20, synthesizer.generator.latent), balanced_labels(20, 5)
    values = []
    for _ in range(25):
        synthesizer.step(z, labels)
        values.append(synthesizer.last_terms["bn"] + synthesizer.last_terms["one_hot"])
    cleanup()
    assert np.isfinite(values).all() and np.mean(values[-5:]) < np.mean(values[:5]), values


def test_synthesis_leaves_the_teacher_and_the_students_gradients_alone():
    """The generator trains inside the student's step, after the loop cleared the gradients: it must
    leave none on the student (the loop would apply them) and change nothing in the teacher."""
    student, teacher = _models()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    loss_fn, extra, cleanup, loss = _loss(student, teacher)
    for _ in range(3):
        loss.synthesize(8)
        assert all(p.grad is None for p in student.parameters())
        assert student.training  # its mode restored after the generator's adversarial pass
    cleanup()
    assert not teacher.training and all(p.grad is None for p in teacher.parameters())
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())  # weights and BN statistics
    assert not any(p is q for p in extra for q in [*teacher.parameters(), *loss.generator.parameters()])
    assert {"bn", "one_hot", "adversarial", "teacher_agrees"} <= set(loss.last_terms)


def test_rounds_fill_a_bounded_pool_oldest_first():
    student, teacher = _models()
    _, _, cleanup, loss = _loss(student, teacher, pool=25, batch=10, round_every=2)
    for _ in range(5):
        loss.synthesize(4)
    cleanup()
    synthesizer = loss.synthesizer
    assert synthesizer.generator_steps == 2 + 3 * 2  # warmup, then a round every second student step
    assert len(synthesizer) == 25 and synthesizer.next_slot == 5  # 30 images made, the oldest 5 overwritten


def test_pair_diversity_is_zero_for_a_generator_that_ignores_its_noise():
    z = torch.randn(8, 4)
    same = torch.rand(1, 1, 6, 6).expand(8, -1, -1, -1)
    assert pair_diversity(same, z) == 0
    assert pair_diversity(torch.rand(8, 1, 6, 6), z) > 0


def test_masked_disagreement_counts_only_images_both_models_classify_alike():
    teacher = torch.tensor([[3.0, 0.0], [3.0, 0.0]])
    student = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # agrees on the first image, not on the second
    kl_first = torch.nn.functional.kl_div(torch.log_softmax(student[:1], 1), torch.softmax(teacher[:1], 1),
                                          reduction="sum")
    assert torch.isclose(masked_disagreement(student, teacher), kl_first / 2)
    assert abs(float(masked_disagreement(teacher, teacher))) < 1e-6


class _Unreadable(Split):
    """A split whose images and labels raise when anything reads them; only their count is known."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    @property
    def x(self):
        raise AssertionError("a training image was read")

    @property
    def y(self):
        raise AssertionError("a training label was read")


def test_the_distill_pass_reads_no_training_image_or_label(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEBENCH_CACHE", str(tmp_path / "cache"))  # a cache hit would skip the training
    torch.manual_seed(0)
    teacher = build_module(resolve_model("tiny-cnn"), 5).eval()
    data = Dataset("unreadable", [str(i) for i in range(5)], 16, _Unreadable(40), _Unreadable(8), _Unreadable(8),
                   grayscale=True)
    ctx = Context(dataset=data, baseline=Candidate("baseline", module=teacher), model_source=resolve_model("tiny-cnn"),
                  work_dir=tmp_path, train_epochs=1.0, seed=0)
    config = {"student": "tiny-cnn-small", "losses": [{"name": "datafree", "options": {**SMALL, "steps": 6}}]}
    out = DistillPass(config).apply(ctx.baseline, ctx)
    torch.manual_seed(0)
    untrained = build_module(resolve_model("tiny-cnn-small"), 5)
    assert not torch.equal(out.module[0].weight, untrained[0].weight)  # it trained
    assert torch.isfinite(out.module(torch.zeros(2, 3, 16, 16))).all()
    assert any("data-free" in note and "no training image" in note for note in out.notes)


def test_imageless_keeps_what_the_pass_needs_and_no_image():
    data = Dataset("d", ["a", "b"], 8, Split(np.ones((6, 3, 8, 8), np.float32), np.ones(6, np.int64)),
                   Split(np.ones((2, 3, 8, 8), np.float32), np.ones(2, np.int64)),
                   Split(np.ones((3, 3, 8, 8), np.float32), np.ones(3, np.int64)), grayscale=True)
    blank = imageless(data)
    assert (blank.name, blank.classes, blank.input_shape, len(blank.train), blank.grayscale) == \
        ("d", ["a", "b"], (1, 3, 8, 8), 6, True)
    assert not any(split.x.any() or split.y.any() for split in (blank.train, blank.calib, blank.eval))


@pytest.mark.parametrize("option", [{"batch": 0}, {"round_every": 0}, {"warmup": -1}])
def test_bad_schedule_options_are_one_line_errors(option):
    from edgebench.core.errors import UsageError

    student, teacher = _models()
    with pytest.raises(UsageError, match="datafree"):
        _loss(student, teacher, **option)
