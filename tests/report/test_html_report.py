"""The report of a real smoke run: HTML in headless Chromium, PNG figures, Parquet, markdown, JSON and a compare."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import NamedTuple

import duckdb
import pytest
import yaml
from PIL import Image

from spectrabench.report.data import load_report
from spectrabench.report.html import SECTIONS, to_html
from spectrabench.report.plots import render_plots
from spectrabench.report.text import to_report_json, to_report_markdown
from spectrabench.store.compares import record_compare_run
from spectrabench.store.machineload import MachineLoad
from tests.conftest import MODEL_CACHE, REPO
from tests.report.chromium import chromium_binary, load_page, screenshot

pytestmark = pytest.mark.slow

PROFILE = {
    "name": "mini-report", "limit": 2, "batch_size": 2, "task_paths": [str(REPO / "profiles" / "tasks")],
    "models": [
        {"name": "tiny-llama-4m", "builtin": "tiny-llama-4m", "params_b": 0.004, "dtype": "float32"},
        {"name": "tiny-llama-15m", "builtin": "tiny-llama-15m", "params_b": 0.015, "dtype": "float32"},
        # Not on this offline machine: fails in the hub preflight, so the report has a failure with its cause.
        {"name": "ghost", "pretrained": "no-such-org/no-such-model", "params_b": 7.0},
    ],
    "tasks": [{"name": "sb_facts", "shots": 0}, {"name": "sb_arith", "shots": 3}],
}
# The 15m model's first worker dies as it starts (before any import: it costs under a second), so the timeline
# holds a failed attempt and its retry.
FAULT = "crash:attempt=1,model=tiny-llama-15m"


class Store(NamedTuple):
    """The data dir of the module's one real run."""

    root: Path
    data_dir: Path
    run_id: str


def _cli(data_dir: Path, *args: str, fault: str | None = None) -> subprocess.CompletedProcess[str]:
    # The module-scoped run starts before the per-test isolation fixture, so it isolates itself the same way.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPECTRABENCH_", "HF_TOKEN"))}
    env.update({"HOME": str(data_dir.parent / "home"), "SPECTRABENCH_DATA_DIR": str(data_dir),
                "SPECTRABENCH_MODEL_CACHE_DIR": str(MODEL_CACHE), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false"})
    if fault:
        env["SPECTRABENCH_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "spectrabench", *args], capture_output=True, text=True, env=env,
                          timeout=600, cwd=data_dir.parent)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    root = tmp_path_factory.mktemp("report-run")
    (root / "home").mkdir()
    profile = root / "mini-report.yaml"
    profile.write_text(yaml.safe_dump(PROFILE))
    data_dir = root / "data"
    result = _cli(data_dir, "run", "--profile", str(profile), "--mode", "parallel", "--devices", "cpu:2", "--json",
                  fault=FAULT)
    assert result.returncode == 1, result.stderr[-3000:]  # the ghost model fails; the others complete
    return Store(root, data_dir, json.loads(result.stdout)["run_id"])


def _assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    with Image.open(path) as image:
        image.load()
        assert image.width > 200 and image.height > 100, (path, image.size)
        # A blank canvas has one colour; a drawn figure has many.
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 10, path


class _Links(HTMLParser):
    """Every URL the page would fetch or link to."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value or "" for name, value in attrs if name in ("src", "href")]


@pytest.mark.skipif(chromium_binary() is None, reason="chromium is not installed (`apt-get install chromium`; "
                                                      ".ci/run installs it)")
def test_html_report_loads_in_chromium_with_every_section(store: Store, tmp_path: Path) -> None:
    page, plots = tmp_path / "report.html", tmp_path / "plots"
    result = _cli(store.data_dir, "report", "--format", "html", "--out", str(page), "--plots", str(plots))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == ""

    pngs = sorted(p.name for p in plots.iterdir())
    # No compare in this store, so no compare figure; every other figure has data.
    assert pngs == ["gantt.png", "leaderboard.png", "predictions.png", "resources.png"]
    for name in pngs:
        _assert_png(plots / name)

    loaded = load_page(page, tmp_path / "chromium-profile")
    assert loaded.console == [], loaded.console
    for key in SECTIONS:
        assert f'<section id="{key}">' in loaded.dom, key
    for name in pngs:
        assert f'id="plot-{name.removesuffix(".png")}"' in loaded.dom
    links = _Links()
    links.feed(loaded.dom)
    assert links.urls and all(u.startswith(("data:", "#")) for u in links.urls), links.urls
    assert "no-such-org/no-such-model" in loaded.dom and "unavailable" in loaded.dom  # the failure and its cause
    assert "crash" in loaded.dom  # the injected crash of the first attempt
    assert "This run was not part of a compare." in loaded.dom
    assert store.run_id in loaded.dom

    shot = tmp_path / "report.png"
    screenshot(page, shot, tmp_path / "chromium-profile")
    _assert_png(shot)
    if target := os.environ.get("SPECTRABENCH_REPORT_SCREENSHOT"):
        shutil.copy(shot, target)  # for a person to look at


@pytest.mark.skipif(chromium_binary() is None, reason="chromium is not installed")
def test_console_check_catches_a_broken_page(tmp_path: Path) -> None:
    """The Chromium check above would see a console error if the report had one."""
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><script>console.error('boom'); nope();</script></body></html>")
    console = load_page(page, tmp_path / "chromium-profile").console
    assert any("boom" in line for line in console) and any("nope" in line for line in console), console


def test_parquet_export_writes_one_file_per_table(store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "export"
    result = _cli(store.data_dir, "report", "--format", "parquet", "--out", str(folder))
    assert result.returncode == 0, result.stderr[-3000:]
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(f"{t}.parquet" for t in ("runs", "jobs", "attempts", "run_tasks", "task_results",
                                                     "scores", "samples", "resources", "compares", "leaderboard"))
    db = store.data_dir / "spectrabench.duckdb"
    with duckdb.connect(str(db), read_only=True) as con:
        attempts = con.execute("SELECT count(*) FROM attempts WHERE run_id = ?", [store.run_id]).fetchone()[0]
    assert duckdb.sql(f"SELECT count(*) FROM '{folder / 'attempts.parquet'}'").fetchall()[0][0] == attempts == 3
    board = duckdb.sql(f"SELECT model, task, value FROM '{folder / 'leaderboard.parquet'}'").fetchall()
    assert len(board) == 6 and {m for m, _, v in board if v is None} == {"ghost"}


def test_markdown_and_json_carry_predictions_attempts_and_compare(store: Store) -> None:
    # In-process: the CLI path is covered above; each subprocess costs seconds on a shared 2-core machine.
    data = load_report(store.data_dir / "spectrabench.duckdb", store.run_id)
    md = to_report_markdown(data)
    for needle in ("## Predicted vs measured", "## Attempts (3)", "This run was not part of a compare.",
                   "ghost x sb_facts, sb_arith: unavailable"):
        assert needle in md, needle
    report = json.loads(to_report_json(data))
    assert [a["status"] for a in report["attempts"]].count("complete") == 2 and len(report["attempts"]) == 3
    assert all(j["stage"] == "intelligent" for j in report["jobs"] if j["model"] != "ghost")
    assert report["compare"] is None


def test_a_run_whose_attempts_met_other_work_says_so_in_every_format(store: Store, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(store.data_dir, data_dir)
    db = data_dir / "spectrabench.duckdb"
    with duckdb.connect(str(db)) as con:
        # Every attempt of the local run measured the machine while it ran.
        measured = con.execute("SELECT own_cores, other_cores, cores FROM attempts WHERE run_id = ?",
                               [store.run_id]).fetchall()
        assert len(measured) == 3 and all(own is not None and other is not None and cores >= 1
                                          for own, other, cores in measured)
        first_other = con.execute("SELECT other_cores FROM attempts WHERE run_id = ? ORDER BY started_at, job_key, "
                                  "attempt LIMIT 1", [store.run_id]).fetchone()[0]
        # As the driver sums it up when a neighbour competed with two of them.
        con.execute("UPDATE runs SET summary = json_merge_patch(summary, ?) WHERE run_id = ?",
                    ['{"contended_attempts": 2, "other_cores_max": 0.93}', store.run_id])
    data = load_report(db, store.run_id)
    note = "Other work took up to 0.9 cores of the machine while 2 attempt(s) ran"
    html = to_html(data, render_plots(data))
    assert note in to_report_markdown(data) and note in html and "<th>other cores</th>" in html
    report = json.loads(to_report_json(data))
    assert report["run"]["summary"]["contended_attempts"] == 2
    # Each attempt shows the other work beside it.
    assert report["attempts"][0]["other_cores"] == pytest.approx(first_other)
    assert "| other cores |" in to_report_markdown(data)


def test_compare_section_sets_both_runs_side_by_side(store: Store, tmp_path: Path) -> None:
    """A run compared with itself: speed-up 1, every score identical (the real compare command is not built yet)."""
    data_dir = tmp_path / "data"
    shutil.copytree(store.data_dir, data_dir)
    db = data_dir / "spectrabench.duckdb"
    record_compare_run(db, "cmp-1", "baseline", store.run_id, MachineLoad(other_cores=0.9, steal_cores=0.0, cores=2))
    record_compare_run(db, "cmp-1", "optimized", store.run_id, MachineLoad(other_cores=0.0, steal_cores=0.0, cores=2))
    data = load_report(db, store.run_id)
    compare = json.loads(to_report_json(data))["compare"]
    assert compare["compare_id"] == "cmp-1" and compare["speedup"] == pytest.approx(1.0)
    assert compare["parity"]["compared"] == 4 == compare["parity"]["identical"]
    # The machine was busy with other work while the baseline was timed: every format says so.
    assert compare["noisy"] is True and compare["machine_load"]["baseline"]["other_cores"] == 0.9
    assert "not a clean measurement" in to_report_markdown(data)
    plots = render_plots(data)
    html = to_html(data, plots)
    assert "Speed-up: 1.00x" in html and "every score identical" in html and 'id="plot-compare"' in html
    assert "baseline 0.90, optimized 0.00 (of 2 cores)" in html and "not a clean measurement" in html
    (tmp_path / "compare.png").write_bytes(plots["compare"])
    _assert_png(tmp_path / "compare.png")
