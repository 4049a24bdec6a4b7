"""Shared plumbing for the stage scripts in stages/: params loading and clean failure."""

from __future__ import annotations

import functools
import sys

import click

from calltune.errors import InputError
from calltune.params import load_params

params_option = click.option(
    "--params", "params_path", default="params.yaml", show_default=True,
    type=click.Path(dir_okay=False), help="Parameters file, validated against schemas/params.schema.json.",
)


def stage(fn):
    """Wrap a stage command: load + validate params, turn InputError into a clear exit 2."""

    @functools.wraps(fn)
    def wrapper(*args, params_path="params.yaml", **kwargs):
        try:
            params = load_params(params_path)
            return fn(*args, params=params, **kwargs)
        except InputError as e:
            click.echo(f"error: {e.describe()}", err=True)
            sys.exit(2)

    return wrapper
