"""synthesize: ask an OpenAI-compatible chat endpoint for more examples of every tool (optional).

Set generate.synthetic in params.yaml (off by default: then an empty file and zero metrics are
written and nothing is contacted). Every reply is validated like data/examples.jsonl and
deduplicated against it and the templates. Writes data/synthetic/examples.jsonl (examples with
their provenance) and metrics/synthetic.json only after every tool has been answered; on any
error nothing is written. The API key is read from the environment variable named by
generate.synthetic.api_key_env and is never written.
"""

import click

from calltune.cli import params_option, stage
from calltune.data.synthetic import synthesize
from calltune.io import write_json, write_jsonl


@click.command(help=__doc__)
@params_option
@click.option("--out", default="data/synthetic/examples.jsonl", show_default=True, type=click.Path(dir_okay=False))
@click.option("--metrics", default="metrics/synthetic.json", show_default=True, type=click.Path(dir_okay=False))
@stage
def main(params, out, metrics):
    settings = params["generate"]["synthetic"]
    if settings["enabled"]:
        click.echo(f"synthesize: asking {settings['model']} at {settings['base_url']}", err=True)
    result = synthesize(params["generate"], params["base"]["seed"], report=_report)
    for line in result.dropped:
        click.echo(f"warning: {line}", err=True)
    stats = result.metrics()
    write_jsonl(out, result.records)
    write_json(metrics, stats)
    if not settings["enabled"]:
        click.echo(f"synthesize: off (generate.synthetic.enabled: false) -> empty {out}")
        return
    click.echo(f"synthesize: kept {stats['kept']} of {stats['received']} items ({stats['dropped_invalid']} invalid, "
               f"{stats['dropped_duplicate']} duplicates, {stats['dropped_unparseable']} unreadable) -> {out}")


def _report(tool, counts):
    click.echo(f"  {tool}: {counts.received} items received", err=True)


if __name__ == "__main__":
    main()
