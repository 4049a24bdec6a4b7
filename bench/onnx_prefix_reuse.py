"""What reusing the shared prompt passes saves in ONNX evaluation, in one process.

    python bench/onnx_prefix_reuse.py models/onnx data/splits/test.jsonl [--rows 16] [--threads 2]

Generates the first N test rows greedily twice with the same session: as evaluation does (each
prompt's passes shared with the previous prompt come from their cache, OnnxCausalLM.prefill) and
with the cache of earlier prompts cleared before every row (every pass computed). Prints both wall
times, their ratio and how many outputs are equal (all of them, or the reuse is wrong).
"""

from __future__ import annotations

import argparse
import json
import time

from calltune.engines.onnx_engine import OnnxEngine
from calltune.formats import get_format


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("export_dir", help="an export folder (models/onnx, models/onnx_quantized/...)")
    parser.add_argument("test_file", help="data-contract rows (data/splits/test.jsonl)")
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    args = parser.parse_args()
    engine = OnnxEngine(args.export_dir, threads=args.threads)
    fmt = get_format("functiongemma", engine.tokenizer)
    with open(args.test_file) as f:
        rows = [json.loads(line) for line in f][:args.rows]
    prompts = [fmt.prompt(row["messages"], row["tools"]) for row in rows]
    engine.generate(prompts[0], 4, fmt.stop_strings)  # warm-up, untimed

    def timed(clear: bool):
        outputs, start = [], time.perf_counter()
        for prompt in prompts:
            if clear:
                engine.model.forget()
            outputs.append(engine.generate(prompt, args.max_new_tokens, fmt.stop_strings))
        return outputs, time.perf_counter() - start

    engine.model.forget()
    reused, t_reused = timed(clear=False)
    fresh, t_fresh = timed(clear=True)
    same = sum(a == b for a, b in zip(reused, fresh))
    print(f"{len(prompts)} rows: every pass {t_fresh:.1f} s, shared passes reused {t_reused:.1f} s "
          f"({t_fresh / t_reused:.2f}x); equal outputs {same}/{len(prompts)}")


if __name__ == "__main__":
    main()
