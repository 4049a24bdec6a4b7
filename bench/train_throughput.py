"""Training throughput: calltune's trainer against the plain Hugging Face + PEFT loop, one process.

Both train the same LoRA on the same examples from the same random-init weights, in the same
dtype, with AdamW and grad clipping 1.0. The baseline is what a PEFT user writes: batches in
random order padded to the longest row, `model(input_ids, attention_mask, labels).loss.backward()`,
eager PyTorch (no torch.compile), the model's default attention. calltune runs its real
Trainer.optimizer_step: length-grouped batches, the LM head only at target positions, the shared
prompt head once per batch, fused AdamW on CUDA. A second calltune row turns prefix sharing off to
show what each part is worth.

Data: synthetic tool-calling examples shaped like the starter set (one shared block of tool
declarations, a user turn, a short call), or `--examples FILE` written by `--dump-examples` from
real splits. The model is built from a config with random weights (Gemma-3-270M shapes by default).

    python bench/train_throughput.py --device cpu --batch-size 4 --steps 3
    python bench/train_throughput.py --device cuda --batch-size 16 --steps 20
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import ctypes
import json
import os
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from calltune.train.datasets import Example, collate  # noqa: E402
from calltune.train.device import resolve_device, resolve_dtype  # noqa: E402
from calltune.train.loss import completion_loss  # noqa: E402
from calltune.train.trainer import Trainer, TrainConfig  # noqa: E402

GEMMA3_270M = dict(vocab_size=262_144, hidden_size=640, intermediate_size=2048, num_hidden_layers=18,
                   num_attention_heads=4, num_key_value_heads=1, head_dim=256, sliding_window=512,
                   query_pre_attn_scalar=256, max_position_embeddings=32_768)
LORA = dict(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])


# -- data ------------------------------------------------------------------------------------
def synthetic_examples(n: int, prefix: int, user: tuple[int, int], completion: tuple[int, int],
                       vocab: int, seed: int) -> list[Example]:
    """One shared head (tool declarations) + a user turn + a completion, random token ids."""
    rng = random.Random(seed)
    head = [2] + [rng.randrange(256, vocab) for _ in range(prefix - 1)]
    out = []
    for i in range(n):
        query = [rng.randrange(256, vocab) for _ in range(rng.randint(*user))]
        answer = [rng.randrange(256, vocab) for _ in range(rng.randint(*completion))]
        ids = head + query + answer
        out.append(Example(f"syn-{i}", tuple(ids), tuple([False] * (len(ids) - len(answer)) + [True] * len(answer))))
    return out


def load_examples_file(path: Path) -> list[Example]:
    rows = json.loads(path.read_text())
    return [Example(r["id"], tuple(r["input_ids"]), tuple(r["targets"]), r.get("group", "")) for r in rows]


def dump_examples(split: Path, base: Path, out: Path, max_seq_len: int) -> None:
    from transformers import AutoTokenizer

    from calltune.formats import get_format
    from calltune.train.datasets import load_examples

    tokenizer = AutoTokenizer.from_pretrained(base)
    examples, _ = load_examples(split, get_format("auto", tokenizer=tokenizer), tokenizer, max_seq_len)
    out.write_text(json.dumps([{"id": e.id, "input_ids": list(e.input_ids), "targets": list(e.targets),
                                "group": e.group} for e in examples]))
    print(f"wrote {len(examples)} examples to {out}")


# -- memory ----------------------------------------------------------------------------------
class PeakMemory:
    """Peak device memory of a phase: CUDA allocator peak, or sampled RSS growth on CPU."""

    def __init__(self, device: torch.device):
        self.device, self.peak, self._stop = device, 0, threading.Event()

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self, start: int) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.rss() - start)

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
        else:
            with contextlib.suppress(OSError):
                ctypes.CDLL("libc.so.6").malloc_trim(0)  # give freed memory back so RSS growth is this phase's
            self._thread = threading.Thread(target=self._sample, args=(self.rss(),), daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self._base
        else:
            self._stop.set()
            self._thread.join()


# -- models ----------------------------------------------------------------------------------
def base_model(config_kwargs: dict, dtype: torch.dtype, device: torch.device, seed: int):
    """Random-init model from a config, built once; each trainer gets a deep copy."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(seed)
    with torch.device(device):
        model = Gemma3ForCausalLM(Gemma3TextConfig(**config_kwargs)).to(dtype=dtype)
    model.config.use_cache = False
    return model


def build_model(args):
    """A fresh LoRA model on a copy of the shared base weights (same init for every trainer)."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(args.seed + 1)
    return get_peft_model(copy.deepcopy(args.base), LoraConfig(task_type="CAUSAL_LM", bias="none", **LORA))


def baseline_batches(examples: list[Example], batch_size: int, seed: int) -> list[list[int]]:
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def baseline_step(model, optimizer, examples: list[Example], pad_id: int, device) -> int:
    batch = collate(examples, pad_id)
    width = batch.input_ids.shape[1]
    attention = torch.arange(width)[None, :] < batch.lengths[:, None]
    labels = batch.input_ids.masked_fill(~batch.targets, -100)
    out = model(input_ids=batch.input_ids.to(device), attention_mask=attention.long().to(device),
                labels=labels.to(device))
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    float(out.loss)  # wait for the device, as a training loop that logs its loss does
    return batch.n_tokens


# -- timing ----------------------------------------------------------------------------------
def timed(step_fns, warmup: int, device) -> tuple[float, int, float]:
    """Run warmup steps, then the rest timed: (tokens/s, tokens, seconds)."""
    for fn in step_fns[:warmup]:
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    started, tokens = time.perf_counter(), 0
    for fn in step_fns[warmup:]:
        tokens += fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return tokens / seconds, tokens, seconds


def run_baseline(args, examples, dtype, device) -> dict:
    model = build_model(args)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    plan = baseline_batches(examples, args.batch_size, args.seed)
    steps = [lambda ids=ids: baseline_step(model, optimizer, [examples[i] for i in ids], 0, device)
             for ids in plan[: args.warmup + args.steps]]
    with PeakMemory(device) as mem:
        speed, tokens, seconds = timed(steps, args.warmup, device)
    del model, optimizer
    return {"name": "HF + PEFT baseline", "tokens_per_s": speed, "tokens": tokens, "seconds": seconds,
            "peak_bytes": mem.peak}


def calltune_step(trainer, chunk: list[list[int]], examples: list[Example]) -> int:
    trainer.optimizer_step(chunk)
    return sum(len(examples[i]) for micro_batch in chunk for i in micro_batch)


def run_calltune(args, examples, dtype, device, share_prefix: bool) -> dict:
    model = build_model(args)
    cfg = TrainConfig(lr=1e-4, warmup_steps=0, epochs=1, batch_size=args.batch_size, grad_clip=1.0,
                      seed=args.seed, share_prefix=share_prefix)
    trainer = Trainer(model, examples, [], cfg, device, pad_id=0, progress=False)
    plan = trainer.epoch_plan(0)
    steps = [lambda chunk=chunk: calltune_step(trainer, chunk, examples) for chunk in plan[: args.warmup + args.steps]]
    with PeakMemory(device) as mem:
        speed, tokens, seconds = timed(steps, args.warmup, device)
    del model, trainer
    name = "calltune" + ("" if share_prefix else " (no prefix sharing)")
    return {"name": name, "tokens_per_s": speed, "tokens": tokens, "seconds": seconds, "peak_bytes": mem.peak}


def same_objective(args, examples, dtype, device) -> float:
    """|calltune loss - HF loss| / HF loss on one batch: the two loops optimise the same thing."""
    model = build_model(args)
    batch = collate(examples[: args.batch_size], 0)
    labels = batch.input_ids.masked_fill(~batch.targets, -100)
    with torch.no_grad():
        hf = float(model(input_ids=batch.input_ids.to(device), labels=labels.to(device)).loss)
        ours, n = completion_loss(model, batch.to(device), share_prefix=True)
    del model
    return abs(float(ours) / n - hf) / hf


def gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def report(rows: list[dict], meta: dict) -> str:
    base = rows[0]["tokens_per_s"]
    lines = [f"device {meta['device']} ({meta['device_name']}), dtype {meta['dtype']}, batch {meta['batch_size']}, "
             f"{meta['steps']} timed steps, mean length {meta['mean_len']:.0f} tokens "
             f"({meta['mean_targets']:.0f} targets), torch {meta['torch']}, transformers {meta['transformers']}",
             f"objective check: |calltune - HF| / HF loss = {meta['objective_rel_diff']:.2e}",
             "", "| trainer | tokens/s | peak memory | vs baseline |", "|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['tokens_per_s']:.0f} | {gib(r['peak_bytes'])} | "
                     f"{r['tokens_per_s'] / base:.2f}x |")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=4, help="timed optimizer steps per trainer")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--examples", type=Path, help="JSON from --dump-examples (else synthetic)")
    p.add_argument("--n-examples", type=int, default=0, help="synthetic examples (default: enough for the steps)")
    p.add_argument("--prefix", type=int, default=600, help="synthetic shared head (tool declarations), tokens")
    p.add_argument("--user", type=int, nargs=2, default=(20, 120), help="synthetic user turn length range")
    p.add_argument("--completion", type=int, nargs=2, default=(20, 60), help="synthetic completion length range")
    p.add_argument("--layers", type=int, default=GEMMA3_270M["num_hidden_layers"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-no-share", action="store_true", help="leave out the no-prefix-sharing row")
    p.add_argument("--json", type=Path, help="write the results here too")
    p.add_argument("--dump-examples", nargs=3, metavar=("SPLIT", "BASE", "OUT"), type=Path)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.dump_examples:
        return dump_examples(*args.dump_examples, max_seq_len=4096)
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    args.config = {**GEMMA3_270M, "num_hidden_layers": args.layers}
    n = args.n_examples or args.batch_size * (args.warmup + args.steps)
    examples = (load_examples_file(args.examples) if args.examples else
                synthetic_examples(n, args.prefix, tuple(args.user), tuple(args.completion),
                                   args.config["vocab_size"], args.seed))
    import transformers

    meta = {"device": device.type, "dtype": str(dtype).removeprefix("torch."), "batch_size": args.batch_size,
            "steps": args.steps, "mean_len": sum(map(len, examples)) / len(examples),
            "mean_targets": sum(e.n_targets for e in examples) / len(examples), "torch": torch.__version__,
            "transformers": transformers.__version__,
            "device_name": torch.cuda.get_device_name() if device.type == "cuda" else f"{torch.get_num_threads()} threads"}
    args.base = base_model(args.config, dtype, device, args.seed)
    meta["objective_rel_diff"] = same_objective(args, examples, dtype, device)
    rows = [run_baseline(args, examples, dtype, device)]
    if not args.skip_no_share:
        rows.append(run_calltune(args, examples, dtype, device, share_prefix=False))
    rows.append(run_calltune(args, examples, dtype, device, share_prefix=True))
    text = report(rows, meta)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "rows": rows, "table": text}, indent=1))


if __name__ == "__main__":
    main()
