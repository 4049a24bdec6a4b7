"""GGUF export and quantization, checked with the real llama.cpp engine (calltune.engines.libllama)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from gguf_helpers import CALLS, TOOLS, conversation, f16_rounding_model

from calltune.errors import InputError
from calltune.export.gguf import (
    check_gguf,
    export_gguf,
    gguf_name,
    quantize_gguf,
    read_gguf_metadata,
    stop_strings,
)
from calltune.engines.libllama import Context, Model, system_info
from calltune.export.modelfile import render_modelfile
from calltune.formats import get_format
from calltune.tokenizer import CONTROL, FUNCTIONGEMMA_TOKENS

FMT = get_format("functiongemma")
PROMPTS = [FMT.prompt(conversation(query), TOOLS) for query, _, _ in CALLS[:3]] + [
    FMT.prompt(conversation("Remind me to call mom tomorrow at 5 pm"), TOOLS)]


@pytest.fixture(scope="module")
def engines(tool_ggufs):
    from calltune.engines.llama_cpp import LlamaCppEngine

    float_dir, quant_dir, _, _ = tool_ggufs
    paths = {"f32": float_dir / gguf_name("f32"), "f16": float_dir / gguf_name("f16"),
             "q8_0": quant_dir / gguf_name("q8_0"), "q4_K_M": quant_dir / gguf_name("q4_K_M")}
    return {kind: LlamaCppEngine(path, threads=1) for kind, path in paths.items()}  # barriers stall on a busy machine


@pytest.fixture(scope="module")
def torch_model(taught_gemma_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 64-wide model gains nothing from more, and a loaded machine punishes it
    model = AutoModelForCausalLM.from_pretrained(taught_gemma_dir, dtype=torch.float32).eval()
    yield model, AutoTokenizer.from_pretrained(taught_gemma_dir)
    torch.set_num_threads(threads)


def torch_greedy(torch_model, prompt_ids: list[int], n: int) -> list[int]:
    """PyTorch's greedy ids, ending at the first stop token (<eos>, <start_function_response>,
    <end_of_turn>), as llama.cpp's run ends with FMT.stop_strings."""
    model, _ = torch_model
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt_ids]), do_sample=False, max_new_tokens=n,
                             eos_token_id=[1, 50, 106], pad_token_id=0)
    return out[0, len(prompt_ids):].tolist()


def llama_logits(gguf, ids: list[int]):
    """llama.cpp's logits at every position of `ids`."""
    return Context(Model(gguf), n_ctx=512, threads=1).eval(ids, all_logits=True)


def torch_logits(model, ids: list[int]):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy()


def test_every_gguf_carries_the_template_and_control_function_tokens(tool_ggufs):
    float_dir, quant_dir, exported, quantized = tool_ggufs
    for folder, report in ((float_dir, exported), (quant_dir, quantized)):
        for row in report.values():
            meta = read_gguf_metadata(folder / row["file"])
            assert meta["architecture"] == "gemma3"
            assert meta["chat_template"] == FMT.chat_template
            for token_id, name in FUNCTIONGEMMA_TOKENS.items():
                assert (meta["tokens"][token_id], meta["token_types"][token_id]) == (name, CONTROL)
            assert row["bytes"] == (folder / row["file"]).stat().st_size
            assert (folder / row["modelfile"]).read_text().startswith("# Ollama Modelfile")
    assert sorted(p.name for p in float_dir.iterdir()) == [
        "model-f16.Modelfile", "model-f16.gguf", "model-f32.Modelfile", "model-f32.gguf"]


def test_quantized_files_use_the_requested_types(tool_ggufs):
    _, _, exported, quantized = tool_ggufs
    assert set(quantized["q8_0"]["tensor_types"]) <= {"F32", "Q8_0"}
    # Hidden size 64 is below the 256-wide K-quant blocks: llama.cpp falls back to 32-wide types
    # for such tensors, so the tiny q4_K_M file must hold something other than F16/F32 but not Q4_K.
    q4 = quantized["q4_K_M"]["tensor_types"]
    assert set(q4) - {"F32"} and not set(q4) & {"F16", "Q4_K"}
    assert quantized["q4_K_M"]["source"] == "model-f32.gguf"
    assert quantized["q4_K_M"]["bytes"] < quantized["q8_0"]["bytes"] < exported["f16"]["bytes"]


def test_llama_cpp_tokenizes_prompts_like_transformers(engines, torch_model):
    _, tokenizer = torch_model
    for prompt in PROMPTS:
        assert engines["f16"].tokenize(prompt) == tokenizer(prompt, add_special_tokens=False).input_ids


def test_f32_gguf_greedy_tokens_equal_pytorch(engines, torch_model):
    engine = engines["f32"]
    for prompt in PROMPTS:
        ids = engine.tokenize(prompt)
        assert engine.generate_ids(ids, 20, FMT.stop_strings) == torch_greedy(torch_model, ids, 20)


# How far llama.cpp's logits may be from PyTorch's float32 ones. llama.cpp's CPU kernels round to
# f16 (relative error up to 2^-11) where PyTorch does not: K and V in its f16 KV cache and the query
# converted for the f16 x f16 dot products with them; GELU, a table of f16 values indexed by the f16
# input; and in an f16 file every weight matrix and every input of a product with one. Their SIMD
# sums run in another order, but in f32 (at most ~256 terms: 256 * 2^-24 of the largest logit,
# nothing next to f16). Those roundings cannot be reproduced bit for bit (flash attention's online
# softmax, ggml's exp, where a scale is applied), but their size can: the test makes the same
# roundings in PyTorch (gguf_helpers.f16_rounding_model) and allows llama.cpp twice the deviation
# they cause. Measured on the taught tiny model (AMD EPYC, AVX2, no AVX-512; the prebuilt library
# runs the same x86-64-v3 kernels on every x86-64 CPU): f32 file 0.0096 against an allowance of 0.019,
# f16 file 0.018 against 0.038 (largest logit 16.1).
ACCUMULATION = 256 * 2.0 ** -24


@pytest.mark.parametrize("kind", ["f32", "f16"])
def test_gguf_logits_match_pytorch(tool_ggufs, engines, torch_model, taught_gemma_dir, kind):
    """Every prompt position."""
    ids = engines[kind].tokenize(PROMPTS[0] + "<start_function_call>call:get_weather{location:")
    ours, reference = llama_logits(tool_ggufs[0] / gguf_name(kind), ids), torch_logits(torch_model[0], ids)
    rounded = torch_logits(f16_rounding_model(taught_gemma_dir, f16_weights=kind == "f16"), ids)
    f16_effect = abs(rounded - reference).max()
    allowed = 2 * f16_effect + ACCUMULATION * abs(reference).max()
    deviation = abs(ours - reference).max()
    assert 0 < f16_effect < 0.01 * abs(reference).max()  # the emulation rounds, and only a little
    assert deviation <= allowed, f"max |llama.cpp - PyTorch| {deviation:.4g} > {allowed:.4g} ({system_info()})"
    assert (ours.argmax(-1) == reference.argmax(-1)).mean() >= 0.95


@pytest.mark.parametrize("kind", ["f16", "q8_0", "q4_K_M"])
def test_gguf_calls_the_tools_it_was_taught(engines, kind):
    for query, name, arguments in CALLS:
        text = engines[kind].generate(FMT.prompt(conversation(query), TOOLS), 48, FMT.stop_strings).text
        result = FMT.parse(text)
        assert result.ok, (text, result.error)
        assert [call["name"] for call in result.calls] == [name]
        if kind != "q4_K_M":  # 4-bit on a 64-wide random model: the name must survive, the value may not
            assert result.calls[0]["arguments"] == arguments


def test_modelfile_for_functiongemma():
    text = render_modelfile("model-q4_K_M.gguf", FMT.stop_strings, functiongemma=True)
    lines = text.splitlines()
    assert "FROM ./model-q4_K_M.gguf" in lines
    assert {"RENDERER functiongemma", "PARSER functiongemma", 'TEMPLATE """{{ .Prompt }}"""'} <= set(lines)
    assert {'PARAMETER stop "<start_function_response>"', 'PARAMETER stop "<end_of_turn>"',
            "PARAMETER temperature 0"} <= set(lines)


def test_modelfile_for_other_models_stops_at_eos():
    meta = {"tokens": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], "eos_id": 2}
    text = render_modelfile("model-f16.gguf", stop_strings(meta), functiongemma=False)
    assert 'PARAMETER stop "<|im_end|>"' in text.splitlines()
    assert not [line for line in text.splitlines() if line.startswith(("RENDERER", "PARSER"))]


def test_unsupported_tokenizer_is_a_clear_error_and_leaves_nothing(tiny_llama_dir, tmp_path):
    # llama.cpp's converter identifies byte-level BPE pre-tokenizers by a hash of known models;
    # the tiny Llama's freshly trained tokenizer is none of them.
    with pytest.raises(InputError, match=r"converter cannot convert.*export\.gguf"):
        export_gguf(tiny_llama_dir, tmp_path / "out", ["f16"])
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_model_without_chat_template_is_rejected(tiny_gemma_dir, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_gemma_dir, model)
    config = json.loads((model / "tokenizer_config.json").read_text())
    del config["chat_template"]
    (model / "tokenizer_config.json").write_text(json.dumps(config))
    (model / "chat_template.jinja").unlink()
    with pytest.raises(InputError, match="no chat template"):
        export_gguf(model, tmp_path / "out", ["f16"])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("call", [lambda d, o: export_gguf(d, o, ["q8_0"]),
                                  lambda d, o: quantize_gguf(d, o, ["f16"])])
def test_unknown_types_are_rejected(call, tmp_path):
    with pytest.raises(InputError, match="unknown GGUF type"):
        call(tmp_path, tmp_path / "out")


def test_quantize_needs_a_float_gguf(tmp_path):
    with pytest.raises(InputError, match="no float GGUF"):
        quantize_gguf(tmp_path, tmp_path / "out", ["q8_0"])


def test_corrupt_source_is_a_clear_error_and_leaves_nothing(tmp_path):
    bad = tmp_path / "model-f16.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(InputError, match="not a readable GGUF"):
        quantize_gguf(bad, tmp_path / "out", ["q8_0"])
    assert not (tmp_path / "out").exists()


def test_llama_cpp_refusal_leaves_nothing(tmp_path):
    import gguf
    import numpy as np

    source = tmp_path / "model-f16.gguf"  # a well-formed GGUF of an architecture llama.cpp lacks
    writer = gguf.GGUFWriter(source, "no-such-architecture")
    writer.add_tensor("weight", np.zeros((32, 64), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(RuntimeError, match="failed to quantize"):
        quantize_gguf(source, tmp_path / "out", ["q8_0"])
    assert not (tmp_path / "out").exists()


def test_check_rejects_a_gguf_with_another_template(tool_ggufs):
    float_dir = tool_ggufs[0]
    with pytest.raises(RuntimeError, match="chat_template differs"):
        check_gguf(float_dir / gguf_name("f16"), "{{ messages }}")
