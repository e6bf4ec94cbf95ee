"""Input specs, data sources and quality metrics, without running a model."""
from __future__ import annotations

import numpy as np
import pytest

from edgebench.core.errors import IncompatibleError, NotFoundError, UsageError
from edgebench.measure.eval_sets import MAX_BYTES, eval_capacity, load_eval_set, write_eval_set
from edgebench.measure.quality import agreement, output_agreement, top1
from edgebench.models.input_data import Preprocess, feeds, parse_values
from edgebench.models.inputs import InputSpec, parse_input_shapes, resolve_input_specs, shape_label

DETECTOR = [("x", ("N", 3, "H", "W"), "float32")]
ENCODER = [("input_ids", ("batch", 16), "int64"), ("attention_mask", ("batch", 16), "int64")]


def test_parse_input_shapes():
    assert parse_input_shapes(["x=1x3x48x320", "x=1x3x48x640,1x3x48x960", "2x3"]) == {
        "x": [(1, 3, 48, 320), (1, 3, 48, 640), (1, 3, 48, 960)], None: [(2, 3)]}
    for bad in ("x=1x3x?x?", "x=", "x=1x0x4", "x=a"):
        with pytest.raises(UsageError):
            parse_input_shapes([bad])


def test_dynamic_dims_are_listed_with_the_flag_to_set():
    with pytest.raises(UsageError, match=r"x \[N,3,H,W\] \(dims 2:H, 3:W\).*--input-shape x=1x3xHxW"):
        resolve_input_specs(DETECTOR, {})


def test_several_shapes_are_several_sets_and_others_broadcast():
    sets = resolve_input_specs(DETECTOR, parse_input_shapes(["x=1x3x320x320", "x=1x3x640x480"]))
    assert [shape_label(s) for s in sets] == ["1x3x320x320", "1x3x640x480"]
    assert sets[1][0].layout == "NCHW" and sets[1][0].image_hw == (640, 480)
    enc = resolve_input_specs(ENCODER, {})
    assert [(s.name, s.shape, s.dtype, s.layout) for s in enc[0]] == [
        ("input_ids", (1, 16), "int64", ""), ("attention_mask", (1, 16), "int64", "")]
    assert shape_label(enc[0]) == "input_ids=1x16,attention_mask=1x16"


def test_fixed_dims_are_kept_and_contradictions_refused():
    wide = [("image", (1, 3, 24, 40), "float32")]
    assert resolve_input_specs(wide, {})[0][0].shape == (1, 3, 24, 40)
    with pytest.raises(IncompatibleError, match="fixed shape"):
        resolve_input_specs(wide, {}, input_size=32)
    with pytest.raises(IncompatibleError, match="dim 3 of 'image' is fixed at 40"):
        resolve_input_specs(wide, parse_input_shapes(["image=1x3x24x48"]))
    with pytest.raises(UsageError, match="model's inputs are"):
        resolve_input_specs(wide, parse_input_shapes(["img=1x3x24x40"]))
    with pytest.raises(UsageError, match="name each one"):
        resolve_input_specs(ENCODER, parse_input_shapes(["1x16"]))


def test_input_size_fills_dynamic_image_dims_and_a_sequence_is_never_guessed():
    assert resolve_input_specs(DETECTOR, {}, input_size=64)[0][0].shape == (1, 3, 64, 64)
    with pytest.raises(UsageError, match="sequence_length"):
        resolve_input_specs([("input", ("sequence_length", 576), "float32")], {})


def test_image_preprocessing_letterbox_mean_scale_bgr_nhwc(tmp_path):
    from PIL import Image

    (tmp_path / "a").mkdir()
    picture = np.zeros((10, 40, 3), np.uint8)
    picture[..., 0] = 200  # red
    Image.fromarray(picture).save(tmp_path / "a" / "red.png")
    spec = InputSpec("img", (1, 20, 20, 3), "float32", "NHWC")
    feed = next(feeds(f"imagefolder:{tmp_path}", [spec], 4, Preprocess("letterbox", (100.0,), (2.0,), bgr=True)))
    x = feed["img"]
    assert x.shape == (1, 20, 20, 3) and x.dtype == np.float32
    assert x[0, 10, 10, 2] == pytest.approx(50.0)  # red lands last in BGR: (200 - 100) / 2
    assert x[0, 0, 10, 2] == pytest.approx(7.0)  # the letterbox's grey 114 band above the picture
    assert parse_values("[1, 2,3]") == (1.0, 2.0, 3.0)


def test_npz_feeds_by_name_and_clear_errors(tmp_path):
    specs = resolve_input_specs(ENCODER, {})[0]
    np.savez(tmp_path / "ok.npz", input_ids=np.arange(48).reshape(3, 1, 16), attention_mask=np.ones((3, 1, 16)))
    got = list(feeds(f"npz:{tmp_path / 'ok.npz'}", specs, 10))
    assert len(got) == 3 and got[2]["input_ids"].dtype == np.int64 and got[2]["attention_mask"].shape == (1, 16)
    np.savez(tmp_path / "bad.npz", ids=np.zeros((3, 1, 16)))
    with pytest.raises(UsageError, match="no array for input 'input_ids'"):
        list(feeds(f"npz:{tmp_path / 'bad.npz'}", specs, 10))
    with pytest.raises(UsageError, match="is not an image"):
        list(feeds("mnist", specs, 1))
    with pytest.raises(NotFoundError):
        list(feeds("imagenet", specs, 1))
    random = next(feeds("random", specs, 1))
    assert random["input_ids"].dtype == np.int64 and random["input_ids"].max() <= 1


def test_stored_eval_set_is_bounded_at_large_sizes(tmp_path):
    """A 640x640 detector input is 4.9 MB a sample: the stored set stays within the byte cap and is
    drawn one picture at a time (never the whole built-in dataset at 640x640)."""
    spec = [InputSpec("x", (1, 3, 640, 640), "float32", "NCHW")]
    assert eval_capacity(spec) * spec[0].nbytes <= MAX_BYTES
    info = write_eval_set(tmp_path / "eval.npz", spec, "digits", max_bytes=3 * spec[0].nbytes)
    assert info == {"samples": 3, "bytes": 3 * spec[0].nbytes}
    stored, labels = load_eval_set(tmp_path / "eval.npz")
    assert len(stored) == 3 and labels is None and stored[0]["x"].shape == (1, 3, 640, 640)


def test_agreement_metrics():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((20, 1, 5)).astype(np.float32)
    same = output_agreement(ref, ref)
    assert same["cosine"] == pytest.approx(1.0) and same["max_abs_error"] == 0 and same["top1_agreement"] == 1.0
    noisy = output_agreement(ref + 0.1 * rng.standard_normal(ref.shape), ref)
    assert 0.9 < noisy["cosine"] < 1.0 and 10 < noisy["sqnr_db"] < 30
    q = agreement([ref, ref[:, 0]], [ref, ref[:, 0] * 2], ["scores", "other"])
    assert q.metric == "agreement" and q.value == pytest.approx(1.0) and q.samples == 20
    assert q.per_output[1]["max_abs_error"] > 0
    mismatch = agreement([ref[:, :, :2]], [ref], ["scores"])
    assert mismatch.metric == "none" and "shape" in mismatch.reason


def test_top1_knows_chance():
    scores = np.eye(4)[[0, 1, 2, 3, 0]][:, None]
    q = top1([scores], np.array([0, 1, 2, 3, 1]), 4)
    assert q.value == pytest.approx(0.8) and q.chance == 0.25
