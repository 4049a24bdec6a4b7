import pytest


@pytest.fixture(scope="session")
def torch_engine(tiny_gemma_dir):
    from calltune.evaluate.engines import TorchEngine

    return TorchEngine(tiny_gemma_dir)
