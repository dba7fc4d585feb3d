"""The Snakemake HTML report of the tiny workflow: built offline, figures embedded, and it renders in a real
(headless) browser: the report is a React app, so a page that did not run its JavaScript shows only a warning.

Chromium comes from Debian (``apt-get install -y chromium``); without /usr/bin/chromium the browser test is
skipped (with CI=true it fails: tests/conftest.py).
"""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers import system_part_used, tiny_workflow
from test_aggregate import snakemake_command

pytestmark = pytest.mark.workflow

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
]
FIGURES = [
    "probe_accuracy_heatmap.png",
    "probe_accuracy_curves.png",
    "information_curves.png",
    "information_plane.png",
    "steering.png",
    "overview.png",
    "pretrain_loss.png",
]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    workdir = tiny_workflow(tmp_path_factory)
    path = workdir / "results" / "report.html"
    if not path.is_file():
        made = subprocess.run(
            snakemake_command(workdir, "--report", str(path)), capture_output=True, text=True, timeout=300
        )
        assert made.returncode == 0, made.stderr[-4000:]
    return path


def test_report_embeds_every_figure_caption_and_the_workflow_description(report):
    html = report.read_text()
    for name in FIGURES + ["summary.md", "phases.csv"]:
        assert name in html, name
    assert html.count('"mime_type": "image/png"') == len(FIGURES)
    assert html.count("data:image/png;") >= len(FIGURES)  # embedded, so the single file works offline
    assert "fitting" in html and "Qian et al." in html  # report/workflow.rst
    assert "Probe accuracy by layer and checkpoint" in html  # a caption, rendered from report/*.rst
    assert "reliability" in html and "Overview" in html  # the categories
    # no script or stylesheet is fetched from the network
    assert "<script src=" not in html and 'rel="stylesheet" href="http' not in html


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian: apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(report, tmp_path):
    from PIL import Image

    screenshot = tmp_path / "report.png"
    shot = subprocess.run(
        [
            CHROMIUM,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={screenshot}",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert screenshot.is_file(), shot.stderr[-3000:]
    version = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=60).stdout
    system_part_used("Chromium", version.strip() or CHROMIUM)
    image = np.asarray(Image.open(screenshot).convert("RGB"))
    assert image.shape[:2] == (1000, 1400)
    rgb = image.reshape(-1, 3).astype(np.uint32)
    colours, counts = np.unique(rgb[:, 0] << 16 | rgb[:, 1] << 8 | rgb[:, 2], return_counts=True)
    assert len(colours) > 300, f"screenshot looks blank: {len(colours)} distinct colours"
    assert counts.max() / counts.sum() < 0.95, "one colour covers almost the whole screenshot"

    dom = subprocess.run(
        [
            CHROMIUM,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile-dom'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    ).stdout
    app = dom[dom.index('id="app"') :]
    assert "<nav" in app, "the report's JavaScript did not render its menu"
    for category in ("Overview", "reliability"):  # the menu's result categories
        assert f"<span>{category}</span>" in app, category
