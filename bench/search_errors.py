"""Are a model's misses search errors or model errors? (not a test, not a stage)

Greedy decoding picks the likeliest token at each step, which need not give the likeliest answer.
For each miss in a saved prediction file this scores, under the model that made it, the expected
answer and the model's own output (the sum of the completion's token log-probabilities, teacher
forced on the evaluation prompt). Where the expected answer is the likelier one, greedy decoding
missed a better sequence (a *search error*: beam search or another decoder could find it); where
the model's own output is likelier, the model itself prefers the wrong answer (a *model error*: only
training changes it). Scored without a grammar, so constrained outputs count as the model's own.

    python bench/sweep.py models/base /tmp/nd-sweep configs.json --splits /tmp/nd/splits --constrained
    python bench/search_errors.py /tmp/nd-sweep/fused-NAME /tmp/nd/splits/test.jsonl /tmp/nd-sweep/pred-NAME-test.jsonl

The expected answer is the completion the trainer supervises (calltune's rendering of the row's
final assistant turn, stop marker included); the model's output is its raw text plus the stop
marker that ended it. CPU, fp32: ~10 s a miss on 2 cores for Gemma 3 270M with the new domain's tools.
"""
import argparse
import json

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from calltune.data.dataset import load_dataset
from calltune.formats import get_format


def completion_logprob(model, tokenizer, prompt: str, completion: str) -> float:
    """log P(completion | prompt), the two tokenised apart (they meet at a control token)."""
    head = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    tail = tokenizer(completion, add_special_tokens=False)["input_ids"]
    if not prompt.startswith(tokenizer.bos_token):
        head = [tokenizer.bos_token_id] + head
    with torch.no_grad():
        logits = model(torch.tensor([head + tail])).logits[0, len(head) - 1:-1].float()
    return logits.log_softmax(-1)[torch.arange(len(tail)), torch.tensor(tail)].sum().item()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="the fused model that made the predictions (an HF directory)")
    parser.add_argument("split", help="the rows the predictions are for (JSONL, calltune's data contract)")
    parser.add_argument("predictions", help="pred-*.jsonl from bench/sweep.py or stages/evaluate.py")
    parser.add_argument("--format", default="auto", help="chat format (auto: from the model's tokenizer)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    fmt = get_format(args.format, tokenizer)
    rows = {row["id"]: row for row in load_dataset(args.split)}
    misses = [p for p in map(json.loads, open(args.predictions)) if not p["exact_match"]]
    search = 0
    print(f"{'id':<18} {'expected':>9} {'greedy':>9}  kind    reason")
    for pred in misses:
        row = rows[pred["id"]]
        segments = fmt.segments(row["messages"], row["tools"])
        first = next(i for i, (_, supervised) in enumerate(segments) if supervised)
        prompt, expected = "".join(text for text, _ in segments[:first]), segments[first][0]
        # FunctionGemma: a call ends at <start_function_response>, text at <end_of_turn>
        own_stop = fmt.stop_strings[0] if pred["calls"] else fmt.stop_strings[-1]
        gold = completion_logprob(model, tokenizer, prompt, expected)
        own = completion_logprob(model, tokenizer, prompt, pred["raw_output"] + own_stop)
        kind = "search" if gold > own else "model"
        search += kind == "search"
        print(f"{pred['id']:<18} {gold:9.2f} {own:9.2f}  {kind:<6}  {pred['reason'][:80]}", flush=True)
    print(f"{len(misses)} misses: {search} search errors (the expected answer likelier than greedy's), "
          f"{len(misses) - search} model errors")


if __name__ == "__main__":
    main()
