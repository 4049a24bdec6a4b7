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
real splits. The model is built from a config with random weights (Gemma-3-270M shapes by default,
or `--model-dir DIR`'s config.json).

Heterogeneous corpora (every row its own tool list, e.g. the foundation corpus): `--heterogeneous`
makes the synthetic rows each carry a head of their own, or `--canonical FILE.jsonl --tokenizer DIR`
reads canonical rows and tokenizes them as the train stage does. Then the rows are: the HF + PEFT
baseline, calltune without packing (prompt-grouped batches: one example each here), calltune
packed (train.packing: true; `--pack-tokens`) and calltune padded (train.packing: padded: the same
cross-tool batches right-padded), all on the same rows in one process.

    python bench/train_throughput.py --device cpu --batch-size 4 --steps 3
    python bench/train_throughput.py --device cuda --batch-size 16 --steps 20
    python bench/train_throughput.py --device cuda --batch-size 16 --steps 20 --heterogeneous \
        --canonical foundation/data/train.jsonl --tokenizer models/base
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
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a bare checkout, no install

import torch  # noqa: E402

from calltune.train.datasets import TokenizedExample, collate  # noqa: E402
from calltune.train.device import resolve_device, resolve_dtype  # noqa: E402
from calltune.train.loss import compile_layers, completion_loss  # noqa: E402
from calltune.train.packing import pack_examples  # noqa: E402
from calltune.train.trainer import Trainer, TrainConfig  # noqa: E402

GEMMA3_270M = dict(vocab_size=262_144, hidden_size=640, intermediate_size=2048, num_hidden_layers=18,
                   num_attention_heads=4, num_key_value_heads=1, head_dim=256, sliding_window=512,
                   query_pre_attn_scalar=256, max_position_embeddings=32_768)
ROOT = Path(__file__).resolve().parent.parent


def train_params() -> dict:
    import yaml

    return yaml.safe_load((ROOT / "params.yaml").read_text())["train"]


def model_config(args):
    """--model-dir's config (any causal LM transformers knows), or Gemma-3-270M shapes with --layers."""
    from transformers import AutoConfig, Gemma3TextConfig

    if args.model_dir is None:
        return Gemma3TextConfig(**{**GEMMA3_270M, "num_hidden_layers": args.layers})
    return AutoConfig.from_pretrained(args.model_dir, trust_remote_code=False)


def default_lora() -> dict:
    """The LoRA the train stage ships (params.yaml train.lora), as peft.LoraConfig arguments."""
    lora = train_params()["lora"]
    targets = "all-linear" if lora["target_modules"] == ["all-linear"] else lora["target_modules"]
    return dict(r=lora["rank"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"], target_modules=targets)


# -- data ------------------------------------------------------------------------------------
def synthetic_examples(n: int, prefix: int, user: tuple[int, int], completion: tuple[int, int],
                       vocab: int, seed: int) -> list[TokenizedExample]:
    """One shared head (tool declarations) + a user turn + a completion, random token ids."""
    rng = random.Random(seed)
    head = [2] + [rng.randrange(256, vocab) for _ in range(prefix - 1)]
    out = []
    for i in range(n):
        query = [rng.randrange(256, vocab) for _ in range(rng.randint(*user))]
        answer = [rng.randrange(256, vocab) for _ in range(rng.randint(*completion))]
        ids = head + query + answer
        out.append(TokenizedExample(f"syn-{i}", tuple(ids),
                                    tuple([False] * (len(ids) - len(answer)) + [True] * len(answer))))
    return out


def heterogeneous_examples(n: int, heads: tuple[int, int], user: tuple[int, int], completion: tuple[int, int],
                           vocab: int, seed: int) -> list[TokenizedExample]:
    """Every example its own head (tool declarations) of a random length: n prompt groups."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        head = [2] + [rng.randrange(256, vocab) for _ in range(rng.randint(*heads) - 1)]
        query = [rng.randrange(256, vocab) for _ in range(rng.randint(*user))]
        answer = [rng.randrange(256, vocab) for _ in range(rng.randint(*completion))]
        ids = head + query + answer
        out.append(TokenizedExample(f"het-{i}", tuple(ids),
                                    tuple([False] * (len(ids) - len(answer)) + [True] * len(answer)),
                                    f"head-{i}"))
    return out


def canonical_examples(path: Path, tokenizer_dir: Path, max_seq_len: int) -> list[TokenizedExample]:
    """Canonical JSONL rows tokenized with calltune's own loader (completion mask, prompt groups)."""
    from transformers import AutoTokenizer

    from calltune.formats import get_format
    from calltune.train.datasets import tokenize_split

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    examples, _ = tokenize_split(path, get_format("auto", tokenizer=tokenizer), tokenizer, max_seq_len)
    return examples


def load_examples_file(path: Path) -> list[TokenizedExample]:
    rows = json.loads(path.read_text())
    return [TokenizedExample(r["id"], tuple(r["input_ids"]), tuple(r["targets"]), r.get("group", "")) for r in rows]


def dump_examples(split: Path, base: Path, out: Path, max_seq_len: int) -> None:
    from transformers import AutoTokenizer

    from calltune.formats import get_format
    from calltune.train.datasets import tokenize_split

    tokenizer = AutoTokenizer.from_pretrained(base)
    examples, _ = tokenize_split(split, get_format("auto", tokenizer=tokenizer), tokenizer, max_seq_len)
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
def base_model(config, dtype: torch.dtype, device: torch.device, seed: int):
    """Random-init model from a config, built once; each trainer gets a deep copy."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config).to(dtype=dtype)
    model.config.use_cache = False
    return model


def build_model(args):
    """A fresh LoRA model on a copy of the shared base weights (same init for every trainer)."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(args.seed + 1)
    return get_peft_model(copy.deepcopy(args.base), LoraConfig(task_type="CAUSAL_LM", bias="none", **args.lora))


def baseline_batches(examples: list[TokenizedExample], batch_size: int, seed: int) -> list[list[int]]:
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def baseline_step(model, optimizer, examples: list[TokenizedExample], pad_id: int, device) -> int:
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
    float(out.loss.detach())  # wait for the device, as a training loop that logs its loss does
    return batch.n_tokens


# -- timing ----------------------------------------------------------------------------------
def timed(step_fns, warmup: int, device) -> tuple[float, int, float, float]:
    """Run warmup steps, then the rest timed: (tokens/s, tokens, seconds, warmup seconds)."""
    started = time.perf_counter()
    for fn in step_fns[:warmup]:
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    warm = time.perf_counter() - started
    started, tokens = time.perf_counter(), 0
    for fn in step_fns[warmup:]:
        tokens += fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return tokens / seconds, tokens, seconds, warm


def run_baseline(args, examples, dtype, device) -> dict:
    model = build_model(args)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    needed = args.warmup + args.steps
    plan = [b for epoch in range(needed) for b in baseline_batches(examples, args.batch_size, args.seed + epoch)]
    steps = [lambda ids=ids: baseline_step(model, optimizer, [examples[i] for i in ids], 0, device)
             for ids in plan[:needed]]
    with PeakMemory(device) as mem:
        speed, tokens, seconds, warm = timed(steps, args.warmup, device)
    del model, optimizer
    return {"name": "HF + PEFT baseline", "tokens_per_s": speed, "tokens": tokens, "seconds": seconds,
            "warmup_s": warm, "peak_bytes": mem.peak}


def calltune_step(trainer, chunk: list[list[int]], examples: list[TokenizedExample]) -> int:
    trainer.optimizer_step(chunk)
    return sum(len(examples[i]) for micro_batch in chunk for i in micro_batch)


# Rows with one of calltune's parts switched off: (name suffix, calltune.train.loss attribute, stand-in).
WITHOUT = {
    "dense_attention": (" (dense masked attention)", "splits_attention", lambda body, packed: False),
    "plain_ce": (" (plain head + cross entropy)", "fusable_head", lambda head: False),
}


def run_calltune(args, examples, dtype, device, share_prefix: bool, compiled: bool = False,
                 packing: bool = False, without: str | None = None) -> dict:
    if without:  # the row before calltune.train.prefix_attention / linear_ce
        from unittest import mock

        from calltune.train import loss
        suffix, attr, stand_in = WITHOUT[without]
        with mock.patch.object(loss, attr, stand_in):
            row = run_calltune(args, examples, dtype, device, share_prefix, compiled, packing)
        return row | {"name": row["name"] + suffix}
    model = build_model(args)
    if compiled:
        compile_layers(model)
    cfg = TrainConfig(lr=1e-4, warmup_steps=0, epochs=1, batch_size=args.batch_size, grad_clip=1.0,
                      seed=args.seed, share_prefix=share_prefix, packing=packing, pack_tokens=args.pack_tokens)
    trainer = Trainer(model, examples, [], cfg, device, pad_id=0, progress=False)
    needed = args.warmup + args.steps
    plan = [chunk for epoch in range(needed) for chunk in trainer.epoch_plan(epoch)]
    steps = [lambda chunk=chunk: calltune_step(trainer, chunk, examples) for chunk in plan[:needed]]
    with PeakMemory(device) as mem:
        speed, tokens, seconds, warm = timed(steps, args.warmup, device)
    per_batch = len(examples) / len(trainer.micro_batches(examples, 0))
    del model, trainer
    grouped = " (prompt-grouped, no packing)" if not packing and (args.heterogeneous or args.packing) else ""
    kind = {True: " packed", "padded": " padded (cross-tool batches, right-padded)"}.get(packing, grouped)
    name = ("calltune" + kind + ("" if share_prefix or packing else " (no prefix sharing)")
            + (" + compiled layers" if compiled else ""))
    return {"name": name, "tokens_per_s": speed, "tokens": tokens, "seconds": seconds, "warmup_s": warm,
            "peak_bytes": mem.peak, "examples_per_micro_batch": per_batch}


def same_objective(args, examples, dtype, device, packing: bool = False) -> float:
    """|calltune loss - HF loss| / HF loss on one batch: the two loops optimise the same thing
    (with packing: the batch as one packed row against HF's padded batch with an attention mask)."""
    model = build_model(args)
    chosen = examples[: args.batch_size]
    batch = collate(chosen, 0)
    attention = torch.arange(batch.input_ids.shape[1])[None, :] < batch.lengths[:, None]
    labels = batch.input_ids.masked_fill(~batch.targets, -100)
    with torch.no_grad():
        hf = float(model(input_ids=batch.input_ids.to(device), attention_mask=attention.long().to(device),
                         labels=labels.to(device)).loss)
        ours, n = completion_loss(model, (pack_examples(chosen) if packing else batch).to(device), share_prefix=True)
    del model
    return abs(float(ours) / n - hf) / hf


def guarded(fn, *args):
    """Run one measurement; a failure is printed and skipped so the other rows still come back."""
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001 - report any failure, keep measuring
        traceback.print_exc()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return None


def median_rows(rows: list[dict]) -> list[dict]:
    """Per trainer (in first-seen order): the run with the median tokens/s, all speeds kept."""
    names = list(dict.fromkeys(r["name"] for r in rows))
    out = []
    for name in names:
        runs = sorted((r for r in rows if r["name"] == name), key=lambda r: r["tokens_per_s"])
        out.append({**runs[len(runs) // 2], "all_tokens_per_s": [r["tokens_per_s"] for r in runs],
                    "peak_bytes": max(r["peak_bytes"] for r in runs)})
    return out


def gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def report(rows: list[dict], meta: dict) -> str:
    base = next((r["tokens_per_s"] for r in rows if r["name"].startswith("HF")), float("nan"))
    check = meta.get("objective_rel_diff", "skipped")
    lines = [f"data: {meta['data']}",
             f"device {meta['device']} ({meta['device_name']}), dtype {meta['dtype']}, batch {meta['batch_size']}, "
             f"{meta['steps']} timed steps x {meta['repeats']} interleaved repeats (median), mean length {meta['mean_len']:.0f} tokens "
             f"({meta['mean_targets']:.0f} targets), torch {meta['torch']}, transformers {meta['transformers']}, "
             f"LoRA r{meta['lora']['r']} on {meta['lora']['target_modules']}",
             "objective check: skipped with the baseline" if check == "skipped" else
             f"objective check: |calltune - HF| / HF loss = {check:.2e}" if check is not None else "objective check failed",
             "", "| trainer | examples / micro-batch | tokens/s | peak memory above weights | vs baseline | "
             "warmup steps (s) |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r.get('examples_per_micro_batch', meta['batch_size']):.1f} | "
                     f"{r['tokens_per_s']:.0f} | {gib(r['peak_bytes'])} | "
                     f"{r['tokens_per_s'] / base:.2f}x | {r['warmup_s']:.1f} |")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=4, help="timed optimizer steps per trainer")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=1, help="interleaved repeats; the median run is reported")
    p.add_argument("--examples", type=Path, help="JSON from --dump-examples (else synthetic)")
    p.add_argument("--canonical", type=Path, help="canonical JSONL rows, tokenized with --tokenizer (else synthetic)")
    p.add_argument("--tokenizer", type=Path, help="HF directory whose tokenizer reads --canonical (e.g. models/base)")
    p.add_argument("--max-seq-len", type=int, default=2048, help="cut --canonical rows at this length")
    p.add_argument("--model-dir", type=Path, help="take the model's config.json from here (random weights; "
                   "default Gemma-3-270M shapes)")
    p.add_argument("--heterogeneous", action="store_true",
                   help="every synthetic row its own head (--heads), and add the packed calltune row")
    p.add_argument("--heads", type=int, nargs=2, default=(200, 900), help="--heterogeneous head length range")
    p.add_argument("--packing", action="store_true", help="add the packed calltune row (implied by --heterogeneous)")
    p.add_argument("--pack-tokens", type=int, default=None,
                   help="most tokens per packed row (default: params.yaml train.pack_tokens)")
    p.add_argument("--n-examples", type=int, default=0, help="synthetic examples (default: enough for the steps)")
    p.add_argument("--prefix", type=int, default=600, help="synthetic shared head (tool declarations), tokens")
    p.add_argument("--user", type=int, nargs=2, default=(20, 120), help="synthetic user turn length range")
    p.add_argument("--completion", type=int, nargs=2, default=(20, 60), help="synthetic completion length range")
    p.add_argument("--layers", type=int, default=GEMMA3_270M["num_hidden_layers"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-no-share", action="store_true", help="leave out the no-prefix-sharing row")
    p.add_argument("--no-baseline", action="store_true",
                   help="leave out HF + PEFT (and the objective check): on 24 GiB its logits over ~1k-token rows of a "
                        "262k vocabulary do not fit at batch 4; the calltune rows then compare only with each other")
    p.add_argument("--compile", action="store_true", help="add a row with torch.compile'd decoder layers")
    p.add_argument("--plain-ce", action="store_true",
                   help="add a calltune row with the LM head and cross entropy unfused (before calltune.train.linear_ce)")
    p.add_argument("--dense-attention", action="store_true",
                   help="add a calltune row whose shared-head rows take one SDPA call with the dense mask "
                        "(what calltune.train.prefix_attention replaces on CPU)")
    p.add_argument("--json", type=Path, help="write the results here too")
    p.add_argument("--dump-examples", nargs=3, metavar=("SPLIT", "BASE", "OUT"), type=Path)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.dump_examples:
        return dump_examples(*args.dump_examples, max_seq_len=4096)
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    args.config = model_config(args)
    args.lora = default_lora()
    if args.pack_tokens is None:
        args.pack_tokens = train_params().get("pack_tokens", 0)
    packing = args.packing or args.heterogeneous
    n = args.n_examples or args.batch_size * (args.warmup + args.steps)
    vocab = args.config.vocab_size
    if args.canonical:
        if not args.tokenizer:
            raise SystemExit("--canonical needs --tokenizer DIR")
        examples = canonical_examples(args.canonical, args.tokenizer, args.max_seq_len)
    elif args.examples:
        examples = load_examples_file(args.examples)
    elif args.heterogeneous:
        examples = heterogeneous_examples(n, tuple(args.heads), tuple(args.user), tuple(args.completion), vocab,
                                          args.seed)
    else:
        examples = synthetic_examples(n, args.prefix, tuple(args.user), tuple(args.completion), vocab, args.seed)
    if max(max(ex.input_ids) for ex in examples) >= vocab:
        raise SystemExit(f"token ids reach past the model's vocabulary ({vocab}): "
                         "pass --model-dir of the tokenizer's model")
    import transformers

    groups = len({ex.group for ex in examples})
    source = args.canonical or args.examples or ("synthetic heterogeneous" if args.heterogeneous else "synthetic")
    meta = {"data": (f"{source}: {len(examples)} rows, {groups} prompt groups"
                     + (f", packed rows up to {args.pack_tokens or 'any number of'} tokens" if packing else "")),
            "pack_tokens": args.pack_tokens, "prompt_groups": groups,
            "lora": args.lora, "device": device.type, "dtype": str(dtype).removeprefix("torch."), "batch_size": args.batch_size,
            "steps": args.steps, "repeats": args.repeats, "mean_len": sum(map(len, examples)) / len(examples),
            "mean_targets": sum(e.n_targets for e in examples) / len(examples), "torch": torch.__version__,
            "transformers": transformers.__version__,
            "device_name": torch.cuda.get_device_name() if device.type == "cuda" else f"{torch.get_num_threads()} threads"}
    args.base = base_model(args.config, dtype, device, args.seed)
    runs = [(run_calltune, (True,))]
    if not args.no_baseline:  # its full-vocabulary logits over every position need the most memory by far
        meta["objective_rel_diff"] = guarded(same_objective, args, examples, dtype, device, packing)
        runs.insert(0, (run_baseline, ()))
    if not args.skip_no_share and not args.heterogeneous:  # no shared heads to share there
        runs.insert(1, (run_calltune, (False,)))
    if packing:
        runs.append((run_calltune, (True, False, True)))
        runs.append((run_calltune, (True, False, "padded")))
    if args.compile:
        runs.append((run_calltune, (True, True, packing)))
    for without in WITHOUT:
        if getattr(args, without):
            runs.append((run_calltune, (True, False, False, without)))
    repeats = [[row for fn, extra in runs if (row := guarded(fn, args, examples, dtype, device, *extra))]
               for _ in range(args.repeats)]  # interleaved, so drift in clocks or load hits every trainer
    rows = median_rows([row for rep in repeats for row in rep])
    text = report(rows, meta)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "rows": rows, "table": text}, indent=1))


if __name__ == "__main__":
    main()
