"""export stage: models/fused -> models/onnx (the Transformers.js layout, checked against PyTorch on
the test split: max |delta logits| and greedy agreement) and GGUF files; numbers in metrics/export.json."""

import click

from calltune.cli import params_option, stage
from calltune.export.run import export_models
from calltune.io import write_json


@click.command(help=__doc__)
@params_option
@click.option("--fused", default="models/fused", show_default=True, type=click.Path(file_okay=False))
@click.option("--onnx-out", default="models/onnx", show_default=True, type=click.Path(file_okay=False))
@click.option("--gguf-out", default="models/gguf", show_default=True, type=click.Path(file_okay=False))
@click.option("--examples", default="data/splits/test.jsonl", show_default=True, type=click.Path(dir_okay=False),
              help="Data-contract examples the exported model is checked on.")
@click.option("--metrics", default="metrics/export.json", show_default=True, type=click.Path(dir_okay=False))
@stage
def main(params, fused, onnx_out, gguf_out, examples, metrics):
    write_json(metrics, export_models(params, fused, onnx_out, gguf_out, examples, say=click.echo))


if __name__ == "__main__":
    main()
