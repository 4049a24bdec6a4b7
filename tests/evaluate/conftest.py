import pytest

from evaluate_helpers import teach_tool_calls


@pytest.fixture(scope="session")
def torch_engine(tiny_gemma_dir):
    from calltune.evaluate.engines import TorchEngine

    return TorchEngine(tiny_gemma_dir)


@pytest.fixture(scope="session")
def taught_gemma_dir(tiny_gemma_dir, tmp_path_factory):
    """The tiny Gemma fine-tuned until it makes the calls of gguf_helpers.CALLS (a stand-in tuned model)."""
    out, loss = teach_tool_calls(tiny_gemma_dir, tmp_path_factory.mktemp("taught") / "gemma")
    assert loss < 0.02, f"the tiny model did not learn the calls (loss {loss:.3f})"
    return out
