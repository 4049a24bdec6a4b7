"""What the browser demo's constraint (web/grammar.js) costs per generated token, on a real tokenizer.

    python bench/web_constraint.py --tokenizer models/base --tools data/tools.json --examples data/examples.jsonl

Replays the calls of the first N examples (FunctionGemma text, as the model would write them) and a
few plain answers through the constraint alone, in Node (bench/web_constraint.mjs): the time of
choosing the next token when the model's favourite is allowed (the usual case), the time when the
top 64 are random tokens (inside a string some are allowed; at a key or a name none is, and the
choice comes from the vocabulary walk), and the one-time cost of indexing the vocabulary. Compare
with the model's own time per token in the browser (the committed run's ONNX rows in README.md).
Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from calltune.data.records import read_records  # noqa: E402
from calltune.data.tools import load_tools  # noqa: E402
from calltune.formats.functiongemma.syntax import format_call  # noqa: E402
from calltune.web_grammar import web_grammar  # noqa: E402

ANSWERS = ["I can't check that with the tools I have.", "Sure! Paris is the capital of France."]


@click.command(help=__doc__)
@click.option("--tokenizer", "tokenizer_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--tools", default="data/tools.json", show_default=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--examples", default="data/examples.jsonl", show_default=True,
              type=click.Path(dir_okay=False, path_type=Path))
@click.option("-n", "n_examples", default=40, show_default=True, help="Examples with calls to replay.")
def main(tokenizer_dir: Path, tools: Path, examples: Path, n_examples: int) -> None:
    calls = [raw["calls"] for _, raw in read_records(examples) if raw.get("calls")][:n_examples]
    replies = ["".join(format_call(c["name"], c["arguments"]) for c in example) + "<start_function_response>"
               for example in calls] + [a + "<end_of_turn>" for a in ANSWERS]
    job = {"tokenizer_dir": str(tokenizer_dir), "grammar": web_grammar(load_tools(tools)), "replies": replies}
    done = subprocess.run(["node", str(ROOT / "bench" / "web_constraint.mjs")], input=json.dumps(job),
                          capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode:
        sys.exit(done.stderr[-3000:])
    result = json.loads(done.stdout.splitlines()[-1])
    walk, top = result["walk_ms"], result["top_ms"]
    print(f"replies {len(replies)}, tokens {result['tokens']}, vocabulary index {result['vocabulary_s']:.2f} s")
    print(f"choose + accept, favourite allowed: {result['agree_ms_per_token']:.2f} ms/token")
    for name, times in (("random top 64, one allowed", top), ("random top 64, all refused: vocabulary walk", walk)):
        if times:
            print(f"{name}: median {statistics.median(times):.1f} ms, max {max(times):.1f} ms over {len(times)} steps")


if __name__ == "__main__":
    main()
