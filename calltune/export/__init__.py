"""Deployable artifacts made from models/fused.

- onnx: the Transformers.js layout (onnx/model.onnx + config, generation config, tokenizer files)
  exported with optimum-onnx, checked against PyTorch (parity).
- onnx_quantize: fp16 / 8-bit / 4-bit variants of onnx/model.onnx, each measured against fp32.
- parity: the exports' and variants' checks against PyTorch, run by calltune.engines.
- gguf: llama.cpp files (convert, quantize through calltune.engines.libllama), Ollama Modelfile.
- run: the export and quantize stages end to end (what stages/export.py and quantize.py write).
"""
