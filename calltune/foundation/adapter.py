"""The shipped tool-calling foundation: a LoRA adapter for the embedded Gemma 3 270M, merged into
the base by the base stage (`model.foundation: calltune`), so every later stage starts from a
model that already calls tools and the user's training only specialises it.

The shipped adapter lives in the package (calltune/foundation/weights/): foundation/dvc.yaml's train
stage writes foundation/adapter/, and shipping a run is copying that folder here (its model card is
foundation/README.md). It must live outside foundation/, a DVC project of its own whose files the
main pipeline cannot see, so that the base stage's dependency on it is real. It fits exactly one
set of base weights: the merge checks the base's sha256 against the one the adapter was trained on.
"""

from __future__ import annotations

from pathlib import Path

from calltune.errors import InputError
from calltune.io import read_json, sha256_file, write_json
from calltune.model_dir import SOURCE_FILE

FOUNDATIONS = ("calltune", "none")
ADAPTER_DIR = Path(__file__).resolve().parent / "weights"
BASE_FILE = "foundation_base.json"  # {"sha256": ...} of the base weights the adapter was trained on


def foundation_dir(name: str) -> Path | None:
    """The adapter directory for `model.foundation`, or None for "none"."""
    if name not in FOUNDATIONS:
        raise InputError(f"must be one of {', '.join(FOUNDATIONS)}, not {name!r}", field="model.foundation")
    return ADAPTER_DIR if name == "calltune" else None


def apply_foundation(model, adapter_dir: Path, base_sha256) -> tuple[object, dict]:
    """(merged model, provenance entry): the adapter in `adapter_dir` merged into `model`, after
    checking that `base_sha256` (the base's provenance) is what the adapter was trained on."""
    from calltune.fuse import PEFT_WEIGHTS, merge_peft

    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / PEFT_WEIGHTS).is_file():
        raise InputError("the foundation adapter is missing from this checkout", path=adapter_dir / PEFT_WEIGHTS,
                         field="model.foundation")
    expected = read_json(adapter_dir / BASE_FILE).get("sha256") if (adapter_dir / BASE_FILE).is_file() else None
    if expected is not None and expected != base_sha256:
        raise InputError("the calltune foundation was trained on the embedded Gemma 3 270M and does not fit this "
                         "base; set model.foundation: none", field="model.foundation")
    merged = merge_peft(model, adapter_dir)
    return merged, {"adapter": adapter_dir.name, "sha256": sha256_file(adapter_dir / PEFT_WEIGHTS)}


def stamp(base_dir: Path, adapter_dir: Path) -> dict:
    """Record in `adapter_dir` which base weights it was trained on (their provenance sha256)."""
    source = read_json(Path(base_dir) / SOURCE_FILE)
    record = {"source": source.get("source"), "sha256": source.get("sha256")}
    write_json(Path(adapter_dir) / BASE_FILE, record)
    return record


def shrink_to_bf16(weights: Path) -> None:
    """Store an adapter's tensors in bf16: half the size (r64 on every linear layer of the 270M:
    61 -> 30 MB, under the 40 MB the repository allows); the merge runs in float32 all the same."""
    import torch
    from safetensors.torch import load_file, save_file

    tensors = load_file(weights)
    save_file({name: t.to(torch.bfloat16) for name, t in tensors.items()}, weights, metadata={"format": "pt"})


if __name__ == "__main__":  # python -m calltune.foundation.adapter BASE_DIR ADAPTER_DIR (foundation/dvc.yaml)
    import sys

    print(stamp(Path(sys.argv[1]), Path(sys.argv[2])))
