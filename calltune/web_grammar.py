"""The call grammar of a tools file as JSON, for constrained decoding in the browser demo (web/).

    python -m calltune.web_grammar data/tools.json --out web-grammar.json
    node web/serve.mjs --model models/onnx_quantized --tools data/tools.json --grammar web-grammar.json

The grammar is calltune.constrain's (the one source every engine's constraint is printed from),
for the FunctionGemma format, with its required-keys-only form for the end of the token budget:
{"grammar": G, "minimal": G}, each G {"root", "rules": {name: node}, "closers", "string_closers"}.
A node is one of {"lit": text}, {"token": text}, {"text": {"avoid", "min_chars"}},
{"json_chars": {"avoid"}}, {"char_run": {"exclude"}}, {"number": {"integer", "max_digits"}},
{"char_class": {"ranges": [[low, high]], "negate"}} (negated: never a marker, quote, backslash or
control character; a schema pattern's characters),
{"seq": [nodes]}, {"alt": [nodes]}, {"repeat": node, "min", "max"} or {"ref": rule}.
web/grammar.js enforces it on Transformers.js's generation.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from calltune.constrain import Constraint
from calltune.constrain.grammar import (Alt, CharClass, CharRun, Grammar, JsonChars, Lit, Number, Pattern, Ref, Repeat,
                                        Seq, Text, Token)
from calltune.errors import InputError


def node_json(node) -> dict:
    """One grammar node as JSON."""
    if isinstance(node, Lit):
        return {"lit": node.text}
    if isinstance(node, Token):
        return {"token": node.text}
    if isinstance(node, Text):
        return {"text": {"avoid": list(node.avoid), "min_chars": node.min_chars}}
    if isinstance(node, JsonChars):
        return {"json_chars": {"avoid": list(node.avoid)}}
    if isinstance(node, CharRun):
        return {"char_run": {"exclude": node.exclude}}
    if isinstance(node, Number):
        return {"number": {"integer": node.integer, "max_digits": node.max_digits}}
    if isinstance(node, CharClass):
        return {"char_class": {"ranges": [[low, high] for low, high in node.ranges], "negate": node.negate}}
    if isinstance(node, Pattern):
        return node_json(node.body)
    if isinstance(node, Seq):
        return {"seq": [node_json(item) for item in node.items]}
    if isinstance(node, Alt):
        return {"alt": [node_json(option) for option in node.options]}
    if isinstance(node, Repeat):
        return {"repeat": node_json(node.node), "min": node.min, "max": node.max}
    if isinstance(node, Ref):
        return {"ref": node.rule}
    raise TypeError(f"not a grammar node: {node!r}")


def grammar_json(grammar: Grammar) -> dict:
    """A Grammar as JSON: its reachable rules, root and closers."""
    return {"root": grammar.root, "rules": {name: node_json(grammar.rules[name]) for name in grammar.reachable()},
            "closers": list(grammar.closers), "string_closers": list(grammar.string_closers)}


def web_grammar(tools: list[dict], tool_choice="auto") -> dict:
    """{"grammar", "minimal"} of a FunctionGemma reply to `tools` under an OpenAI `tool_choice`."""
    from calltune.formats import get_format

    constraint = Constraint.for_request(get_format("functiongemma"), tools, tool_choice)
    return {"format": "functiongemma", "grammar": grammar_json(constraint.grammar),
            "minimal": grammar_json(constraint.minimal) if constraint.minimal is not None else None}


@click.command(help=__doc__)
@click.argument("tools", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--tool-choice", default="auto", show_default=True,
              help='auto (calls or text), required (calls only), none (text only), or a tool name (calls of it only).')
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the JSON here (atomically); default: standard output.")
def main(tools: Path, tool_choice: str, out: Path | None) -> None:
    from calltune.data.tools import load_tools
    from calltune.io import write_json

    try:
        loaded = load_tools(tools)
        choice = tool_choice if tool_choice in ("auto", "required", "none") else \
            {"type": "function", "function": {"name": tool_choice}}
        grammar = web_grammar(loaded, choice)
    except InputError as e:
        click.echo(f"error: {e.describe()}", err=True)
        sys.exit(2)
    if out is None:
        import json

        click.echo(json.dumps(grammar, ensure_ascii=False))
    else:
        write_json(out, grammar, indent=None)
        click.echo(f"wrote {out} ({len(grammar['grammar']['rules'])} rules)", err=True)


if __name__ == "__main__":
    main()
