"""The PyTorch engine on a tiny random Gemma: greedy, special tokens kept, stops honoured."""

import pytest
import torch

from calltune.engines.base import Engine, Generation, cut_at_stop
from calltune.engines.torch_engine import TorchEngine

PROMPTS = [f"<bos><start_of_turn>user\n{q}<end_of_turn>\n<start_of_turn>model\n"
           for q in ("What's the weather in Paris?", "Weather in Tokyo?", "Tell me a joke.")]
PROMPT = PROMPTS[0]
N = 24


def greedy_reference(engine: TorchEngine, prompt: str, n: int) -> list[int]:
    """Argmax of a full forward pass per step (no KV cache), stopping after an end-of-sequence id."""
    ids = engine.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    new = []
    with torch.inference_mode():
        for _ in range(n):
            next_id = int(engine.model(input_ids=ids).logits[0, -1].argmax())
            new.append(next_id)
            if next_id == engine.tokenizer.eos_token_id:
                break
            ids = torch.cat([ids, torch.tensor([[next_id]])], dim=1)
    return new


def decode(engine, ids):
    return engine.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def test_torch_engine_is_an_engine_and_generates_the_greedy_continuation(torch_engine):
    assert isinstance(torch_engine, Engine)
    reference = greedy_reference(torch_engine, PROMPT, N)
    expected_ids = reference[:-1] if reference[-1] == torch_engine.tokenizer.eos_token_id else reference
    result = torch_engine.generate(PROMPT, N, [])
    assert isinstance(result, Generation)
    assert result == (decode(torch_engine, expected_ids), len(reference))
    assert torch_engine.generate(PROMPT, N, []) == result  # deterministic


def first_fresh_pieces(engine, ids):
    """For the first position of each kind (special / plain token) whose text is new, (k, piece)."""
    added = engine.tokenizer.get_added_vocab()
    found = {}
    for k, token_id in enumerate(ids):
        piece = decode(engine, [token_id])
        kind = "special" if piece in added else "plain"
        clean = piece.strip() and "\ufffd" not in piece and decode(engine, ids[: k + 1]).endswith(piece)
        if clean and kind not in found and piece not in decode(engine, ids[:k]):
            found[kind] = (k, piece)
    return found


@pytest.mark.parametrize("kind", ["special", "plain"])
def test_generation_stops_at_a_stop_string_and_cuts_it_off(torch_engine, kind):
    """Stop on a token the model really generates: a special token (matched by id) or plain text."""
    for prompt in PROMPTS:
        reference = greedy_reference(torch_engine, prompt, N)
        found = first_fresh_pieces(torch_engine, reference)
        if kind in found:
            break
    else:
        pytest.skip(f"this random model's greedy outputs have no fresh {kind} token to stop on")
    k, piece = found[kind]
    result = torch_engine.generate(prompt, N, ["<never-generated>", piece])
    assert result == (decode(torch_engine, reference[:k]), k + 1)


def test_max_new_tokens_bounds_generation(torch_engine):
    text, n_tokens = torch_engine.generate(PROMPT, 3, [])
    assert n_tokens <= 3
    assert torch_engine.generate(PROMPT, N, [])[0].startswith(text)


def test_cut_at_stop_uses_the_earliest_stop():
    text = "call<end_function_call><start_function_response>x"
    assert cut_at_stop(text, ["<start_function_response>", "<end"]) == "call"
    assert cut_at_stop("abc", ["", "zz"]) == "abc"
    assert cut_at_stop("abc", []) == "abc"


def test_loading_refuses_pickled_weights(tmp_path, tiny_gemma_dir):
    import shutil

    for f in tiny_gemma_dir.iterdir():
        if f.suffix != ".safetensors":
            shutil.copy(f, tmp_path / f.name)
    torch.save({}, tmp_path / "pytorch_model.bin")
    with pytest.raises(OSError):
        TorchEngine(tmp_path)
