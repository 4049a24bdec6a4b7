"""ONNX export: the Transformers.js layout, and the exported graph computes what PyTorch computes."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner
from export_helpers import copy_without_chat_template, stage_main, repo_params
from gguf_helpers import CALLS, TOOLS, conversation

from calltune.errors import InputError
from calltune.export.onnx import MODEL_FILE, copy_layout_files, export_onnx, layout_config
from calltune.engines.onnx_engine import OnnxCausalLM, OnnxEngine
from calltune.export.parity import check_export, load_check_set, load_torch, logits_parity
from calltune.formats import get_format

PARITY = 1e-4  # fp32 ONNX vs fp32 PyTorch: same math, other kernels


def test_transformers_js_layout(tool_onnx):
    fused, onnx_dir, _, _ = tool_onnx
    assert sorted(p.name for p in (onnx_dir / "onnx").iterdir()) == [MODEL_FILE]  # one file: no external data
    for name in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json", "chat_template.jinja"):
        assert (onnx_dir / name).is_file(), name
    config = json.loads((onnx_dir / "config.json").read_text())
    generation = json.loads((onnx_dir / "generation_config.json").read_text())
    assert config["eos_token_id"] == generation["eos_token_id"] == [1, 106, 50]
    assert "transformers.js_config" not in config  # no external-data flag for a single-file model
    assert config["model_type"] == "gemma3_text"
    tokenizer_config = json.loads((onnx_dir / "tokenizer_config.json").read_text())
    assert tokenizer_config["chat_template"] == get_format("functiongemma").chat_template
    assert (onnx_dir / "tokenizer.json").read_bytes() == (fused / "tokenizer.json").read_bytes()
    inputs = {i.name for i in OnnxCausalLM(onnx_dir / "onnx" / MODEL_FILE).session.get_inputs()}
    assert {"input_ids", "attention_mask", "past_key_values.0.key", "past_key_values.5.value"} <= inputs


def test_logits_match_pytorch(tool_onnx, check_examples):
    fused, onnx_dir, _, _ = tool_onnx
    tokenizer = OnnxEngine(onnx_dir).tokenizer
    checks = load_check_set(check_examples, tokenizer, get_format("functiongemma"), limit=5)
    assert min(len(ids) for ids in checks.full_ids) > 64  # past the sliding window of the tiny Gemma
    parity = logits_parity(load_torch(fused), OnnxCausalLM(onnx_dir / "onnx" / MODEL_FILE), checks.full_ids)
    print(f"\ntiny Gemma 3: max |ONNX - PyTorch| logits {parity['max_abs_diff']:.2e}, "
          f"through the KV cache {parity['cached_max_abs_diff']:.2e}")
    assert parity["max_abs_diff"] < PARITY and parity["cached_max_abs_diff"] < PARITY


def test_greedy_tool_calls_match_pytorch(tool_onnx, check_examples):
    fused, onnx_dir, _, _ = tool_onnx
    result = check_export(fused, onnx_dir, check_examples, format_name="functiongemma", limit=5, max_new_tokens=40)
    assert result["same_text"] == result["same_calls"] == 1.0 and result["prompts"] == 5
    engine, fmt = OnnxEngine(onnx_dir), get_format("functiongemma")
    for query, name, arguments in CALLS[:2]:
        text = engine.generate(fmt.prompt(conversation(query), TOOLS), 40, fmt.stop_strings).text
        assert fmt.parse(text).calls == [{"name": name, "arguments": arguments}], text


def test_llama_export_matches_pytorch(tiny_llama_dir, tmp_path):
    export_onnx(tiny_llama_dir, tmp_path / "onnx")
    model = OnnxCausalLM(tmp_path / "onnx" / "onnx" / MODEL_FILE)
    assert model.has_position_ids
    ids = [list(range(5, 90)), list(range(300, 340))]
    parity = logits_parity(load_torch(tiny_llama_dir), model, ids)
    print(f"\ntiny Llama: max |ONNX - PyTorch| logits {parity['max_abs_diff']:.2e} "
          f"(KV cache {parity['cached_max_abs_diff']:.2e})")
    assert parity["max_abs_diff"] < PARITY and parity["cached_max_abs_diff"] < PARITY
    assert "<tool_call>" in json.loads((tmp_path / "onnx" / "tokenizer_config.json").read_text())["chat_template"]


def test_layout_config_flags_external_data_only_when_there_is_some():
    config = {"model_type": "gemma3_text", "eos_token_id": 1,
              "transformers.js_config": {"use_external_data_format": {"old.onnx": True}, "kv_cache_dtype": "float16"}}
    single = layout_config(config, [], eos=[1, 106])
    assert single["eos_token_id"] == [1, 106]
    assert single["transformers.js_config"] == {"kv_cache_dtype": "float16"}
    external = layout_config(config, [MODEL_FILE])
    assert external["transformers.js_config"]["use_external_data_format"] == {MODEL_FILE: True}
    assert external["eos_token_id"] == 1
    assert "transformers.js_config" not in layout_config({"eos_token_id": 1}, [])


def test_template_only_in_jinja_file_goes_into_tokenizer_config(tiny_gemma_dir, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(tiny_gemma_dir, src)
    config = json.loads((src / "tokenizer_config.json").read_text())
    template = config.pop("chat_template")
    (src / "tokenizer_config.json").write_text(json.dumps(config))
    (tmp_path / "out").mkdir()
    copy_layout_files(src, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "tokenizer_config.json").read_text())["chat_template"] == template


def test_model_without_chat_template_is_refused(tiny_gemma_dir, tmp_path):
    src = copy_without_chat_template(tiny_gemma_dir, tmp_path / "src")
    with pytest.raises(InputError, match="no chat template"):
        export_onnx(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_incomplete_model_dir_names_the_missing_file(tiny_gemma_dir, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(tiny_gemma_dir, src)
    (src / "tokenizer.json").unlink()
    with pytest.raises(InputError, match="tokenizer.json missing"):
        export_onnx(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_export_stage_writes_layout_and_metrics(tool_onnx, check_examples, tmp_path):
    fused = tool_onnx[0]
    params = repo_params(tmp_path / "params.yaml", export={"onnx": True, "gguf": [], "check_examples": 3,
                                                            "check_max_new_tokens": 24})
    args = ["--params", str(params), "--fused", str(fused), "--onnx-out", str(tmp_path / "onnx"),
            "--examples", str(check_examples), "--metrics", str(tmp_path / "metrics.json")]
    result = CliRunner().invoke(stage_main("export"), args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "metrics.json").read_text())["onnx"]
    assert metrics["max_abs_diff"] < PARITY and metrics["same_calls"] == 1.0 and metrics["prompts"] == 3
    assert (tmp_path / "onnx" / "onnx" / MODEL_FILE).is_file()
    args[3] = str(tmp_path / "no-such-model")
    missing = CliRunner().invoke(stage_main("export"), args)
    assert missing.exit_code == 2 and "error:" in missing.output and "config.json missing" in missing.output



def test_parity_check_sees_a_different_model(tool_onnx, tiny_gemma_dir, check_examples):
    """The same check against the untaught model: the difference it must report is large."""
    _, onnx_dir, _, _ = tool_onnx
    checks = load_check_set(check_examples, OnnxEngine(onnx_dir).tokenizer, get_format("functiongemma"), limit=1)
    parity = logits_parity(load_torch(tiny_gemma_dir), OnnxCausalLM(onnx_dir / "onnx" / MODEL_FILE), checks.full_ids)
    assert parity["max_abs_diff"] > 1 and parity["cached_max_abs_diff"] > 1


def test_tail_keeps_the_last_rows():
    import numpy as np

    from calltune.export.parity import Tail

    tail = Tail(3)
    for start in range(0, 50, 10):
        tail.add(np.arange(start, start + 10)[:, None])
    assert tail.rows().ravel().tolist() == [47, 48, 49] and len(tail.kept) == 1
    single = Tail(2)
    for value in range(5):
        single.add(np.array([[value]]))
    assert single.rows().ravel().tolist() == [3, 4] and len(single.kept) == 2


def test_prompts_sharing_a_beginning_reuse_its_passes_bit_for_bit(tool_onnx, check_examples):
    """OnnxCausalLM.prefill takes the passes a prompt shares with the previous one from their cache:
    the same logits to the bit as a fresh session, and the shared passes are not run again."""
    import numpy as np

    _, onnx_dir, _, _ = tool_onnx
    tokenizer = OnnxEngine(onnx_dir).tokenizer
    texts = load_check_set(check_examples, tokenizer, get_format("functiongemma"), limit=3).prompts
    prompts = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    chunk = 16
    shared = min(next(i for i, (a, b) in enumerate(zip(p, prompts[0])) if a != b) for p in prompts[1:])
    assert shared > 2 * chunk  # the tool declarations
    model, fresh = OnnxCausalLM(onnx_dir / "onnx" / MODEL_FILE), OnnxCausalLM(onnx_dir / "onnx" / MODEL_FILE)
    fed: list[int] = []
    step = model.step
    model.step = lambda ids, cache, past: (fed.append(len(ids)), step(ids, cache, past))[1]
    for ids in prompts + [prompts[0][:shared // 2] + [7]]:  # the last: fewer passes than before, then other ones
        logits, cache = model.prefill(ids, chunk)
        fresh.forget()
        expected, expected_cache = fresh.prefill(ids, chunk)
        assert np.array_equal(logits, expected)
        assert all(np.array_equal(cache[k], expected_cache[k]) for k in expected_cache)
    reused = (shared // chunk) * chunk
    assert sum(fed) <= sum(map(len, prompts)) - reused * (len(prompts) - 1) + shared // 2 + 1
