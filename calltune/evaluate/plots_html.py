"""An HTML template for `dvc plots show` that works offline.

DVC's default page loads vega, vega-lite and vega-embed from a CDN, so it renders blank without a
network. This template inlines the three libraries from node_modules (`npm install`; versions
pinned in package.json) and leaves out DVC's `{scripts}` placeholder, where DVC would put the CDN
tags:

    python -m calltune.evaluate.plots_html            # writes plots/template.html
    dvc plots show --html-template plots/template.html
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from calltune.errors import InputError
from calltune.io import read_json, write_text

LIBRARIES = ("vega/build/vega.min.js", "vega-lite/build/vega-lite.min.js", "vega-embed/build/vega-embed.min.js")
DVC_PLACEHOLDERS = ("{scripts}", "{plot_divs}", "{refresh_tag}")  # DVC fills these by plain replacement

PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>calltune plots</title>
<!-- inline scripts -->
    <style>
        body { font-family: sans-serif; }
        table { border-spacing: 15px; }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def inline_script(node_modules: Path, library: str) -> str:
    path = node_modules / library
    if not path.is_file():
        raise InputError("JavaScript library not found: run `npm install` in the repository root", path=path)
    package = read_json(node_modules / library.split("/")[0] / "package.json")
    code = path.read_text(encoding="utf-8")
    clash = [p for p in DVC_PLACEHOLDERS if p in code]
    if clash:
        raise InputError(f"contains DVC's placeholder {clash[0]}, which DVC would overwrite", path=path)
    code = code.replace("</script", "<\\/script")  # the only sequence that would end the inline block early
    return f"<script>/* {package['name']} {package['version']} ({package.get('license', 'see package')}) */\n{code}\n</script>"


def build_template(node_modules="node_modules") -> str:
    """The template's text: DVC's page layout with the three libraries inlined."""
    scripts = "\n".join(inline_script(Path(node_modules), library) for library in LIBRARIES)
    return PAGE.replace("<!-- inline scripts -->", scripts)


@click.command(help=__doc__)
@click.option("--node-modules", default="node_modules", show_default=True, type=click.Path(file_okay=False))
@click.option("--out", default="plots/template.html", show_default=True, type=click.Path(dir_okay=False))
def main(node_modules, out):
    try:
        text = build_template(node_modules)
    except InputError as e:
        click.echo(f"error: {e.describe()}", err=True)
        sys.exit(2)
    write_text(out, text)
    click.echo(f"wrote {out} ({len(text) / 1e6:.1f} MB): dvc plots show --html-template {out}")


if __name__ == "__main__":
    main()
