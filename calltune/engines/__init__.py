"""Inference engines: a rendered prompt in, greedy text out, one protocol (base.Engine) for all.

- base: the Engine protocol, Generation, and the one way a generation ends (finish, cut_at_stop)
- torch_engine: PyTorch on a Hugging Face directory (TorchEngine; batched generation)
- onnx_engine: onnxruntime on the Transformers.js layout of an ONNX export (OnnxEngine)
- llama_cpp: llama.cpp in-process on a GGUF (LlamaCppEngine), through libllama
- libllama: the prebuilt llama.cpp's C library through ctypes (also the GGUF quantizer's)
- mlx_engine: mlx-lm on Apple silicon (MlxEngine)

Used by evaluate (every target), export's parity checks and serve; engines import neither.
Every engine takes an optional calltune.constrain.Constraint (schema-constrained decoding).
"""
