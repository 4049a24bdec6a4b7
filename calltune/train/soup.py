"""A uniform soup of LoRA adapters as one LoRA adapter: the mean of N adapters' updates, exactly.

Adapter i adds (alpha / r) * B_i @ A_i to each adapted weight. Stacking the N adapters' A matrices
(rows) and B matrices (columns) gives one adapter of rank N * r whose update is
(alpha / (N * r)) * sum_i B_i @ A_i: with alpha unchanged that is the mean of the N updates. So a
soup of runs that share a base and an adapter shape is itself an ordinary PEFT adapter: fuse,
export and serve take it unchanged (bench/README.md, "soups of seeds": the same mean, taken over
fused weights by bench/soup.py).

DoRA is refused: its update is normalised per output row (a magnitude times a direction), so the
mean of DoRA models is no DoRA adapter; average the fused models instead (bench/soup.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from calltune.errors import InputError
from calltune.io import atomic_path, read_json, write_json
from calltune.model_dir import ADAPTER_CONFIG as CONFIG
from calltune.model_dir import PEFT_WEIGHTS as WEIGHTS
from calltune.model_dir import peft_adapter_files

# the config keys every member must share (anything that changes what one update means)
SHARED_KEYS = ("peft_type", "base_model_name_or_path", "r", "lora_alpha", "target_modules", "use_dora",
               "use_rslora", "bias", "fan_in_fan_out", "modules_to_save", "rank_pattern", "alpha_pattern",
               "layers_to_transform", "task_type")
LORA_KEY = re.compile(r"\.lora_(A|B)\.weight$")


def _load(adapter_dir: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    from safetensors.torch import load_file

    weights, config_file = peft_adapter_files(adapter_dir)
    config = read_json(config_file)
    if config.get("peft_type") != "LORA":
        raise InputError(f"only LoRA adapters make a soup, not {config.get('peft_type')!r}",
                         path=config_file, field="peft_type")
    if config.get("use_dora"):
        raise InputError("DoRA adapters do not average into one adapter (their update is normalised per row); "
                         "average the fused models instead (bench/soup.py)", path=config_file, field="use_dora")
    if config.get("use_rslora") or config.get("rank_pattern") or config.get("alpha_pattern"):
        raise InputError("a soup needs one rank and one alpha for every module (no rsLoRA, rank or alpha "
                         "patterns)", path=config_file)
    tensors = load_file(weights)
    other = sorted(k for k in tensors if not LORA_KEY.search(k))
    if other:
        raise InputError(f"tensors other than lora_A / lora_B (e.g. {other[0]}): only the adapter matrices "
                         "average by stacking", path=weights)
    return config, tensors


def soup_adapters(adapter_dirs: list[Path], out_dir: Path) -> dict:
    """Write to `out_dir`, atomically, the one LoRA adapter whose update is the mean of `adapter_dirs`'
    updates (save_soup). Returns its config."""
    with atomic_path(out_dir) as tmp:
        save_soup(adapter_dirs, tmp)
    return read_json(Path(out_dir) / CONFIG)


def save_soup(adapter_dirs: list[Path], out_dir: Path) -> list[str]:
    """Write to the new directory `out_dir` the one LoRA adapter whose update is the mean of
    `adapter_dirs`' updates (see the module docstring). Every member must have the same config
    (SHARED_KEYS) and tensors (names, shapes); anything else is an InputError naming the member.
    Returns the names of the files written (as session.write_outputs' `save` does)."""
    from safetensors.torch import save_file

    adapter_dirs = [Path(d) for d in adapter_dirs]
    if len(adapter_dirs) < 2:
        raise InputError(f"a soup needs at least two adapters, got {len(adapter_dirs)}")
    members = [_load(d) for d in adapter_dirs]
    config0, tensors0 = members[0]
    for path, (config, tensors) in zip(adapter_dirs[1:], members[1:]):
        for key in SHARED_KEYS:
            if config.get(key) != config0.get(key):
                raise InputError(f"{key} is {config.get(key)!r} here, {config0.get(key)!r} in {adapter_dirs[0]}",
                                 path=path / CONFIG, field=key)
        shapes = {k: tuple(v.shape) for k, v in tensors.items()}
        if shapes != {k: tuple(v.shape) for k, v in tensors0.items()}:
            raise InputError(f"other tensors (names or shapes) than {adapter_dirs[0] / WEIGHTS}", path=path / WEIGHTS)
    rank, n = config0["r"], len(members)
    stacked = {}
    for name in sorted(tensors0):
        parts = [tensors[name] for _, tensors in members]
        # lora_A: [r, in] -> rows of the N adapters; lora_B: [out, r] -> their columns
        stacked[name] = torch.cat(parts, dim=0 if LORA_KEY.search(name).group(1) == "A" else 1).contiguous()
    # alpha unchanged: the scale alpha / (n * r) is each member's alpha / r divided by n
    out_dir = Path(out_dir)
    out_dir.mkdir()
    save_file(stacked, str(out_dir / WEIGHTS), metadata={"format": "pt"})
    write_json(out_dir / CONFIG, {**config0, "r": rank * n})
    return [WEIGHTS, CONFIG]
