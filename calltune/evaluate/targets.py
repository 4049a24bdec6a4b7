"""The evaluation targets: each name the evaluate stage accepts -> the artifact and the engine that runs it.

| target            | runtime      | artifact (under models/)                       | made by                 |
|-------------------|--------------|------------------------------------------------|-------------------------|
| base              | PyTorch      | base/                                          | base stage              |
| tuned             | PyTorch      | fused/                                         | fuse stage              |
| onnx-fp32         | onnxruntime  | onnx/onnx/model.onnx                           | export (export.onnx)    |
| onnx-fp16/int8/q4 | onnxruntime  | onnx_quantized/onnx/<Transformers.js file>     | quantize (quantize.onnx)|
| gguf-f16/bf16/f32 | llama.cpp    | gguf/model-<type>.gguf                         | export (export.gguf)    |
| gguf-q8_0/q4_K_M  | llama.cpp    | gguf_quantized/model-<type>.gguf               | quantize (quantize.gguf)|
| mlx               | mlx-lm       | fused/                                         | fuse stage              |

Names are stable: dvc.yaml's evaluate matrix, metrics/<target>.json and the plot files use them.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from calltune.errors import InputError
from calltune.export.gguf import gguf_name
from calltune.export.onnx_quantize import FP32, VARIANTS as ONNX_VARIANTS
from calltune.params import load_schema

_PARAMS = load_schema("params.schema.json")["properties"]
GGUF_EXPORT_TYPES = tuple(_PARAMS["export"]["properties"]["gguf"]["items"]["enum"])
GGUF_QUANT_TYPES = tuple(_PARAMS["quantize"]["properties"]["gguf"]["items"]["enum"])
ONNX_QUANT_TYPES = tuple(_PARAMS["quantize"]["properties"]["onnx"]["items"]["enum"])
ONNX_FP32 = "fp32"


@dataclass(frozen=True)
class Target:
    name: str
    runtime: str  # torch | onnx | gguf | mlx
    directory: Path  # the model / export directory
    file: str | None  # the model file in it (onnx: under onnx/; gguf: the file), None for a directory
    stage: str  # the pipeline stage that writes the artifact
    condition: str | None = None  # the params setting under which that stage writes it

    @property
    def model_path(self) -> Path:
        if self.runtime == "onnx":
            return self.directory / "onnx" / self.file
        return self.directory / self.file if self.file else self.directory

    def size_paths(self) -> list[Path]:
        """The files a user ships to run this target: a model directory; an ONNX graph (with its
        external data) plus the config and tokenizer files beside it; a GGUF file."""
        if self.runtime != "onnx":
            return [self.model_path]
        data = self.model_path.with_name(self.model_path.name + "_data")
        return [self.model_path, *([data] if data.is_file() else []),
                *sorted(p for p in self.directory.iterdir() if p.is_file())]

    def check_present(self) -> None:
        if not self.model_path.exists():
            when = f" when {self.condition}" if self.condition else ""
            raise InputError(f"artifact of target {self.name} not found: the {self.stage} stage writes it{when}",
                             path=self.model_path)

    def engine(self, threads: int | None = None):
        """A fresh engine (calltune.engines.base.Engine) on this target's artifact."""
        self.check_present()
        if self.runtime == "torch":
            from calltune.engines.torch_engine import TorchEngine

            return TorchEngine(self.directory, threads=threads, name=self.name)
        if self.runtime == "onnx":
            from calltune.engines.onnx_engine import OnnxEngine

            return OnnxEngine(self.directory, model_file=self.file, threads=threads, name=self.name)
        if self.runtime == "gguf":
            from calltune.engines.llama_cpp import LlamaCppEngine

            return LlamaCppEngine(self.model_path, threads=threads, name=self.name)
        if importlib.util.find_spec("mlx_lm") is None:
            raise InputError("target mlx needs mlx-lm: pip install 'calltune[mlx]'", field="evaluate.targets")
        from calltune.engines.mlx_engine import MlxEngine

        return MlxEngine(self.directory, name=self.name)


def _registry(models: Path) -> dict[str, Target]:
    targets = [
        Target("base", "torch", models / "base", None, "base"),
        Target("tuned", "torch", models / "fused", None, "fuse"),
        Target(f"onnx-{ONNX_FP32}", "onnx", models / "onnx", FP32.file, "export", "export.onnx is true"),
        *(Target(f"onnx-{v}", "onnx", models / "onnx_quantized", ONNX_VARIANTS[v].file, "quantize",
                 f"quantize.onnx includes {v}") for v in ONNX_QUANT_TYPES),
        *(Target(f"gguf-{t}", "gguf", models / "gguf", gguf_name(t), "export", f"export.gguf includes {t}")
          for t in GGUF_EXPORT_TYPES),
        *(Target(f"gguf-{q}", "gguf", models / "gguf_quantized", gguf_name(q), "quantize",
                 f"quantize.gguf includes {q}") for q in GGUF_QUANT_TYPES),
        Target("mlx", "mlx", models / "fused", None, "fuse"),
    ]
    return {t.name: t for t in targets}


TARGET_NAMES = tuple(_registry(Path("models")))


def get_target(name: str, models="models") -> Target:
    """The target `name` with its artifact under the `models` directory."""
    registry = _registry(Path(models))
    if name not in registry:
        raise InputError(f"unknown target {name!r} (expected one of {', '.join(registry)})", field="target")
    return registry[name]


def targets_from_params(params: dict) -> list[str]:
    """The targets whose artifacts the pipeline makes with these params (mlx is opt-in)."""
    export, quantize = params["export"], params["quantize"]
    return ["base", "tuned",
            *([f"onnx-{ONNX_FP32}"] if export["onnx"] else []),
            *(f"onnx-{v}" for v in quantize["onnx"]),
            *(f"gguf-{t}" for t in export["gguf"]),
            *(f"gguf-{q}" for q in quantize["gguf"])]

