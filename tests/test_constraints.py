"""constraints.txt, the exact versions scripts/setup.sh installs: one pin per package, every
requirement of pyproject.toml (extras included) pinned inside its own range, the installs in
setup.sh drawing on it, and this environment built from it."""

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from calltune.foundation import bfcl_data

ROOT = Path(__file__).resolve().parents[1]


def parse_constraints(text: str) -> dict[str, Version]:
    """{canonical name: version} from constraints text; a line that is not `name==version`, or a
    package pinned twice, is a ValueError naming the line."""
    pins: dict[str, Version] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([0-9][A-Za-z0-9.+!-]*)", line)
        if not match:
            raise ValueError(f"constraints.txt:{number}: not an exact pin: {line!r}")
        name = canonicalize_name(match[1])
        if name in pins:
            raise ValueError(f"constraints.txt:{number}: {name} is pinned twice")
        pins[name] = Version(match[2])
    return pins


PINS = parse_constraints((ROOT / "constraints.txt").read_text())


def project_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return [Requirement(text) for text in listed]


def test_the_parser_refuses_ranges_and_repeats():
    assert parse_constraints("# head\nTorch==2.13.0  # cpu\n\nPyYAML==6.0.4\n") == {
        "torch": Version("2.13.0"), "pyyaml": Version("6.0.4")}
    with pytest.raises(ValueError, match=r"constraints.txt:2: not an exact pin: 'numpy>=1.26'"):
        parse_constraints("torch==2.13.0\nnumpy>=1.26\n")
    with pytest.raises(ValueError, match="constraints.txt:3: pyyaml is pinned twice"):
        parse_constraints("PyYAML==6.0.4\nx==1\npyyaml==6.0.3\n")


@pytest.mark.parametrize("requirement", project_requirements(), ids=str)
def test_every_requirement_is_pinned_inside_its_range(requirement):
    name = canonicalize_name(requirement.name)
    assert name in PINS, f"{requirement} (pyproject.toml) has no pin in constraints.txt"
    assert requirement.specifier.contains(PINS[name], prereleases=True), (
        f"constraints.txt pins {name}=={PINS[name]}, outside pyproject.toml's {requirement}")


def test_setup_installs_through_the_constraints():
    """Every pip install of a package in setup.sh passes -c constraints.txt and names no version of
    its own (one place to move a pin); the pip it upgrades to is pinned too."""
    installs = [line.strip() for line in (ROOT / "scripts/setup.sh").read_text().splitlines()
                if re.match(r"\s*python -m pip install", line)]
    assert installs, "scripts/setup.sh installs nothing with pip"
    for line in installs:
        if '"pip==' in line:
            continue
        assert "-c constraints.txt" in line, line
        assert "==" not in line, f"a version in setup.sh bypasses constraints.txt: {line}"


def test_the_bfcl_hint_names_the_pinned_release():
    assert f"bfcl-eval=={PINS['bfcl-eval']}" in Path(bfcl_data.__file__).read_text()


def test_this_environment_was_built_from_the_constraints():
    """The installed release of every pinned package that is here (its public version: the CPU
    build of torch reports 2.13.0+cpu) is the pinned one."""
    wrong = []
    for dist in importlib.metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        if name in PINS and Version(Version(dist.version).public) != PINS[name]:
            wrong.append(f"{name} {dist.version} (constraints.txt: {PINS[name]})")
    assert not wrong, "installed outside constraints.txt; rerun scripts/setup.sh: " + ", ".join(sorted(wrong))
