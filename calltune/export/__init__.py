"""Deployable artifacts made from models/fused.

- onnx: the Transformers.js layout (onnx/model.onnx + config, generation config, tokenizer files)
  exported with optimum-onnx, checked against PyTorch (parity).
- onnx_quantize: fp16 / 8-bit / 4-bit variants of onnx/model.onnx, each measured against fp32.
- onnx_runtime: a small onnxruntime runner (KV cache, greedy) used by the checks above.
- gguf: llama.cpp files (another module).
"""
