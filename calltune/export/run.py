"""The export and quantize stages end to end (stages/export.py and stages/quantize.py are their CLIs,
which write what these return as metrics/export.json and metrics/quantize.json). `say` gets the
lines the stages print, as each artifact is done."""

from __future__ import annotations

from pathlib import Path

from calltune.export.gguf import export_gguf, quantize_gguf


def export_models(params: dict, fused, onnx_out, gguf_out, examples, say=print) -> dict:
    """models/fused -> ONNX (export.onnx; checked against PyTorch on `examples`) and GGUF files
    (export.gguf). Returns {"onnx": ..., "gguf": ...} for what params ask for."""
    return _what_is_asked(params["export"], lambda: export_onnx_checked(params, fused, onnx_out, examples, say),
                          lambda: export_gguf(Path(fused), Path(gguf_out), params["export"]["gguf"]))


def _what_is_asked(block: dict, onnx, gguf) -> dict:
    """{"onnx": onnx(), "gguf": gguf()} for the formats the params block turns on."""
    return {name: make() for name, make in (("onnx", onnx), ("gguf", gguf)) if block[name]}


def export_onnx_checked(params: dict, fused, out, examples, say=print) -> dict:
    from calltune.export.onnx import export_onnx
    from calltune.export.parity import check_export

    ep = params["export"]
    summary = export_onnx(fused, out)
    checks = check_export(fused, out, examples, format_name=params["model"]["format"],
                          limit=ep["check_examples"], max_new_tokens=ep["check_max_new_tokens"])
    say(f"ONNX -> {out}: {summary['bytes'] / 1e6:.1f} MB, max |delta logits| vs PyTorch "
        f"{checks['max_abs_diff']:.2e} (KV cache {checks['cached_max_abs_diff']:.2e}), same greedy calls "
        f"{checks['same_calls']:.0%} of {checks['prompts']} prompts")
    return {**summary, **checks}


def quantize_models(params: dict, onnx_dir, out, gguf_dir, gguf_out, examples, say=print) -> dict:
    """models/onnx -> ONNX variants (quantize.onnx; each checked against fp32 on `examples`) and
    models/gguf -> quantized GGUF files (quantize.gguf). Returns {"onnx": ..., "gguf": ...}."""
    return _what_is_asked(params["quantize"], lambda: quantize_onnx_checked(params, onnx_dir, out, examples, say),
                          lambda: quantize_gguf(Path(gguf_dir), Path(gguf_out), params["quantize"]["gguf"]))


def quantize_onnx_checked(params: dict, onnx_dir, out, examples, say=print) -> dict:
    from calltune.export.onnx import MODEL_FILE, ONNX_SUBDIR, onnx_bytes
    from calltune.export.onnx_quantize import quantize_onnx
    from calltune.export.parity import check_variants

    qp = params["quantize"]
    report = quantize_onnx(onnx_dir, out, qp["onnx"])
    checks = check_variants(onnx_dir, out, qp["onnx"], examples, format_name=params["model"]["format"],
                            limit=qp["check_examples"], max_new_tokens=qp["check_max_new_tokens"])
    fp32 = onnx_bytes(Path(onnx_dir) / ONNX_SUBDIR / MODEL_FILE)
    say(f"{'variant':8} {'file':28} {'MB':>8} {'top-1':>6} {'same calls':>10}")
    say(f"{'fp32':8} {'onnx/' + MODEL_FILE:28} {fp32 / 1e6:8.1f} {1:6.3f} {1:10.0%}")
    for name, row in report.items():
        row.update(checks[name])
        say(f"{name:8} {row['file']:28} {row['bytes'] / 1e6:8.1f} {row['top1_agreement']:6.3f} "
            f"{row['same_calls']:10.0%}")
    return {"fp32_bytes": fp32, **report}
