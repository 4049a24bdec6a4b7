"""split: seeded, stratified, near-duplicate-aware train/valid/test splits of the dataset.

Writes data/splits/{train,valid,test}.jsonl and metrics/split.json (counts, duplicates dropped,
near-duplicate groups, and the overlap between splits, which is 0 by construction and checked).
"""

import click

from calltune.cli import params_option, stage
from calltune.data.dataset import load_dataset
from calltune.data.split import SPLITS, split_dataset
from calltune.io import atomic_path, write_json, write_jsonl


@click.command(help=__doc__)
@params_option
@click.option("--dataset", default="data/generated/dataset.jsonl", show_default=True,
              type=click.Path(dir_okay=False))
@click.option("--out", default="data/splits", show_default=True, type=click.Path(file_okay=False))
@click.option("--metrics", default="metrics/split.json", show_default=True, type=click.Path(dir_okay=False))
@stage
def main(params, dataset, out, metrics):
    block = params["split"]
    seed = params["base"]["seed"] if block.get("seed") is None else block["seed"]
    result = split_dataset(load_dataset(dataset), block, block["near_duplicate"], seed)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        for name in SPLITS:
            write_jsonl(tmp / f"{name}.jsonl", result.splits[name])
    write_json(metrics, result.report)
    r = result.report
    click.echo(f"split (seed {seed}): train {r['n_train']}, valid {r['n_valid']}, test {r['n_test']}; "
               f"{r['exact_duplicates']} duplicates dropped, {r['near_duplicate_groups']} near-duplicate groups -> {out}")


if __name__ == "__main__":
    main()
