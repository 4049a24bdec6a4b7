"""How hard does train.embed_noise shake a model? The completion loss of a few training rows in
training mode, plain and under each noise bound, two draws each (not a test, not a stage).

    python bench/embed_noise_probe.py models/base /tmp/nd/splits/train.jsonl --rows 4 --bound 0.006 --bound 0.02
"""
import argparse
from pathlib import Path

import torch
from transformers import AutoTokenizer

from calltune.formats import get_format
from calltune.train.datasets import collate, tokenize_split
from calltune.train.embed_noise import embedding_noise
from calltune.train.lora import load_base_model
from calltune.train.loss import completion_loss


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a model directory (models/base)")
    parser.add_argument("rows", help="a JSONL file of training rows")
    parser.add_argument("--rows", dest="n", type=int, default=4, help="how many rows, one padded batch")
    parser.add_argument("--bound", type=float, action="append", default=[], help="a noise bound (repeatable)")
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    examples, _ = tokenize_split(Path(args.rows), get_format("functiongemma"), tokenizer, 2048)
    model = load_base_model(Path(args.model), "full", torch.float32, torch.device("cpu"))
    model.train()
    batch = collate(examples[:args.n], tokenizer.pad_token_id)
    with torch.no_grad():
        for bound in [0.0, *args.bound]:
            losses = []
            for draw in range(2):
                torch.manual_seed(draw)
                with embedding_noise(model, bound):
                    loss, n = completion_loss(model, batch)
                losses.append(float(loss) / n)
            print(f"bound {bound}: loss per target token {losses[0]:.4f} / {losses[1]:.4f}", flush=True)


if __name__ == "__main__":
    main()
