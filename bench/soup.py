"""A uniform model soup (not a test, not a stage): the element-wise mean of the weights of fused models
that share one base, e.g. the same training run with different seeds (bench/sweep.py's fused-* folders).

    python bench/soup.py OUT MODEL_DIR MODEL_DIR [...]
    python bench/sweep.py OUT /tmp/soup-eval base.json --splits /tmp/nd/splits   # base.json: [{"name": "base"}]

Every model must have the same tensors (names, shapes, dtypes); the mean is taken in float64 and
stored in each tensor's own dtype. The other files (config, tokenizer, chat template) are copied from
the first model. Written to a temporary folder, then renamed (calltune.io.atomic_path).

LoRA adapters (the train stage's models/adapter, PEFT form) soup without fusing: given adapter folders,
OUT is the one adapter of stacked rank whose update is the mean of theirs (calltune.train.soup), which
fuses to the mean of the fused members.

    python bench/soup.py OUT ADAPTER_DIR ADAPTER_DIR [...]
"""
import argparse
import shutil
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file

from calltune.io import atomic_path

WEIGHTS = "model.safetensors"


def soup(models: list[Path], out: Path) -> None:
    if len(models) < 2:
        raise SystemExit("a soup needs at least two models")
    handles = [safe_open(str(m / WEIGHTS), framework="pt") for m in models]
    names = sorted(handles[0].keys())
    for model, handle in zip(models[1:], handles[1:]):
        if sorted(handle.keys()) != names:
            raise SystemExit(f"{model / WEIGHTS}: other tensors than {models[0] / WEIGHTS}")
    averaged = {}
    for name in names:
        first = handles[0].get_tensor(name)
        total = first.double()
        for model, handle in zip(models[1:], handles[1:]):
            tensor = handle.get_tensor(name)
            if tensor.shape != first.shape or tensor.dtype != first.dtype:
                raise SystemExit(f"{model / WEIGHTS}: {name} is {tuple(tensor.shape)} {tensor.dtype}, "
                                 f"expected {tuple(first.shape)} {first.dtype}")
            total += tensor.double()
        averaged[name] = (total / len(models)).to(first.dtype).contiguous()
    with atomic_path(out) as tmp:
        tmp.mkdir()
        for f in models[0].iterdir():
            if f.is_file() and f.name != WEIGHTS:
                shutil.copy(f, tmp / f.name)
        save_file(averaged, str(tmp / WEIGHTS), metadata={"format": "pt"})


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("models", type=Path, nargs="+", help="fused model folders (model.safetensors + config), or LoRA adapter folders")
    args = parser.parse_args()
    if all((m / "adapter_config.json").is_file() for m in args.models):
        from calltune.errors import InputError
        from calltune.train.soup import soup_adapters

        try:
            config = soup_adapters(args.models, args.out)
        except InputError as e:
            raise SystemExit(e.describe()) from None
        print(f"adapter soup of {len(args.models)} (rank {config['r']}, alpha {config['lora_alpha']}) -> {args.out}")
        return
    soup(args.models, args.out)
    print(f"soup of {len(args.models)} -> {args.out}")


if __name__ == "__main__":
    main()
