"""The CLI must start instantly: no heavy library may be imported just to parse arguments."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["torch", "transformers", "lm_eval", "duckdb", "lightgbm", "ray", "datasets", "matplotlib"]


def test_cli_import_loads_no_heavy_module() -> None:
    code = ("import sys, json; import spectrabench.cli.app; "
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def test_help_runs_without_heavy_modules() -> None:
    code = ("import sys, json\nfrom spectrabench.cli.app import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "run" in out and "report" in out
    assert json.loads(out.strip().splitlines()[-1]) == []
