"""Data-parallel scaling of calltune's trainer: tokens/s with 1 and N processes, same global batch.

    python bench/ddp_scaling.py --processes 1 2 --steps 4 --warmup 1          # CPU, gloo
    python bench/ddp_scaling.py --device cuda --processes 1 2 --layers 18     # GPUs, NCCL (one per process)

For each process count the script starts itself under `torchrun --standalone --nproc_per_node N`
(on CPU with OMP_NUM_THREADS = cores / N unless --threads says otherwise). Every run trains the same
LoRA (r16, all linear layers) on the same synthetic examples (a shared 300-token head, a user turn,
a completion: tool-calling shaped), from the same random-init Gemma 3 of a small width, with
batch_size x grad_accum examples per optimizer step whatever N is (distributed.py deals each step's
micro-batches to the processes). Tokens/s counts every process's real tokens per second of the timed
steps, after warm-up steps. The first step's loss is printed too: it must be the same for every N.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULT = "RESULT "


def parse(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=0, help="CPU threads per process (0 = cores / processes)")
    ap.add_argument("--steps", type=int, default=4, help="timed optimizer steps")
    ap.add_argument("--warmup", type=int, default=1, help="untimed optimizer steps first")
    ap.add_argument("--batch-size", type=int, default=4, help="examples per micro-batch")
    ap.add_argument("--grad-accum", type=int, default=4, help="micro-batches per step, over all processes")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--vocab", type=int, default=32_768)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def synthetic(n: int, vocab: int, seed: int = 0):
    """Tool-calling shaped rows: one 300-token head, a 20-60-token user turn, a 20-60-token completion."""
    from calltune.train.datasets import TokenizedExample

    rng = random.Random(seed)
    head = [2] + [rng.randrange(256, vocab) for _ in range(299)]
    rows = []
    for i in range(n):
        user = [rng.randrange(256, vocab) for _ in range(rng.randint(20, 60))]
        answer = [rng.randrange(256, vocab) for _ in range(rng.randint(20, 60))]
        ids = head + user + answer
        rows.append(TokenizedExample(f"s{i}", tuple(ids),
                                     tuple([False] * (len(ids) - len(answer)) + [True] * len(answer))))
    return rows


def small_gemma(args):
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    config = Gemma3TextConfig(vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=4 * args.hidden,
                              num_hidden_layers=args.layers, num_attention_heads=4, num_key_value_heads=1,
                              head_dim=64, query_pre_attn_scalar=64, sliding_window=512,
                              max_position_embeddings=4096, attn_implementation="sdpa")
    torch.manual_seed(0)  # the same weights in every process and every run
    return Gemma3ForCausalLM(config)


def worker(args) -> None:
    """One process of a run: train --warmup + --steps optimizer steps, rank 0 prints the result."""
    import torch

    from calltune.train import distributed
    from calltune.train.lora import make_trainable
    from calltune.train.trainer import Trainer, TrainConfig

    dist = distributed.resolve("auto")
    device = distributed.process_device(torch.device(args.device), dist)
    distributed.start(dist, device)
    try:
        lora = {"rank": 16, "alpha": 32, "dropout": 0.0, "target_modules": ["all-linear"]}
        model = make_trainable(small_gemma(args).to(device), "lora", lora)
        global_batch = args.batch_size * args.grad_accum
        examples = synthetic(global_batch * (args.warmup + args.steps), args.vocab)
        cfg = TrainConfig(lr=1e-3, warmup_steps=0, epochs=1, batch_size=args.batch_size, grad_accum=args.grad_accum,
                          seed=0)
        trainer = Trainer(model, examples, [], cfg, device, pad_id=0, progress=False, dist=dist)
        plan = trainer.epoch_plan(0)
        first = trainer.optimizer_step(plan[0])["train_loss"]
        for step in plan[1:args.warmup]:
            trainer.optimizer_step(step)
        timed = plan[args.warmup:args.warmup + args.steps]
        dist.barrier()
        started = time.perf_counter()
        for step in timed:
            trainer.optimizer_step(step)
        if device.type == "cuda":
            torch.cuda.synchronize()
        dist.barrier()
        seconds = time.perf_counter() - started
        tokens = sum(trainer._count(step)[1] for step in timed)
        if dist.is_main:
            print(RESULT + json.dumps({"processes": dist.world_size, "threads": torch.get_num_threads(),
                                       "tokens_per_s": tokens / seconds, "seconds": seconds, "tokens": tokens,
                                       "first_loss": first, "global_batch": global_batch}), flush=True)
    finally:
        distributed.stop(dist)


def launch(args, processes: int) -> dict:
    """This script under torchrun with `processes` workers; their rank-0 RESULT line."""
    from calltune.train.distributed import launch_command

    env = dict(os.environ)
    if args.device == "cpu":
        env["OMP_NUM_THREADS"] = str(args.threads or max(1, (os.cpu_count() or 1) // processes))
    flags = [f"--device={args.device}", f"--steps={args.steps}", f"--warmup={args.warmup}",
             f"--batch-size={args.batch_size}", f"--grad-accum={args.grad_accum}", f"--hidden={args.hidden}",
             f"--layers={args.layers}", f"--vocab={args.vocab}", "--worker"]
    done = subprocess.run(launch_command(processes, str(Path(__file__).resolve()), flags), env=env,
                          capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT)]
    if done.returncode or not lines:
        raise SystemExit(f"{processes} process(es) failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len(RESULT):])


def main(argv=None) -> None:
    args = parse(argv)
    if args.worker:
        return worker(args)
    rows = [launch(args, n) for n in args.processes]
    base = rows[0]["tokens_per_s"]
    print(f"| processes | threads each | global batch | tokens/s | vs {rows[0]['processes']} | first-step loss |")
    print("|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['processes']} | {row['threads']} | {row['global_batch']} | {row['tokens_per_s']:,.0f} | "
              f"{row['tokens_per_s'] / base:.2f}x | {row['first_loss']:.6f} |")


if __name__ == "__main__":
    main()
