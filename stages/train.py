"""train stage: fine-tune models/base on data/splits with params train.* (LoRA, DoRA, QLoRA or full).

Writes models/adapter/ (adapter_model.safetensors + adapter_config.json in PEFT form, or the whole
model for method full, plus training_summary.json), checkpoints in models/checkpoints/ and
dvclive logs (train/valid loss, lr, tokens/s per step).

Data parallel: run it under `torchrun --standalone --nproc_per_node N stages/train.py ...`, or set
train.distributed: N and it starts torchrun itself (so `dvc repro` needs no other cmd).
"""

import subprocess
import sys
from pathlib import Path

import click

from calltune.cli import params_option, stage
from calltune.train import distributed
from calltune.train.device import resolve_backend
from calltune.train.run import run_training
from calltune.train.session import TrainPaths

DEFAULTS = TrainPaths()


def _path(name: str, default: Path, **kw):
    return click.option(f"--{name}", default=str(default), show_default=True, type=click.Path(path_type=Path, **kw))


def budget_note(summary: dict) -> str:
    """What the time budget did to the run, if anything."""
    done = f"{summary['steps']} of {summary['total_steps']} planned steps"
    if summary.get("fitted_to_budget"):  # train.fit_schedule: the cosine followed the budget's clock
        return f"; schedule fitted to the time budget (train.max_minutes={summary['max_minutes']}): {done}"
    if summary.get("stopped_at_budget"):
        return f"; stopped at the time budget (train.max_minutes={summary['max_minutes']}) after {done}"
    return ""


@click.command(help=__doc__)
@params_option
@_path("train", DEFAULTS.train, dir_okay=False)
@_path("valid", DEFAULTS.valid, dir_okay=False)
@_path("base-model", DEFAULTS.base, file_okay=False)
@_path("out", DEFAULTS.out, file_okay=False)
@_path("checkpoints", DEFAULTS.checkpoints, file_okay=False)
@_path("live", DEFAULTS.live, file_okay=False)
@click.option("--progress/--no-progress", default=True, help="Show a progress bar with ETA.")
@stage
def main(params, train, valid, base_model, out, checkpoints, live, progress):
    tp = params["train"]
    on_torch = resolve_backend(tp["backend"]) == "torch"  # the mlx backend refuses several processes
    processes = distributed.must_launch(tp.get("distributed", "auto")) if on_torch else 0
    if processes:  # train.distributed: N outside torchrun: run this same command under torchrun
        command = distributed.launch_command(processes, str(Path(__file__).resolve()), sys.argv[1:])
        sys.exit(subprocess.call(command, env=distributed.launch_env(processes)))
    paths = TrainPaths(train=train, valid=valid, base=base_model, out=out, checkpoints=checkpoints, live=live)
    summary = run_training(params, paths, progress=progress)
    if summary.get("processes", 1) > 1 and not distributed.torchrun_env().is_main:
        return  # the main process reports
    if "soup" in summary:  # train.soup: N runs, one adapter
        click.echo(f"trained a soup of {summary['soup']} runs (seeds {summary['seeds']}; {summary['backend']}, "
                   f"{summary['device']}, {summary['method']}) in {summary['wall_s']:.0f}s:")
        for run in summary["members"]:
            click.echo("  " + run_line(run))
        click.echo(f"  their mean as one adapter -> {out}")
        return
    click.echo(f"trained {run_line(summary)} -> {out}")


def run_line(summary: dict) -> str:
    """One run's steps, device and losses (the stage's report)."""
    best = summary.get("best_valid_loss")
    return (f"{summary['steps']} steps (seed {summary['seed']}; {summary['backend']}, {summary['device']}, "
            f"{summary['dtype']}, {summary['method']}) in {summary['wall_s']:.0f}s: train loss "
            f"{summary['first_train_loss']:.4f} -> {summary['last_train_loss']:.4f}"
            + (f", best valid loss {best:.4f} at step {summary['best_step']}" if best is not None else "")
            + budget_note(summary))


if __name__ == "__main__":
    main()
