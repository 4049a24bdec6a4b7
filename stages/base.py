"""base stage: resolve params `model.base` into models/base/ (an HF-format directory)."""

import click

from calltune.base_model import resolve_base
from calltune.cli import params_option, stage
from calltune.foundation.adapter import foundation_dir


@click.command(help="Resolve model.base (gemma-3-270m, a .gguf, an HF dir or a hub id) into an HF "
                    "directory with safetensors, tokenizer, chat template and provenance.")
@params_option
@click.option("--out", default="models/base", show_default=True, type=click.Path(file_okay=False))
@stage
def main(params, out):
    model = params["model"]
    record = resolve_base(model["base"], out, dtype=model["dtype"], foundation=foundation_dir(model["foundation"]))
    merged = f", foundation {record['foundation']['sha256'][:12]} merged" if "foundation" in record else ""
    click.echo(f"base model from {record['source']} -> {out} "
               f"(dtype {record['dtype']}, FunctionGemma tokens: {record['functiongemma']}{merged})")


if __name__ == "__main__":
    main()
