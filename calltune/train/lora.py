"""Load the base model and make it trainable: LoRA, DoRA, QLoRA (PEFT) or full fine-tuning."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from calltune.errors import InputError

ALL_LINEAR = "all-linear"
ADAPTER_METHODS = ("lora", "dora", "qlora")


def _quantization_config(method: str, device: torch.device):
    if method != "qlora":
        return None
    if device.type != "cuda" or importlib.util.find_spec("bitsandbytes") is None:
        raise InputError("qlora needs a CUDA device and the bitsandbytes package; use lora or dora here",
                         field="train.method")
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)


def load_base_model(base_dir, method: str, dtype: torch.dtype, device: torch.device):
    """Adapters train on a frozen base held in `dtype`; full fine-tuning keeps fp32 master weights
    (the trainer autocasts the matmuls to `dtype`)."""
    from transformers import AutoModelForCausalLM

    quant = _quantization_config(method, device)
    weights_dtype = torch.float32 if method == "full" else dtype
    model = AutoModelForCausalLM.from_pretrained(
        base_dir, dtype=weights_dtype, trust_remote_code=False, quantization_config=quant,
        **({"device_map": {"": device.index or 0}} if quant else {}))
    model.config.use_cache = False
    return model if quant else model.to(device)


def linear_module_names(model) -> list[str]:
    """Leaf names of the Linear layers inside the decoder (what target_modules may name)."""
    head = model.get_output_embeddings()
    return sorted({name.rsplit(".", 1)[-1] for name, mod in model.named_modules()
                   if isinstance(mod, torch.nn.Linear) and mod is not head})


def lora_config(method: str, lora: dict):
    from peft import LoraConfig

    targets = list(lora["target_modules"])
    if ALL_LINEAR in targets and len(targets) > 1:
        raise InputError(f"{ALL_LINEAR!r} cannot be combined with module names", field="train.lora.target_modules")
    return LoraConfig(
        r=lora["rank"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
        target_modules=ALL_LINEAR if targets == [ALL_LINEAR] else targets,
        use_dora=method == "dora", bias="none", task_type="CAUSAL_LM")


def make_trainable(model, method: str, lora: dict, gradient_checkpointing: bool = False):
    """Wrap `model` for `method`; unknown target modules raise InputError naming the valid ones."""
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if method == "full":
        model.requires_grad_(True)
        return model
    from peft import get_peft_model, prepare_model_for_kbit_training

    if method == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    config = lora_config(method, lora)
    try:
        return get_peft_model(model, config)
    except ValueError as e:
        if "not found in the base model" not in str(e) and "Target modules" not in str(e):
            raise
        raise InputError(f"no module matches {lora['target_modules']}; linear modules here: "
                         f"{', '.join(linear_module_names(model))} (or {ALL_LINEAR})",
                         field="train.lora.target_modules") from None


def init_from_adapter(model, adapter_dir, method: str, lora: dict) -> None:
    """Start `model`'s adapter (made by make_trainable) from the weights saved in `adapter_dir`
    (save_trained's PEFT layout): a warm start, such as more training of a shipped adapter. The
    saved adapter must have the same method, rank, alpha and modules; anything else is an
    InputError naming train.init_adapter."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    from calltune.io import read_json

    from calltune.model_dir import peft_adapter_files

    field = "train.init_adapter"
    if method not in ADAPTER_METHODS:
        raise InputError(f"only an adapter can start from an adapter (train.method is {method!r})", field=field)
    weights, config_file = peft_adapter_files(adapter_dir, field)
    config = read_json(config_file)
    wanted = {"r": lora["rank"], "lora_alpha": lora["alpha"], "use_dora": method == "dora"}
    for key, value in wanted.items():
        if config.get(key, False if key == "use_dora" else None) != value:
            raise InputError(f"the adapter has {key}={config.get(key)!r}, this run {value!r}", path=config_file,
                             field=field)
    result = set_peft_model_state_dict(model, load_file(weights))
    missing = sorted(k for k in result.missing_keys if "lora_" in k)
    if missing or result.unexpected_keys:
        names = (missing or list(result.unexpected_keys))[:2]
        raise InputError(f"the adapter's modules differ from train.lora.target_modules' ({len(missing)} missing, "
                         f"{len(result.unexpected_keys)} unexpected, e.g. {', '.join(names)})", path=weights,
                         field=field)


def trainable_state(model) -> dict[str, torch.Tensor]:
    """Detached CPU copies of the trainable parameters, by name."""
    return {name: p.detach().to("cpu", copy=True) for name, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model, state: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    missing = sorted(set(n for n, p in params.items() if p.requires_grad) - set(state))
    if missing:
        raise InputError(f"checkpoint lacks {len(missing)} trainable tensor(s), e.g. {missing[0]}")
    with torch.no_grad():
        for name, tensor in state.items():
            params[name].copy_(tensor)


def save_trained(model, out_dir: Path, method: str) -> list[str]:
    """Adapters: adapter_model.safetensors + adapter_config.json (PEFT). Full: the whole model
    (config.json + model.safetensors). Returns the file names written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    (out_dir / "README.md").unlink(missing_ok=True)  # PEFT's empty model card template
    return sorted(p.name for p in out_dir.iterdir())
