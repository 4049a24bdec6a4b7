"""export stage: models/fused -> models/onnx (the Transformers.js layout, checked against PyTorch on
the test split: max |delta logits| and greedy agreement) and GGUF files; numbers in metrics/export.json."""

from pathlib import Path

import click

from calltune.cli import params_option, stage
from calltune.export.gguf import export_gguf
from calltune.io import write_json


def export_onnx_checked(params, fused, out, examples) -> dict:
    from calltune.export.onnx import export_onnx
    from calltune.export.parity import check_export

    ep = params["export"]
    summary = export_onnx(fused, out)
    checks = check_export(fused, out, examples, format_name=params["model"]["format"],
                          limit=ep["check_examples"], max_new_tokens=ep["check_max_new_tokens"])
    click.echo(f"ONNX -> {out}: {summary['bytes'] / 1e6:.1f} MB, max |delta logits| vs PyTorch "
               f"{checks['max_abs_diff']:.2e} (KV cache {checks['cached_max_abs_diff']:.2e}), same greedy calls "
               f"{checks['same_calls']:.0%} of {checks['prompts']} prompts")
    return {**summary, **checks}


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
    report = {}
    if params["export"]["onnx"]:
        report["onnx"] = export_onnx_checked(params, fused, onnx_out, examples)
    if params["export"]["gguf"]:
        report["gguf"] = export_gguf(Path(fused), Path(gguf_out), params["export"]["gguf"])
    write_json(metrics, report)


if __name__ == "__main__":
    main()
