"""Export a transformers model directory to the ONNX layout Transformers.js loads.

    OUT/onnx/model.onnx            optimum-onnx `text-generation-with-past` (inputs input_ids,
                                   attention_mask[, position_ids], past_key_values.N.key/value;
                                   outputs logits, present.N.key/value)
    OUT/onnx/model.onnx_data       only for models over protobuf's 2 GB limit
    OUT/config.json                the model config; eos_token_id = every stop token id;
                                   transformers.js_config.use_external_data_format only when
                                   the weights are external
    OUT/generation_config.json, tokenizer.json, tokenizer_config.json (with chat_template),
    special_tokens_map.json, chat_template.jinja   copied from the model directory

The exporter runs in a temporary directory; OUT appears whole or not at all.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from calltune.errors import InputError
from calltune.io import atomic_path, read_json, write_json

ONNX_SUBDIR = "onnx"
MODEL_FILE = "model.onnx"
EXTERNAL_DATA = "model.onnx_data"  # the one name Transformers.js looks for
TASK = "text-generation-with-past"
REQUIRED_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                  "special_tokens_map.json")
OPTIONAL_FILES = ("chat_template.jinja",)
TJS_CONFIG = "transformers.js_config"


def check_model_dir(model_dir: Path) -> None:
    """The files Transformers.js needs must already be in the model directory."""
    for name in REQUIRED_FILES:
        if not (model_dir / name).is_file():
            raise InputError(f"{name} missing: the model directory is not a complete fused model", path=model_dir)
    if not chat_template(model_dir):
        raise InputError("no chat template (tokenizer_config.json has none and there is no chat_template.jinja)",
                         path=model_dir / "tokenizer_config.json", field="chat_template")


def chat_template(model_dir: Path) -> str | None:
    """The template in tokenizer_config.json, else the one in chat_template.jinja."""
    template = read_json(model_dir / "tokenizer_config.json").get("chat_template")
    jinja = model_dir / "chat_template.jinja"
    if not template and jinja.is_file():
        template = jinja.read_text(encoding="utf-8")
    return template or None


def run_exporter(model_dir: Path, work: Path) -> Path:
    """optimum-onnx export into `work`; returns the path of model.onnx."""
    from optimum.exporters.onnx import main_export

    main_export(str(model_dir), output=work, task=TASK, device="cpu", dtype="fp32", do_validation=False,
                trust_remote_code=False, library_name="transformers", local_files_only=True)
    model = work / MODEL_FILE
    if not model.is_file():
        raise RuntimeError(f"optimum-onnx wrote no {MODEL_FILE} in {work}: {sorted(p.name for p in work.iterdir())}")
    return model


def stop_token_ids(model_dir: Path) -> list[int] | int | None:
    eos = read_json(model_dir / "generation_config.json").get("eos_token_id")
    return eos if eos is not None else read_json(model_dir / "config.json").get("eos_token_id")


def layout_config(config: dict, external_files: list[str], eos=None) -> dict:
    """config.json for Transformers.js: stop ids as eos (when given), and the external-data flag for
    exactly the files in `external_files` (no flag at all for single-file models)."""
    config = dict(config)
    if eos is not None:
        config["eos_token_id"] = eos
    tjs = {k: v for k, v in config.pop(TJS_CONFIG, {}).items() if k != "use_external_data_format"}
    if external_files:
        tjs["use_external_data_format"] = {name: True for name in external_files}
    return {**config, **({TJS_CONFIG: tjs} if tjs else {})}


def copy_layout_files(src: Path, out: Path) -> None:
    """Generation config, tokenizer files and chat template; the template also goes inside
    tokenizer_config.json, the only place Transformers.js reads it from."""
    for name in REQUIRED_FILES[1:] + OPTIONAL_FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, out / name)
    tokenizer_config = read_json(out / "tokenizer_config.json")
    if not tokenizer_config.get("chat_template") and (template := chat_template(src)):
        write_json(out / "tokenizer_config.json", {**tokenizer_config, "chat_template": template})


def write_layout(exported: Path, model_dir: Path, out: Path) -> bool:
    """Move the exported graph into out/onnx and add the config and tokenizer files.
    Returns whether the weights are external."""
    onnx_dir = out / ONNX_SUBDIR
    onnx_dir.mkdir(parents=True)
    shutil.move(exported / MODEL_FILE, onnx_dir / MODEL_FILE)
    external = (exported / EXTERNAL_DATA).is_file()
    if external:
        shutil.move(exported / EXTERNAL_DATA, onnx_dir / EXTERNAL_DATA)
    copy_layout_files(model_dir, out)
    config = layout_config(read_json(exported / "config.json"), [MODEL_FILE] if external else [],
                           eos=stop_token_ids(model_dir))
    write_json(out / "config.json", config)
    return external


def export_onnx(model_dir, out_dir) -> dict:
    """Export `model_dir` to the Transformers.js layout in `out_dir`; returns a summary."""
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    check_model_dir(model_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".onnx-export-", dir=out_dir.parent) as work, \
            atomic_path(out_dir) as tmp:
        run_exporter(model_dir, Path(work))
        external = write_layout(Path(work), model_dir, tmp)
    return {"model": (out_dir / ONNX_SUBDIR / MODEL_FILE).as_posix(), "external_data": external,
            "bytes": onnx_bytes(out_dir / ONNX_SUBDIR / MODEL_FILE)}


def onnx_bytes(model_path: Path) -> int:
    """Size of an ONNX model with its external data, if any."""
    data = model_path.with_name(model_path.name + "_data")
    return model_path.stat().st_size + (data.stat().st_size if data.is_file() else 0)
