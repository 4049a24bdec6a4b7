"""generate: validate tools, examples, templates, imports and synthetic examples into the canonical dataset,
plus rows augmented from your examples and requests from the built-in no-call bank.

Writes data/generated/dataset.jsonl and metrics/data.json, only once every input has passed;
any problem is reported with its file, line and field, and nothing is written.
"""

import click

from calltune.cli import params_option, stage
from calltune.data.generate import generate
from calltune.data.stats import dataset_stats, load_base_tokenizer
from calltune.formats import get_format
from calltune.io import write_json, write_jsonl


@click.command(help=__doc__)
@params_option
@click.option("--base-model", default="models/base", show_default=True, type=click.Path(file_okay=False),
              help="Base model directory; its tokenizer measures token lengths.")
@click.option("--synthetic", default="data/synthetic/examples.jsonl", show_default=True,
              type=click.Path(dir_okay=False),
              help="The synthesize stage's examples, merged when generate.synthetic.enabled is true.")
@click.option("--out", default="data/generated/dataset.jsonl", show_default=True, type=click.Path(dir_okay=False))
@click.option("--metrics", default="metrics/data.json", show_default=True, type=click.Path(dir_okay=False))
@stage
def main(params, base_model, synthetic, out, metrics):
    merged = synthetic if params["generate"]["synthetic"]["enabled"] else None
    result = generate(params["generate"], params["base"]["seed"], merged)
    for duplicate in result.duplicates:
        click.echo(f"warning: {duplicate.describe()} (dropped)", err=True)
    tokenizer = load_base_tokenizer(base_model)
    fmt = get_format(params["model"]["format"], tokenizer=tokenizer)
    stats = {**dataset_stats(result.records, fmt, tokenizer),
             "duplicate_queries": len(result.duplicates), "skipped_imports": result.skipped,
             **{f"from_{kind}": n for kind, n in result.sources.items()}, **result.report}
    write_jsonl(out, result.records)
    write_json(metrics, stats)
    click.echo(f"generate: {stats['n_examples']} examples ({result.sources}), no-call {stats['no_call_share']:.1%}, "
               f"parallel {stats['parallel_share']:.1%} -> {out}")


if __name__ == "__main__":
    main()
