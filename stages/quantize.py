"""quantize stage: models/onnx -> models/onnx_quantized (fp16 / 8-bit / 4-bit ONNX variants in the
Transformers.js layout, each checked against fp32: top-1 and greedy agreement) and quantized GGUF
files; sizes and agreement in metrics/quantize.json."""

import click

from calltune.cli import params_option, stage
from calltune.export.run import quantize_models
from calltune.io import write_json


@click.command(help=__doc__)
@params_option
@click.option("--onnx-dir", default="models/onnx", show_default=True, type=click.Path(file_okay=False))
@click.option("--out", default="models/onnx_quantized", show_default=True, type=click.Path(file_okay=False))
@click.option("--gguf-dir", default="models/gguf", show_default=True, type=click.Path(file_okay=False))
@click.option("--gguf-out", default="models/gguf_quantized", show_default=True, type=click.Path(file_okay=False))
@click.option("--examples", default="data/splits/test.jsonl", show_default=True, type=click.Path(dir_okay=False),
              help="Data-contract examples each variant is checked on.")
@click.option("--metrics", default="metrics/quantize.json", show_default=True, type=click.Path(dir_okay=False))
@stage
def main(params, onnx_dir, out, gguf_dir, gguf_out, examples, metrics):
    write_json(metrics, quantize_models(params, onnx_dir, out, gguf_dir, gguf_out, examples, say=click.echo))


if __name__ == "__main__":
    main()
