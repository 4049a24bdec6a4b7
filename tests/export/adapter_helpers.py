"""Adapters with non-trivial random weights, saved as the train stage (PEFT) and mlx-lm save them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

TARGETS = ["q_proj", "v_proj", "down_proj"]


def peft_adapter(base_dir: Path, out_dir: Path, dora: bool = False, seed: int = 0) -> Path:
    """A PEFT LoRA/DoRA adapter whose lora_B (and DoRA magnitude) are random, so merging changes the
    logits; saved with save_pretrained (adapter_model.safetensors + adapter_config.json)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, use_dora=dora, init_lora_weights=False,
                        task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.2)
            if "lora_magnitude_vector" in name:
                param.mul_(1 + 0.2 * torch.randn_like(param))
    peft_model.save_pretrained(out_dir, safe_serialization=True)
    return out_dir


def peft_logits(base_dir: Path, adapter_dir: Path, ids: list[int]) -> torch.Tensor:
    """Logits of base + adapter, unmerged (PEFT computes the adapter path separately)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model = PeftModel.from_pretrained(model, adapter_dir).eval()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0]


def model_logits(model_dir: Path, ids: list[int]) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0]


def mlx_adapter(base_dir: Path, out_dir: Path, ids: list[int], dora: bool = False, seed: int = 0) -> np.ndarray:
    """An mlx-lm adapter (adapters.safetensors + adapter_config.json, as `mlx_lm.lora` writes them)
    with random lora_b / magnitudes; returns mlx-lm's own logits for `ids` with the adapter applied."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.tuner.dora import DoRALinear
    from mlx_lm.tuner.utils import linear_to_lora_layers
    from mlx_lm.utils import load_model

    model, _ = load_model(Path(base_dir))
    model.freeze()
    lora_parameters = {"rank": 4, "scale": 2.5, "dropout": 0.0,
                       "keys": ["self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj"]}
    linear_to_lora_layers(model, len(model.layers), lora_parameters, use_dora=dora)
    mx.random.seed(seed)
    for _, module in model.named_modules():
        if hasattr(module, "lora_b"):
            module.lora_b = 0.2 * mx.random.normal(module.lora_b.shape)
        if isinstance(module, DoRALinear):
            module.m = module.m * (1 + 0.2 * mx.random.normal(module.m.shape))
    out_dir.mkdir(parents=True)
    mx.save_safetensors(str(out_dir / "adapters.safetensors"), dict(tree_flatten(model.trainable_parameters())))
    (out_dir / "adapter_config.json").write_text(json.dumps({
        "fine_tune_type": "dora" if dora else "lora", "num_layers": len(model.layers),
        "lora_parameters": lora_parameters}))
    return np.array(model(mx.array([ids]))[0].astype(mx.float32))
