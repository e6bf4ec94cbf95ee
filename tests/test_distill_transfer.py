"""A transfer set for the distill pass: unlabelled images that each epoch also trains on, with the
teacher's outputs as the only targets; never an image of the eval split; a setting of the run."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from edgebench.compress.base import Candidate, Context
from edgebench.compress.distill import DistillPass
from edgebench.core.errors import NotFoundError, RunSettingsMismatch, UsageError
from edgebench.models.data import Dataset, Split, TransferSet, load_dataset
from edgebench.models.train import TrainConfig, fit
from edgebench.models.transfer import load_transfer_set, shared_images
from edgebench.models.zoo import build_module, resolve_model


def _teacher(classes: int = 10):
    torch.manual_seed(0)
    return build_module(resolve_model("tiny-cnn"), classes).eval()


@pytest.mark.parametrize("name", ["kd", "fitnet", "sp", "dml", "byot", "adversarial"])
def test_a_transfer_batch_trains_the_student_without_labels(name):
    """Labels None: no cross-entropy, every loss still gives the student a gradient (DML's peer and
    BYOT's heads, which read labels, fall back to the softened outputs)."""
    teacher = _teacher()
    student = build_module(resolve_model("tiny-cnn-small"), 10).train()
    x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    loss_fn, _, cleanup = DistillPass({"losses": [{"name": name}]}).objective(student, teacher, x[:2].numpy(),
                                                                            new_student=True)
    try:
        loss = loss_fn(student, x, None)
        loss.backward()
    finally:
        cleanup()
    assert torch.isfinite(loss)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())


def test_each_epoch_also_runs_over_the_unlabelled_images_with_labels_none():
    rng = np.random.default_rng(0)
    labelled = Split(rng.standard_normal((64, 3, 16, 16)).astype(np.float32), rng.integers(0, 2, 64))
    unlabelled = rng.standard_normal((96, 3, 16, 16)).astype(np.float32) + 100  # told apart by their values
    seen = []

    def loss_fn(model, x, y):
        seen.append("unlabelled" if y is None else "labelled")
        if y is None:
            assert float(x.mean()) > 50  # a transfer batch holds transfer images only
        return model(x).logsumexp(1).mean()

    torch.manual_seed(0)
    model = build_module(resolve_model("tiny-cnn-small"), 2)
    fit(model, labelled, TrainConfig(epochs=2, batch_size=32), loss_fn=loss_fn, unlabelled=unlabelled)
    assert seen.count("labelled") == 4 and seen.count("unlabelled") == 6  # 2 + 3 batches an epoch, 2 epochs
    assert seen != 2 * (2 * ["labelled"] + 3 * ["unlabelled"])  # shuffled in, not a block after each epoch
    with pytest.raises(UsageError, match="needs a loss"):
        fit(model, labelled, TrainConfig(epochs=1), unlabelled=unlabelled)  # cross-entropy needs labels


def _distill(dataset, tmp_path, transfer=None):
    teacher = Candidate("baseline", module=_teacher(dataset.num_classes))
    dataset = Dataset(dataset.name, dataset.classes, dataset.input_size, dataset.train, dataset.calib,
                      dataset.eval, transfer=transfer)
    ctx = Context(dataset=dataset, baseline=teacher, model_source=resolve_model("tiny-cnn"), work_dir=tmp_path,
                  train_epochs=0.3, seed=0)
    return DistillPass({"student": "tiny-cnn-small"}).apply(teacher, ctx)


def test_a_run_with_a_transfer_set_differs_from_one_without_and_says_so(digits, tmp_path):
    rng = np.random.default_rng(1)
    transfer = TransferSet("imagefolder:unlabelled", rng.standard_normal((256, 3, 32, 32)).astype(np.float32))
    plain = _distill(digits, tmp_path)
    taught = _distill(digits, tmp_path, transfer)
    assert any(not torch.equal(a, b) for a, b in zip(plain.module.state_dict().values(),
                                                      taught.module.state_dict().values()))
    assert "256 unlabelled transfer images (imagefolder:unlabelled)" in taught.notes[-1]
    assert "transfer" not in plain.notes[-1]
    assert taught.lineage[-1]["transfer"] == {"source": "imagefolder:unlabelled", "images": 256}
    from edgebench.report.table import lineage_text

    assert "transfer=256 images of imagefolder:unlabelled" in lineage_text(taught.lineage)


def test_built_in_transfer_images_are_disjoint_from_the_eval_split(digits):
    transfer = load_transfer_set("auto", digits)  # mnist's scans for the digits data
    assert transfer.source == "mnist" and len(transfer) == 5000
    assert transfer.x.shape[1:] == digits.eval.x.shape[1:]
    assert shared_images(transfer.x, digits.eval) == []
    assert shared_images(digits.eval.x[:3], digits.eval) == [0, 1, 2]  # the check does find a shared image
    with pytest.raises(UsageError, match="labelled data itself"):
        load_transfer_set("digits", digits)


def _write_images(folder: Path, count: int, seed: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(folder / f"{i}.png")


def test_a_folder_of_images_is_a_transfer_set_unless_it_holds_eval_images(tmp_path):
    for i, cls in enumerate(["cat", "dog"]):
        _write_images(tmp_path / "labelled" / cls, 10, seed=i)
    _write_images(tmp_path / "unlabelled", 6, seed=7)  # flat: no class sub-folders
    data = load_dataset(f"imagefolder:{tmp_path / 'labelled'}", input_size=16)
    transfer = load_transfer_set(f"imagefolder:{tmp_path / 'unlabelled'}", data)
    assert len(transfer) == 6 and transfer.x.shape == (6, 3, 16, 16) and transfer.source == "imagefolder:unlabelled"
    with pytest.raises(UsageError, match="also in the eval split"):
        load_transfer_set(f"imagefolder:{tmp_path / 'labelled'}", data)  # labels ignored, but eval images inside
    with pytest.raises(NotFoundError, match="does not exist"):
        load_transfer_set(f"imagefolder:{tmp_path / 'missing'}", data)
    with pytest.raises(UsageError, match="auto needs built-in"):
        load_transfer_set("auto", data)
    with pytest.raises(UsageError, match="unknown --transfer-data 'images.zip'"):
        load_transfer_set("images.zip", data)


def test_the_transfer_setting_separates_runs_and_blocks_a_mixed_resume(tmp_path):
    from edgebench.compare import CompareOptions
    from edgebench.core.sessions import start_session
    from edgebench.core.store import RunStore

    plain, taught = CompareOptions(model="tiny-cnn"), CompareOptions(model="tiny-cnn", transfer_data="auto")
    assert plain.run_id("tiny-cnn", "host") != taught.run_id("tiny-cnn", "host")

    def session(store, opts):
        from dataclasses import asdict

        return start_session(store, {"options": {k: str(v) if isinstance(v, Path) else v
                                                 for k, v in asdict(opts).items()}}, {}, "code")

    with RunStore(tmp_path / "run") as store:
        session(store, taught)
        assert store.run_info()["sessions"][0]["settings"]["transfer_data"] == "auto"
        with pytest.raises(RunSettingsMismatch, match="transfer_data auto -> None"):
            session(store, plain)


def _distillation_benchmark():
    from helpers.benchmark_module import load_benchmark

    return load_benchmark("distillation")


def test_the_benchmarks_transfer_images_are_neither_eval_nor_the_students_labelled_images(digits):
    from types import SimpleNamespace

    bench = _distillation_benchmark()
    transfer = bench.transfer_pool(digits, 500, 600)
    assert len(transfer) == 600
    assert shared_images(transfer.x, digits.eval) == []
    assert shared_images(transfer.x, Split(digits.train.x[:500], digits.train.y[:500])) == []
    with pytest.raises(UsageError, match="beyond the student's 500"):
        bench.transfer_pool(digits, 500, len(digits.train))
    args = SimpleNamespace(losses=["kd", "at", "datafree"], transfer_losses=["all"], transfer_images=3000)
    assert bench.transfer_losses(args) == ["kd", "at"]  # a data-free student sees no real image at all
    assert bench.transfer_losses(SimpleNamespace(**{**vars(args), "transfer_images": 0})) == []


@pytest.mark.parametrize("recipe", [
    ("prune", {"ratio": 0.5, "epochs": 0.1}),
    ("sparsify", {"sparsity": 0.5, "epochs": 0.1}),
])
def test_a_kd_recovery_also_trains_on_the_transfer_set_and_says_so(recipe, digits, tmp_path):
    """Prune, sparsify, separable and lowrank recover by distilling from the model before the rewrite:
    with a transfer set, that teacher labels its images too; without KD (labels alone) it is unused."""
    from edgebench.compress import PASSES

    name, config = recipe
    teacher = _teacher()
    base = Candidate("baseline", module=teacher, lineage=({"pass": "baseline", "config": {}},))
    transfer = TransferSet("imagefolder:unlabelled",
                           np.random.default_rng(2).standard_normal((128, 3, 32, 32)).astype(np.float32))

    def build(dataset, **change):
        ctx = Context(dataset=dataset, baseline=base, model_source=resolve_model("tiny-cnn"), work_dir=tmp_path, seed=0)
        return PASSES.get(name)({**config, **change}).apply(base, ctx)

    plain, taught = build(digits), build(replace(digits, transfer=transfer))
    assert any(not torch.equal(a, b) for a, b in zip(plain.module.state_dict().values(),
                                                      taught.module.state_dict().values()))
    assert any("128 unlabelled transfer images (imagefolder:unlabelled)" in note for note in taught.notes)
    assert taught.lineage[-1]["transfer"] == {"source": "imagefolder:unlabelled", "images": 128}
    assert "transfer" not in plain.lineage[-1] and "transfer" not in plain.notes[-1]
    labels_only = build(replace(digits, transfer=transfer), distill=False)
    assert "transfer" not in labels_only.lineage[-1] and "transfer" not in labels_only.notes[-1]


class _FirstPixels(torch.nn.Module):
    """A stand-in teacher whose answer is the brightest of an image's first ten pixels."""

    def forward(self, x):
        return x.flatten(1)[:, :10]


def test_a_transfer_set_the_teacher_answers_with_one_class_is_flagged_in_the_note():
    from edgebench.compress.transfer_set import skew_warning

    rng = np.random.default_rng(3)
    train = rng.standard_normal((300, 3, 8, 8)).astype(np.float32)
    alike = rng.standard_normal((300, 3, 8, 8)).astype(np.float32)
    unlike = alike.copy()
    unlike[:, 0, 0, 3] += 100  # another domain: the teacher answers class 3 for all of them
    classes = [str(i) for i in range(10)]
    assert skew_warning(_FirstPixels(), alike, train, classes) is None
    warning = skew_warning(_FirstPixels(), unlike, train, classes)
    assert warning.startswith("transfer set skewed") and "class '3' for 100% of the transfer images" in warning
