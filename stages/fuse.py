"""fuse stage: merge models/adapter (PEFT LoRA/DoRA, an mlx-lm adapter, or a full fine-tune) into
models/base and write models/fused/ (safetensors, config, tokenizer with the chat template,
generation config with the stop tokens) in params fuse.dtype."""

import click

from calltune.cli import params_option, stage
from calltune.fuse import fuse


@click.command(help=__doc__)
@params_option
@click.option("--base-model", default="models/base", show_default=True, type=click.Path(file_okay=False))
@click.option("--adapter", default="models/adapter", show_default=True, type=click.Path(file_okay=False))
@click.option("--out", default="models/fused", show_default=True, type=click.Path(file_okay=False))
@stage
def main(params, base_model, adapter, out):
    record = fuse(base_model, adapter, out, dtype=params["fuse"]["dtype"])
    detail = record["adapter"]
    click.echo(f"fused {detail['kind']} adapter ({detail.get('method', 'full')}) into {base_model} -> {out} "
               f"({record['dtype']})")


if __name__ == "__main__":
    main()
