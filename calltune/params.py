"""Load params.yaml and check it against schemas/params.schema.json before a stage runs."""

from __future__ import annotations

import json
from pathlib import Path

from jsonschema import Draft202012Validator

from calltune.errors import InputError, InputErrors
from calltune.io import parse_yaml, read_text

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


def load_schema(name: str) -> dict:
    return json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))


def schema_errors(instance, schema: dict, path) -> list[InputError]:
    """Every schema violation in `instance`, each naming its dotted key."""
    validator = Draft202012Validator(schema)
    errors = []
    for err in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))):
        field = ".".join(str(p) for p in err.absolute_path) or None
        reason = err.message
        if err.validator == "additionalProperties":
            # YAML keys need not be strings ("? " is a null key, "1:" an int): name them as written
            unknown = sorted(map(str, set(err.instance) - set(err.schema.get("properties", {}))))
            if unknown:
                prefix = f"{field}." if field else ""
                for key in unknown:
                    errors.append(InputError("unknown key", path=path, field=prefix + key))
                continue
        errors.append(InputError(reason, path=path, field=field))
    return errors


def validate_params(params: dict, path="params.yaml") -> dict:
    errors = schema_errors(params, load_schema("params.schema.json"), path)
    if errors:
        raise errors[0] if len(errors) == 1 else InputErrors(errors)
    split = params.get("split")
    if split and abs(split["train"] + split["valid"] + split["test"] - 1.0) > 1e-6:
        raise InputError("split.train + split.valid + split.test must sum to 1", path=path, field="split")
    return params


def load_params(path="params.yaml") -> dict:
    """Read and validate the whole params file; a stage then picks its own blocks."""
    path = Path(path)
    if not path.is_file():
        raise InputError("params file not found", path=path)
    params = parse_yaml(read_text(path), path) or {}
    if not isinstance(params, dict):
        raise InputError("top level must be a mapping of blocks", path=path)
    return validate_params(params, path)
