"""quantize stage: models/onnx -> models/onnx_quantized (fp16 / 8-bit / 4-bit ONNX variants in the
Transformers.js layout, each checked against fp32: top-1 and greedy agreement) and quantized GGUF
files; sizes and agreement in metrics/quantize.json."""

from pathlib import Path

import click

from calltune.cli import params_option, stage
from calltune.export.gguf import quantize_gguf
from calltune.io import write_json


def quantize_onnx_checked(params, onnx_dir, out, examples) -> dict:
    from calltune.export.onnx import MODEL_FILE, ONNX_SUBDIR, onnx_bytes
    from calltune.export.onnx_quantize import quantize_onnx
    from calltune.export.parity import check_variants

    qp = params["quantize"]
    report = quantize_onnx(onnx_dir, out, qp["onnx"])
    checks = check_variants(onnx_dir, out, qp["onnx"], examples, format_name=params["model"]["format"],
                            limit=qp["check_examples"], max_new_tokens=qp["check_max_new_tokens"])
    fp32 = onnx_bytes(Path(onnx_dir) / ONNX_SUBDIR / MODEL_FILE)
    click.echo(f"{'variant':8} {'file':28} {'MB':>8} {'top-1':>6} {'same calls':>10}")
    click.echo(f"{'fp32':8} {'onnx/' + MODEL_FILE:28} {fp32 / 1e6:8.1f} {1:6.3f} {1:10.0%}")
    for name, row in report.items():
        row.update(checks[name])
        click.echo(f"{name:8} {row['file']:28} {row['bytes'] / 1e6:8.1f} {row['top1_agreement']:6.3f} "
                   f"{row['same_calls']:10.0%}")
    return {"fp32_bytes": fp32, **report}


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
    report = {}
    if params["quantize"]["onnx"]:
        report["onnx"] = quantize_onnx_checked(params, onnx_dir, out, examples)
    if params["quantize"]["gguf"]:
        report["gguf"] = quantize_gguf(Path(gguf_dir), Path(gguf_out), params["quantize"]["gguf"])
    write_json(metrics, report)


if __name__ == "__main__":
    main()
