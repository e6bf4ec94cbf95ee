"""Transformer students on a 6-layer ViT: DistilBERT's every-other-layer init, PKD and TinyBERT
layer maps, DynaBERT-style narrow sub-networks; each trains and exports."""
import pytest
import torch

from edgebench.compress import PASSES, Candidate, Context
from edgebench.compress.transformer_students import layer_map, shallow_copy
from edgebench.compress.transformer_width import narrow
from edgebench.models.zoo import build_module, resolve_model


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(0)
    return build_module(resolve_model("vit-tiny"), 10).eval()


def test_layer_maps_follow_the_papers():
    assert layer_map(6, 3, "every-other") == [0, 2, 4]  # DistilBERT
    assert layer_map(6, 3, "pkd-skip") == [1, 3, 5]
    assert layer_map(6, 2, "pkd-skip") == [2, 5]
    assert layer_map(6, 2, "pkd-last") == [4, 5]


def test_student_starts_from_every_other_teacher_layer_and_narrows_by_importance(teacher):
    student = shallow_copy(teacher, 3)
    assert len(student.encoder.layers) == 3
    for i, k in enumerate([0, 2, 4]):
        assert torch.equal(student.encoder.layers[i].mlp[0].weight, teacher.encoder.layers[k].mlp[0].weight)
    narrow(student, 0.5)
    block = student.encoder.layers[0]
    assert block.self_attention.num_heads == 2 and block.mlp[0].out_features == 64
    x = torch.randn(2, 3, 32, 32)
    assert student(x).shape == (2, 10)
    full = shallow_copy(teacher, 3)
    assert narrow(full, 1.0) is full


@pytest.mark.parametrize("loss", ["kd", "pkd-skip", "pkd-last", "tinybert"])
def test_each_layer_mapping_trains_a_smaller_student(loss, teacher, digits, tmp_path):
    base = Candidate("baseline", module=teacher, lineage=({"pass": "baseline", "config": {}},))
    ctx = Context(dataset=digits, baseline=base, model_source=resolve_model("vit-tiny"), work_dir=tmp_path)
    p = PASSES.get("tdistill")({"layers": 2, "width": 0.5 if loss == "tinybert" else 1.0, "loss": loss})
    assert p.check(base, ctx) is None
    student = p.build_student(teacher).train()
    loss_fn, _, cleanup = p.objective(student, teacher)
    x, y = torch.from_numpy(digits.train.x[:8]), torch.from_numpy(digits.train.y[:8])
    value = loss_fn(student, x, y)
    value.backward()
    cleanup()
    assert torch.isfinite(value)
    # torchvision zero-initialises the head, so logits-only KD first reaches the head; layer maps reach the blocks
    reached = student.heads if loss == "kd" else student.encoder.layers[0]
    assert any(q.grad is not None and q.grad.abs().sum() > 0 for q in reached.parameters())
    out = PASSES.get("tdistill")({"layers": 2, "loss": loss, "epochs": 0.02}).apply(base, ctx)
    assert len(out.module.encoder.layers) == 2 and out.name == f"vit2l-{loss}"
    assert sum(q.numel() for q in out.module.parameters()) < sum(q.numel() for q in teacher.parameters())


def test_a_narrow_student_exports_to_onnx(teacher, digits, tmp_path):
    from edgebench.models.export import export_onnx

    student = narrow(shallow_copy(teacher, 2), 0.5).eval()
    path = export_onnx(student, tmp_path / "model.onnx", digits.eval.x[:2])
    assert path.is_file()


def test_non_transformers_are_declined_in_one_line(digits, tmp_path):
    base = Candidate("baseline", module=build_module(resolve_model("tiny-cnn"), 10))
    ctx = Context(dataset=digits, baseline=base, model_source=resolve_model("tiny-cnn"), work_dir=tmp_path)
    reason = PASSES.get("tdistill")({}).check(base, ctx)
    assert reason.startswith("tdistill:") and "VisionTransformer" in reason


def test_default_recipes_validate_on_a_cnn_and_tdistill_declines_there_in_one_line(digits, tmp_path):
    from edgebench.compress import DEFAULT_RECIPES, instantiate, validate_recipes

    source = resolve_model("tiny-cnn")
    validate_recipes(list(DEFAULT_RECIPES.items()), source, digits)  # a CNN must not abort compare before training
    base = Candidate("baseline", module=build_module(source, 10))
    ctx = Context(dataset=digits, baseline=base, model_source=source, work_dir=tmp_path)
    (tdistill,) = instantiate(DEFAULT_RECIPES["tdistill"])
    reason = tdistill.check(base, ctx)
    assert reason.startswith("tdistill:") and "\n" not in reason


def test_a_student_deeper_than_its_teacher_is_declined_not_an_error(teacher, digits, tmp_path):
    base = Candidate("baseline", module=teacher)
    ctx = Context(dataset=digits, baseline=base, model_source=resolve_model("vit-tiny"), work_dir=tmp_path)
    depth = len(teacher.encoder.layers)
    reason = PASSES.get("tdistill")({"layers": depth + 1, "width": 0.5}).check(base, ctx)
    assert reason.startswith("tdistill:") and f"{depth}-layer teacher" in reason
    assert PASSES.get("tdistill")({"layers": depth - 1}).check(base, ctx) is None
