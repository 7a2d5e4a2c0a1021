"""Bad report requests are one-line user errors that write nothing; report files appear whole or not at all."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from spectrabench.cli.app import main
from spectrabench.errors import UserError
from spectrabench.report.files import write_binary_files, write_into_folder, write_text
from spectrabench.store.compares import find_compare, record_compare_run
from spectrabench.store.db import connect
from spectrabench.store.history import History
from spectrabench.store.machineload import MachineLoad
from spectrabench.store.report_queries import export_run_parquet, run_attempts, split_devices
from spectrabench.store.schema import MIGRATIONS
from tests.conftest import CliResult


def _report(capsys: pytest.CaptureFixture[str], *args: str) -> CliResult:
    """`spectrabench report ARGS` in this process: the real CLI without seconds of interpreter start-up each."""
    with pytest.raises(SystemExit) as exited:
        main(["report", *args])
    out, err = capsys.readouterr()
    return CliResult(int(exited.value.code or 0), out, err)


def _assert_user_error(result: CliResult, *needles: str) -> None:
    assert result.code == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("spectrabench: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def _store_with_empty_run(data_dir: Path) -> str:
    """A store holding one finished run that ran nothing, written through the driver's own writer."""
    history = History(data_dir / "spectrabench.duckdb")
    history.start_run("20260101-000000-abcdef", profile="empty", mode="baseline", limit=None, devices="cpu:0",
                      backend="local", settings={}, versions={})
    history.finish_run("20260101-000000-abcdef", "complete", {"wall_s": 0.5, "jobs_total": 0})
    return "20260101-000000-abcdef"


@pytest.mark.parametrize(("args", "needle"), [
    (["--format", "md", "--plots", "figs"], "--plots needs --format html"),
    (["--format", "parquet"], "needs --out FOLDER"),
    (["--format", "html", "--out", "missing/report.html"], "folder 'missing' does not exist"),
    (["--format", "html", "--out", "."], "it is a folder"),
    (["--format", "parquet", "--out", "afile"], "it is a file"),
    (["--format", "html", "--out", "r.html", "--plots", "missing/figs"], "folder 'missing' does not exist"),
])
def test_bad_paths_are_refused_before_anything_is_read(isolated_env: Path, data_dir: Path, args: list[str],
                                                       needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    (isolated_env / "afile").write_text("keep")
    before = sorted(p.name for p in isolated_env.iterdir())
    _assert_user_error(_report(capsys, *args), needle)
    assert sorted(p.name for p in isolated_env.iterdir()) == before
    assert not data_dir.exists()


def test_empty_store_is_a_user_error_and_writes_nothing(isolated_env: Path, data_dir: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    with connect(data_dir / "spectrabench.duckdb"):
        pass  # a migrated store with no runs
    _assert_user_error(_report(capsys, "--format", "html", "--out", "r.html", "--plots", "figs"), "holds no runs")
    assert not (isolated_env / "r.html").exists() and not (isolated_env / "figs").exists()


def test_a_run_that_ran_nothing_still_renders_every_section(isolated_env: Path, data_dir: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    _store_with_empty_run(data_dir)
    result = _report(capsys, "--format", "html", "--out", "r.html", "--plots", "figs")
    assert result.code == 0, result.stderr
    html = (isolated_env / "r.html").read_text()
    for key in ("summary", "leaderboard", "gantt", "predictions", "attempts", "resources", "compare"):
        assert f'<section id="{key}">' in html
    assert "No attempt ran in this run" in html and "not part of a compare" in html
    assert list((isolated_env / "figs").iterdir()) == []  # no data, no figure


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs a Linux /proc to have a folder no one can write")
def test_unwritable_target_is_a_user_error(isolated_env: Path, data_dir: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    _store_with_empty_run(data_dir)
    # /proc refuses new files even to root (CI runs as root, for which permission bits mean nothing).
    _assert_user_error(_report(capsys, "--format", "md", "--out", "/proc/report.md"), "cannot write")


def test_write_text_replaces_whole_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out" / "r.html"
    target.parent.mkdir()
    target.write_text("old")
    write_text(target, "new")
    assert target.read_text() == "new" and [p.name for p in target.parent.iterdir()] == ["r.html"]


def test_failed_folder_write_leaves_nothing(tmp_path: Path) -> None:
    def produce(staging: Path) -> list[Path]:
        (staging / "a.parquet").write_text("half")
        raise OSError(28, "No space left on device")

    parent = tmp_path / "reports"
    parent.mkdir()
    with pytest.raises(UserError, match="No space left"):
        write_into_folder(parent / "out", produce)
    assert list(parent.iterdir()) == []


def test_folder_write_replaces_same_names_and_keeps_others(tmp_path: Path) -> None:
    folder = tmp_path / "figs"
    folder.mkdir()
    (folder / "gantt.png").write_bytes(b"old")
    (folder / "notes.txt").write_text("mine")
    write_binary_files(folder, {"gantt.png": b"new", "resources.png": b"r"})
    assert sorted(p.name for p in folder.iterdir()) == ["gantt.png", "notes.txt", "resources.png"]
    assert (folder / "gantt.png").read_bytes() == b"new"


def test_store_from_before_compares_reads_and_exports(tmp_path: Path) -> None:
    """A schema-1 store opened read-only (report never migrates) has no compares table: no compare, no file."""
    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))
    for statement in MIGRATIONS[1]:
        con.execute(statement)
    con.execute("CREATE TABLE schema_version (version INTEGER)")
    con.execute("INSERT INTO schema_version VALUES (1)")
    con.execute("INSERT INTO runs (run_id, profile, mode, status) VALUES ('r1', 'p', 'baseline', 'complete')")
    con.execute("INSERT INTO attempts (job_key, run_id, attempt, status) VALUES ('j', 'r1', 1, 'complete')")
    con.close()
    assert find_compare(db, "r1") is None
    # Its attempts predate the machine-load figures: they read as not measured.
    assert [(a.job_key, a.other_cores) for a in run_attempts(db, "r1")] == [("j", None)]
    (tmp_path / "out").mkdir()
    written = export_run_parquet(db, "r1", tmp_path / "out")
    assert "compares.parquet" not in {p.name for p in written} and len(written) == 8


def test_compare_pair_is_found_from_either_run(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    record_compare_run(db, "c1", "baseline", "run-a")
    assert find_compare(db, "run-a") == ("c1", "run-a", None, {})
    busy = MachineLoad(other_cores=0.9, steal_cores=0.0, cores=2)
    record_compare_run(db, "c1", "optimized", "run-b", busy)
    assert find_compare(db, "run-b") == ("c1", "run-a", "run-b", {"optimized": busy})
    with pytest.raises(ValueError, match="role"):
        record_compare_run(db, "c1", "fastest", "run-c")


def test_devices_are_split_per_device() -> None:
    assert split_devices("cuda:0,1") == ["cuda:0", "cuda:1"]
    assert split_devices("cuda:0,cuda:1") == ["cuda:0", "cuda:1"]
    assert split_devices("cpu:0") == ["cpu:0"]
    assert split_devices(None) == []
