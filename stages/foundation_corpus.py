"""foundation corpus stage: BFCL live + exec items and the everyday tool bank, with distractor tools,
into train/valid JSONL for the tool-calling foundation (foundation/dvc.yaml; params `corpus`)."""

from pathlib import Path

import click

from calltune.cli import params_option, stage
from calltune.foundation.corpus import build_corpus
from calltune.io import write_json, write_jsonl


@click.command(help=__doc__)
@params_option
@click.option("--out", default="data", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for train.jsonl and valid.jsonl.")
@click.option("--metrics", default="metrics/corpus.json", show_default=True, type=click.Path(dir_okay=False))
@stage
def main(params, out, metrics):
    corpus = build_corpus(params["corpus"], params["base"]["seed"])
    write_jsonl(out / "train.jsonl", corpus.train)
    write_jsonl(out / "valid.jsonl", corpus.valid)
    write_json(metrics, corpus.report)
    r = corpus.report
    click.echo(f"corpus: {r['n_train']} train / {r['n_valid']} valid records ({r['kinds']}), "
               f"{sum(r['leaks_dropped'].values())} held-out leaks dropped, {r['skipped_invalid']} invalid skipped -> {out}")


if __name__ == "__main__":
    main()
