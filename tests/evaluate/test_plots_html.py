"""The offline `dvc plots show` template: vega inlined, no network script, and it really draws."""

import json
import re
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from calltune.errors import InputError
from calltune.evaluate.metrics import aggregate, judge
from calltune.evaluate.plots import write_confusion, write_per_tool
from calltune.evaluate.plots_html import LIBRARIES, build_template, main
from calltune.evaluate.predictions import Prediction

from evaluate_helpers import ROOT

NODE_MODULES = ROOT / "node_modules"
CHROMIUM = "/usr/bin/chromium"
needs_npm = pytest.mark.skipif(not all((NODE_MODULES / lib).is_file() for lib in LIBRARIES),
                               reason="vega libraries not installed: run `npm install`")
REMOTE_SCRIPT = re.compile(r"<script[^>]*\bsrc\s*=\s*[\"']?(https?:)?//", re.IGNORECASE)


def fake_node_modules(root, code="var x = 1;"):
    for library in LIBRARIES:
        package = library.split("/")[0]
        (root / library).parent.mkdir(parents=True, exist_ok=True)
        (root / library).write_text(f"/* {package} */ {code}")
        (root / package / "package.json").write_text(json.dumps({"name": package, "version": "1.2.3",
                                                                 "license": "BSD-3-Clause"}))
    return root


def test_template_inlines_each_library_with_its_version_and_keeps_dvcs_placeholders(tmp_path):
    text = build_template(fake_node_modules(tmp_path, "if (a </script> b) {}"))
    for package in ("vega", "vega-lite", "vega-embed"):
        assert f"<script>/* {package} 1.2.3 (BSD-3-Clause) */\n/* {package} */ if (a <\\/script> b) {{}}\n</script>" in text
    assert "{plot_divs}" in text and "{refresh_tag}" in text
    assert "{scripts}" not in text  # where DVC would insert its CDN <script src=...> tags
    assert not REMOTE_SCRIPT.search(text)


def test_missing_library_or_a_placeholder_clash_is_a_clear_error(tmp_path):
    modules = fake_node_modules(tmp_path)
    (modules / LIBRARIES[1]).unlink()
    with pytest.raises(InputError, match=r"vega-lite.min.js: JavaScript library not found: run `npm install`"):
        build_template(modules)
    fake_node_modules(modules, "var s = '{plot_divs}';")
    with pytest.raises(InputError, match=r"vega.min.js: contains DVC's placeholder \{plot_divs\}"):
        build_template(modules)


def test_cli_writes_the_template_or_fails_without_writing(tmp_path):
    out = tmp_path / "plots" / "template.html"
    result = CliRunner().invoke(main, ["--node-modules", str(tmp_path / "nothing"), "--out", str(out)])
    assert result.exit_code == 2 and "JavaScript library not found" in result.output and not out.exists()
    result = CliRunner().invoke(main, ["--node-modules", str(fake_node_modules(tmp_path / "nm")), "--out", str(out)])
    assert result.exit_code == 0 and out.read_text().startswith("<!DOCTYPE html>")


def prediction(calls, expected):
    return Prediction(id="x", prompt="p", raw_output="r", calls=calls, expected=expected, parse_error=None,
                      latency_s=1.0, n_generated_tokens=3, judgement=judge(calls, None, expected, []))


@pytest.fixture
def dvc_plots_page(tmp_path):
    """`dvc plots show --html-template` over a per-tool and a confusion plot; returns the HTML path."""
    a, b = {"name": "a", "arguments": {}}, {"name": "b", "arguments": {}}
    preds = [prediction([a], [a]), prediction([b], [a]), prediction([], [b]), prediction([a], [])]
    write_per_tool(tmp_path / "plots/per_tool/base.json", "base", aggregate(preds))
    write_confusion(tmp_path / "plots/confusion/base.json", preds)
    (tmp_path / "dvc.yaml").write_text(
        "plots:\n"
        "  - plots/per_tool/base.json: {x: accuracy, y: tool, template: bar_horizontal}\n"
        "  - plots/confusion/base.json: {x: predicted, y: expected, template: confusion}\n")
    template = tmp_path / "template.html"
    template.write_text(build_template(NODE_MODULES))
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"],
                [sys.executable, "-m", "dvc", "plots", "show", "--html-template", str(template), "-o", "page"]):
        subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True)
    return tmp_path / "page" / "index.html"


@needs_npm
def test_dvc_plots_show_page_loads_nothing_from_the_network(dvc_plots_page):
    html = dvc_plots_page.read_text()
    assert not REMOTE_SCRIPT.search(html)
    assert "cdn.jsdelivr.net" not in html
    assert html.count("vegaEmbed('#") == 2


@needs_npm
@pytest.mark.skipif(not (shutil.which("node") and shutil.which(CHROMIUM)), reason="needs node and Chromium")
def test_dvc_plots_show_page_draws_every_plot_offline(dvc_plots_page):
    """In headless Chromium with every network request blocked, both plots are drawn."""
    driver = ROOT / "tests" / "evaluate" / "plots_driver.mjs"
    shown = subprocess.run(["node", str(driver), str(dvc_plots_page)], cwd=ROOT, check=True, capture_output=True,
                           text=True, timeout=120)
    assert json.loads(shown.stdout) == {"plots": 2, "drawn": 2, "blocked": [], "errors": []}
