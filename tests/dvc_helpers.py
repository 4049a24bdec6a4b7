"""Running git and DVC in a throwaway project from a test: an environment isolated from the
machine's DVC and git configs, and a command runner that fails the test with the command's output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def dvc_env(tmp_path: Path) -> dict[str, str]:
    """os.environ with this Python's bin first on PATH, calltune importable, one CPU thread per
    process, and DVC's and git's site, global and system configs moved under `tmp_path`."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "DVC_NO_ANALYTICS": "1",
            "DVC_SITE_CACHE_DIR": str(tmp_path / "dvc-site"), "DVC_GLOBAL_CONFIG_DIR": str(tmp_path / "dvc-global"),
            "DVC_SYSTEM_CONFIG_DIR": str(tmp_path / "dvc-system"), "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": str(tmp_path / "gitconfig")}


def run(cwd: Path, env: dict, *args: str, timeout: int = 120, with_stderr: bool = False) -> str:
    """The command's stdout (and stderr after it, with_stderr); a non-zero exit fails the test with both."""
    proc = subprocess.run(args, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr if with_stderr else proc.stdout


def commit_project(repo: Path, env: dict, message: str) -> None:
    """`repo` as a git + DVC project with everything in it committed (git user set in the repo)."""
    for args in (("git", "init", "-q"), ("git", "config", "user.email", "test@example.com"),
                 ("git", "config", "user.name", "test"), ("dvc", "init", "-q"), ("git", "add", "-A"),
                 ("git", "commit", "-qm", message)):
        run(repo, env, *args)
