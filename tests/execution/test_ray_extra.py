"""`--backend` mistakes are user errors: an unknown name, or ray without the extra installed (no Ray needed here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO, run_cli


def _profile(tmp_path: Path) -> str:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"name": "p", "task_paths": [str(REPO / "profiles" / "tasks")],
                                    "models": [{"name": "tiny", "builtin": "tiny-llama-4m", "params_b": 0.004}],
                                    "tasks": [{"name": "sb_facts", "shots": 0}]}))
    return str(path)


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_ray_backend_without_the_extra_says_how_to_install(tmp_path: Path, data_dir: Path) -> None:
    # None in sys.modules makes `import ray` fail exactly as it does where the extra is not installed.
    code = "import sys\nsys.modules['ray'] = None\nfrom spectrabench.cli.app import main\nmain(sys.argv[1:])"
    for command in ("plan", "run"):
        proc = subprocess.run([sys.executable, "-c", code, command, "--profile", _profile(tmp_path),
                               "--backend", "ray"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        line = _one_error_line(proc.stderr)
        assert "needs Ray" in line and "pip install 'spectrabench[ray]'" in line, line
    assert not data_dir.exists()


def test_unknown_backend_names_the_known_ones(tmp_path: Path, data_dir: Path) -> None:
    result = run_cli("run", "--profile", _profile(tmp_path), "--backend", "rey", timeout=120)
    assert result.code == 2
    assert "unknown backend 'rey'" in _one_error_line(result.stderr) and "did you mean 'ray'" in result.stderr
    assert not data_dir.exists()
