"""params.yaml validation: the shipped file passes; every kind of mistake names its key."""

from pathlib import Path

import pytest
import yaml

from calltune.errors import InputError
from calltune.params import load_params, validate_params

ROOT = Path(__file__).resolve().parent.parent


def shipped() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_shipped_params_are_valid():
    params = load_params(ROOT / "params.yaml")
    assert params["model"]["base"] == "gemma-3-270m"
    assert set(params) >= {"base", "model", "generate", "split", "train", "fuse", "export",
                           "quantize", "evaluate"}


@pytest.mark.parametrize("block,key,value,needle", [
    ("train", "lr", "fast", "train.lr"),
    ("train", "epochs", 0, "train.epochs"),
    ("base", "seed", 1.5, "base.seed"),
    ("model", "format", "chatml", "model.format"),
    ("model", "dtype", "float16", "model.dtype"),
    ("split", "near_duplicate", 2, "split.near_duplicate"),
])
def test_wrong_value_names_the_key(block, key, value, needle):
    params = shipped()
    params[block][key] = value
    with pytest.raises(InputError) as err:
        validate_params(params)
    assert needle in str(err.value)


def test_unknown_key_is_named():
    params = shipped()
    params["train"]["learning_rate"] = 1e-4
    with pytest.raises(InputError, match=r"train\.learning_rate.*unknown key"):
        validate_params(params)


def test_unknown_block_is_named():
    params = shipped()
    params["trian"] = {"lr": 1}
    with pytest.raises(InputError, match=r"\[trian\]: unknown key"):
        validate_params(params)


def test_nested_wrong_type_is_named():
    params = shipped()
    params["train"]["lora"]["rank"] = "eight"
    with pytest.raises(InputError, match=r"train\.lora\.rank"):
        validate_params(params)


def test_split_ratios_must_sum_to_one():
    params = shipped()
    params["split"]["train"] = 0.5
    with pytest.raises(InputError, match="sum to 1"):
        validate_params(params)


def test_several_errors_are_reported_together():
    params = shipped()
    params["train"]["lr"] = "x"
    params["model"]["format"] = "y"
    with pytest.raises(InputError) as err:
        validate_params(params)
    assert "train.lr" in str(err.value) and "model.format" in str(err.value)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("base:\n  seed: [1,\n")
    with pytest.raises(InputError, match=r"params.yaml:\d+: invalid YAML"):
        load_params(bad)


def test_stage_cli_exits_nonzero_with_key_named(tmp_path):
    """Every stage validates params first: a bad key is a clear error and exit code 2."""
    import subprocess
    import sys

    params = shipped()
    params["train"]["lr"] = "fast"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = subprocess.run([sys.executable, str(ROOT / "stages" / "base.py"), "--params",
                             str(tmp_path / "params.yaml"), "--out", str(tmp_path / "base")],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert "train.lr" in result.stderr
    assert not (tmp_path / "base").exists()


def test_unknown_keys_that_are_not_strings_are_named_not_a_crash():
    """YAML makes null and int keys ("? " alone, "1: x"): each is an unknown key named as text."""
    from calltune.params import schema_errors

    schema = {"type": "object", "properties": {"a": {}}, "additionalProperties": False}
    errors = schema_errors({None: None, 2: 3, "b": 4, "a": 1}, schema, "x.yaml")
    assert [(e.field, str(e)) for e in errors] == [(f, f"x.yaml [{f}]: unknown key") for f in ("2", "None", "b")]
