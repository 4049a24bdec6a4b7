"""Noise on the input embeddings while training (calltune.train.embed_noise, train.embed_noise):
bounded and scaled as documented, only in training mode and only inside the block, seeded (same run
twice, exact resume), and 0 is the plain step to the bit (it draws nothing, so dropout masks stay)."""

from __future__ import annotations

import pytest
import torch

from calltune.train.embed_noise import embedding_noise
from calltune.train.loss import lm_parts
from calltune.train.lora import load_base_model, make_trainable
from test_trainer import CPU, Crash, adapter, crash_at, data, make_trainer  # noqa: F401  (data: a fixture)

BOUND = 0.05


@pytest.fixture()
def model(tiny_gemma_dir):
    return make_trainable(load_base_model(tiny_gemma_dir, "lora", torch.float32, CPU), "lora",
                          {"rank": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj"]})


def test_noise_is_uniform_within_the_bound_times_the_embedding_scale(model):
    embed = lm_parts(model).body.get_input_embeddings()
    scale = float(embed.embed_scale)
    assert scale > 1  # Gemma scales its embeddings by sqrt(hidden size) inside the module
    ids = torch.arange(2, 402).reshape(2, 200)
    model.train()
    clean = embed(ids)
    with embedding_noise(model, BOUND):
        noise = embed(ids) - clean
    limit = BOUND * scale
    assert noise.abs().max() <= limit * (1 + 1e-5)
    assert noise.abs().max() > 0.9 * limit  # uniform over the whole interval, not a fraction of it
    assert abs(float(noise.mean())) < 0.05 * limit
    assert float(noise.std()) == pytest.approx(limit / 3 ** 0.5, rel=0.05)  # U(-a, a): std a / sqrt(3)
    assert not embed._forward_hooks  # removed on leaving the block
    torch.testing.assert_close(embed(ids), clean, rtol=0, atol=0)


def test_no_noise_in_eval_mode_or_at_zero(model):
    embed = lm_parts(model).body.get_input_embeddings()
    ids = torch.arange(2, 50)[None]
    model.eval()
    clean = embed(ids)
    with embedding_noise(model, BOUND):
        assert torch.equal(embed(ids), clean)
    model.train()
    with embedding_noise(model, 0.0):
        assert not embed._forward_hooks
        assert torch.equal(embed(ids), clean)


def test_a_noisy_run_is_seeded_and_differs_from_a_plain_one(tiny_gemma_dir, data):
    # the trainer's LoRA has dropout 0.1: the noise and the dropout masks share the seeded generator
    plain = make_trainer(tiny_gemma_dir, data, max_steps=3)
    zero = make_trainer(tiny_gemma_dir, data, max_steps=3, embed_noise=0.0)
    noisy = make_trainer(tiny_gemma_dir, data, max_steps=3, embed_noise=BOUND)
    again = make_trainer(tiny_gemma_dir, data, max_steps=3, embed_noise=BOUND)
    runs = [t.fit() for t in (plain, zero, noisy, again)]
    a, b, c, d = (adapter(t) for t in (plain, zero, noisy, again))
    assert all(torch.equal(a[k], b[k]) for k in a)  # 0 draws nothing: the plain step to the bit
    assert all(torch.equal(c[k], d[k]) for k in c)
    assert any(not torch.equal(a[k], c[k]) for k in a)
    assert runs[2]["first_train_loss"] != runs[0]["first_train_loss"]
    # validation passes see the model without noise: the same weights give the same valid loss
    noisy.model.load_state_dict(plain.model.state_dict())
    assert noisy.evaluate() == plain.evaluate()


def test_a_noisy_run_resumes_exactly(tiny_gemma_dir, data, tmp_path):
    full = make_trainer(tiny_gemma_dir, data, checkpoint_dir=tmp_path / "a", embed_noise=BOUND).fit()
    first = make_trainer(tiny_gemma_dir, data, checkpoint_dir=tmp_path / "b", callback=crash_at(5),
                         embed_noise=BOUND)
    with pytest.raises(Crash):
        first.fit()
    resumed = make_trainer(tiny_gemma_dir, data, checkpoint_dir=tmp_path / "b", resume=True,
                           embed_noise=BOUND).fit()
    assert [r["step"] for r in resumed["history"]] == [r["step"] for r in full["history"]]
    for a, b in zip(full["history"], resumed["history"]):
        assert abs(a["train_loss"] - b["train_loss"]) <= 1e-5
