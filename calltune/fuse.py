"""Merge a trained adapter into the base model: models/base + models/adapter -> models/fused/.

Adapter forms, recognised by their files:
- PEFT (what the train stage writes for lora/dora, either backend): adapter_model.safetensors +
  adapter_config.json; merged by PEFT's own merge_and_unload.
- mlx-lm (`mlx_lm.lora` output): adapters.safetensors + adapter_config.json with
  `fine_tune_type` lora or dora (lora_a [in, r], lora_b [r, out], magnitude `m`, one `scale`) or
  full (the trained weights by name); converted and merged here in torch.
- a whole model (train method full): config.json + *.safetensors; taken as it is.

The fused directory is written like models/base (calltune.model_dir.save_base): safetensors,
config, tokenizer with the chat template inside tokenizer_config.json and as chat_template.jinja,
generation_config.json with the format's stop tokens, and calltune_source.json naming what was merged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import torch

from calltune.errors import InputError
from calltune.io import read_json, sha256_file
from calltune.model_dir import ADAPTER_CONFIG, DTYPES, MLX_WEIGHTS, PEFT_WEIGHTS, SOURCE_FILE, save_base


class MlxLora(NamedTuple):
    """One mlx-lm adapted linear layer, in mlx-lm's layout."""
    lora_a: torch.Tensor  # [in, r]
    lora_b: torch.Tensor  # [r, out]
    magnitude: torch.Tensor | None  # DoRA's per-output-row magnitude `m` [out]; None for LoRA


def adapter_kind(adapter_dir: Path) -> str:
    """'peft', 'mlx' or 'full', from the files in `adapter_dir` (InputError when none fits)."""
    if not adapter_dir.is_dir():
        raise InputError("adapter directory not found (run the train stage first)", path=adapter_dir)
    if (adapter_dir / PEFT_WEIGHTS).is_file():
        return "peft"
    if (adapter_dir / MLX_WEIGHTS).is_file():
        return "mlx"
    if (adapter_dir / "config.json").is_file() and any(adapter_dir.glob("*.safetensors")):
        return "full"
    if (adapter_dir / "adapter_model.bin").is_file():
        raise InputError("pickle adapters (adapter_model.bin) are refused; save the adapter as safetensors",
                         path=adapter_dir / "adapter_model.bin")
    raise InputError(f"no adapter here: expected {PEFT_WEIGHTS} (PEFT), {MLX_WEIGHTS} (mlx-lm) or "
                     "config.json + model.safetensors (full fine-tune)", path=adapter_dir)


def load_model(model_dir: Path):
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, use_safetensors=True,
                                                    trust_remote_code=False).eval()
    except (OSError, ValueError) as e:
        raise InputError(f"cannot load model: {e}", path=model_dir) from None


def merge_peft(model, adapter_dir: Path):
    """PEFT LoRA/DoRA merged into the weights; returns the plain transformers model."""
    from peft import PeftModel

    config = read_json(adapter_dir / ADAPTER_CONFIG)
    if config.get("peft_type") != "LORA":
        raise InputError(f"only LoRA/DoRA adapters can be fused, not {config.get('peft_type')!r}",
                         path=adapter_dir / ADAPTER_CONFIG, field="peft_type")
    try:
        peft_model = PeftModel.from_pretrained(model, adapter_dir, is_trainable=False, use_safetensors=True)
    except (RuntimeError, ValueError, KeyError) as e:
        raise InputError(f"adapter does not fit the base model: {str(e).splitlines()[0]}", path=adapter_dir) from None
    check_all_loaded(peft_model, adapter_dir / PEFT_WEIGHTS)
    return peft_model.merge_and_unload(safe_merge=True)


def check_all_loaded(peft_model, weights: Path) -> None:
    """PEFT only warns when adapter tensors and adapted modules do not match one to one (an
    adapter trained on another model): make that an error."""
    from peft import get_peft_model_state_dict
    from safetensors import safe_open

    expected = set(get_peft_model_state_dict(peft_model))
    with safe_open(weights, "pt") as f:
        saved = set(f.keys())
    if saved != expected:
        odd = sorted(expected - saved) or sorted(saved - expected)
        raise InputError(f"adapter does not fit the base model: {len(expected - saved)} adapted tensor(s) missing "
                         f"from the file, {len(saved - expected)} unused (e.g. {odd[0]})", path=weights)


def read_mlx_adapter(adapter_dir: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    from safetensors.torch import load_file

    config = read_json(adapter_dir / ADAPTER_CONFIG)
    kind = config.get("fine_tune_type", "lora")
    if kind not in ("lora", "dora", "full"):
        raise InputError(f"unknown mlx-lm fine_tune_type {kind!r} (expected lora, dora or full)",
                         path=adapter_dir / ADAPTER_CONFIG, field="fine_tune_type")
    if kind != "full" and "scale" not in config.get("lora_parameters", {}):
        raise InputError("mlx-lm adapter config lacks the LoRA scale", path=adapter_dir / ADAPTER_CONFIG,
                         field="lora_parameters.scale")
    tensors = {k: v.to(torch.float32) for k, v in load_file(adapter_dir / MLX_WEIGHTS).items()}
    return config, tensors


def group_mlx_lora(tensors: dict[str, torch.Tensor], path: Path) -> dict[str, MlxLora]:
    """{module path: MlxLora} from keys `<module>.lora_a`, `<module>.lora_b` and (DoRA) `<module>.m`."""
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        module, _, leaf = key.rpartition(".")
        if leaf not in ("lora_a", "lora_b", "m"):
            raise InputError(f"unexpected tensor {key!r} in an mlx-lm LoRA adapter", path=path)
        parts.setdefault(module, {})[leaf] = tensor
    for module, leaves in parts.items():
        if not {"lora_a", "lora_b"} <= set(leaves):
            raise InputError(f"{module} lacks lora_a or lora_b", path=path)
    return {m: MlxLora(p["lora_a"], p["lora_b"], p.get("m")) for m, p in parts.items()}


def merged_weight(weight: torch.Tensor, lora: MlxLora, scale: float) -> torch.Tensor:
    """W + scale * (lora_a @ lora_b)^T; DoRA then rescales each output row to its magnitude."""
    fused = weight + scale * (lora.lora_a @ lora.lora_b).T
    if lora.magnitude is not None:
        fused = fused * (lora.magnitude / torch.linalg.vector_norm(fused, dim=1))[:, None]
    return fused


def merge_mlx(model, adapter_dir: Path) -> int:
    """Merge an mlx-lm adapter into `model` in place; returns the number of tensors changed."""
    config, tensors = read_mlx_adapter(adapter_dir)
    weights_path = adapter_dir / MLX_WEIGHTS
    if config.get("fine_tune_type") == "full":
        return load_named_weights(model, tensors, weights_path)
    modules = dict(model.named_modules())
    scale = float(config["lora_parameters"]["scale"])
    layers = group_mlx_lora(tensors, weights_path)
    with torch.no_grad():
        for name, lora in layers.items():
            linear = modules.get(name)
            if not isinstance(linear, torch.nn.Linear):
                raise InputError(f"adapter targets {name!r}, which is not a linear layer of the base model",
                                 path=weights_path)
            expected = (linear.in_features, linear.out_features)
            if (lora.lora_a.shape[0], lora.lora_b.shape[1]) != expected:
                raise InputError(f"{name}: adapter shape {tuple(lora.lora_a.shape)} x {tuple(lora.lora_b.shape)} "
                                 f"does not fit the base layer (in, out) = {expected}", path=weights_path)
            linear.weight.copy_(merged_weight(linear.weight.float(), lora, scale))
    return len(layers)


def load_named_weights(model, tensors: dict[str, torch.Tensor], path: Path) -> int:
    """mlx-lm full fine-tune: its tensors carry the transformers parameter names."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in tensors.items():
            if name not in params or params[name].shape != tensor.shape:
                raise InputError(f"tensor {name!r} {tuple(tensor.shape)} has no match in the base model", path=path)
            params[name].copy_(tensor)
    return len(tensors)


def merged_model(base_dir: Path, adapter_dir: Path):
    """(model with the adapter merged, provenance details) for any adapter form."""
    kind = adapter_kind(adapter_dir)
    if kind == "full":
        weights = sorted(adapter_dir.glob("*.safetensors"))
        return load_model(adapter_dir), {"kind": kind, "sha256": {w.name: sha256_file(w) for w in weights}}
    model = load_model(base_dir)
    if kind == "peft":
        config = read_json(adapter_dir / ADAPTER_CONFIG)
        detail = {"method": "dora" if config.get("use_dora") else "lora", "r": config.get("r"),
                  "lora_alpha": config.get("lora_alpha")}
        model = merge_peft(model, adapter_dir)
        weights = adapter_dir / PEFT_WEIGHTS
    else:
        detail = {"method": read_json(adapter_dir / ADAPTER_CONFIG).get("fine_tune_type", "lora"),
                  "tensors_merged": merge_mlx(model, adapter_dir)}
        weights = adapter_dir / MLX_WEIGHTS
    return model, {"kind": kind, **detail, "sha256": {weights.name: sha256_file(weights)}}


def fuse(base_dir, adapter_dir, out_dir, dtype: str = "float32") -> dict:
    """Write the fused model to `out_dir` atomically; returns the provenance written with it."""
    from transformers import AutoTokenizer

    base_dir, adapter_dir, out_dir = Path(base_dir), Path(adapter_dir), Path(out_dir)
    if dtype not in DTYPES:
        raise InputError(f"dtype must be one of {', '.join(DTYPES)}", field="fuse.dtype")
    if not (base_dir / "config.json").is_file():
        raise InputError("base model not found (run the base stage first)", path=base_dir)
    model, adapter = merged_model(base_dir, adapter_dir)
    tokenizer = AutoTokenizer.from_pretrained(base_dir, trust_remote_code=False)
    model.to(DTYPES[dtype])
    model.config._name_or_path = ""
    save_base(model, tokenizer, out_dir, {"source": "fuse", "base": base_dir.as_posix(),
                                          "adapter": {"path": adapter_dir.as_posix(), **adapter}, "dtype": dtype})
    return json.loads((out_dir / SOURCE_FILE).read_text())
