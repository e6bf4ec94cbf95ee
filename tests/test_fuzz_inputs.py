"""Property-based: malformed profiles, recipes and model files always give a user error, never a traceback."""
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgebench.compress import load_recipe
from edgebench.core.errors import EdgebenchError
from edgebench.devices.profiles import load_profile_file
from edgebench.models.zoo import load_state_dict, resolve_model

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=15)


def _profile_like():
    valid = yaml.safe_load((Path(__file__).parent.parent / "device_profiles" / "jetson-orin-nano.yaml").read_text())
    keys = st.sampled_from(sorted(valid))
    return st.builds(lambda drop, key, value: {**{k: v for k, v in valid.items() if k != drop}, key: value},
                     keys, keys, yaml_values)


def _accepts_or_user_error(fn, *args):
    try:
        fn(*args)
    except EdgebenchError as e:
        assert str(e) and "\n" not in str(e)


@FUZZ
@given(data=st.one_of(_profile_like(), yaml_values))
def test_profiles(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("p") / "profile.yaml"
    path.write_text(yaml.safe_dump(data))
    _accepts_or_user_error(load_profile_file, path)


@FUZZ
@given(raw=st.binary(max_size=300))
def test_profile_bytes(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("p") / "profile.yaml"
    path.write_bytes(raw)
    _accepts_or_user_error(load_profile_file, path)


@FUZZ
@given(data=st.one_of(yaml_values, st.lists(st.dictionaries(st.sampled_from(["pass", "config"]), yaml_values))))
def test_recipes(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("r") / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    _accepts_or_user_error(load_recipe, str(path))


@FUZZ
@given(raw=st.binary(max_size=2000))
def test_random_bytes_as_onnx(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("m") / "model.onnx"
    path.write_bytes(raw)
    _accepts_or_user_error(resolve_model, str(path))


@FUZZ
@given(raw=st.binary(max_size=2000))
def test_random_bytes_as_checkpoint(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("m") / "weights.pt"
    path.write_bytes(raw)
    _accepts_or_user_error(load_state_dict, path)
