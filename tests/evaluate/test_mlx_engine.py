"""The mlx target: mlx-lm runs the tiny Gemma greedily and agrees with PyTorch token for token."""

import pytest

from calltune.engines.base import Engine
from calltune.evaluate.targets import get_target
from calltune.formats import get_format

from evaluate_helpers import EXAMPLES, assert_generates_like, models_tree

pytest.importorskip("mlx_lm", reason="mlx-lm not installed (pip install calltune[mlx])")
MAX_NEW_TOKENS = 16


@pytest.fixture(scope="module")
def mlx_engine(tmp_path_factory, tiny_gemma_dir):
    models = models_tree(tmp_path_factory.mktemp("mlx-target") / "models", tiny_gemma_dir, names=("fused",))
    return get_target("mlx", models).engine()


def test_mlx_generates_what_pytorch_generates(mlx_engine, torch_engine):
    assert isinstance(mlx_engine, Engine) and mlx_engine.name == "mlx"
    assert_generates_like(mlx_engine, torch_engine, max_new_tokens=MAX_NEW_TOKENS)


def test_mlx_honours_max_new_tokens_and_a_plain_text_stop(mlx_engine, torch_engine):
    fmt = get_format("functiongemma")
    prompt = fmt.prompt(EXAMPLES[0]["messages"], EXAMPLES[0]["tools"])
    text, n_tokens = mlx_engine.generate(prompt, 3, [])
    assert n_tokens == 3 and torch_engine.generate(prompt, 3, []) == (text, 3)
    long_text = torch_engine.generate(prompt, MAX_NEW_TOKENS, []).text
    piece = long_text[len(long_text) // 2:][:2]
    if not piece.strip():
        pytest.skip("this random model's output has no plain text to stop on")
    stopped = mlx_engine.generate(prompt, MAX_NEW_TOKENS, [piece])
    assert stopped.text == long_text[: long_text.find(piece)] and stopped.n_tokens < MAX_NEW_TOKENS
