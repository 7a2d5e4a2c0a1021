"""The `spectrabench` command: builds the Typer app and turns user errors into one line and exit code 2."""

from __future__ import annotations

import os
import sys

import typer

from spectrabench.cli import compare as compare_command
from spectrabench.cli import plan as plan_command
from spectrabench.cli import report as report_command
from spectrabench.cli import run as run_command
from spectrabench.cli.calibrate import calibrate_app
from spectrabench.errors import UserError

app = typer.Typer(
    name="spectrabench",
    help="Schedule lm-evaluation-harness runs for many models x many tasks, and learn from every run.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.command("plan")(plan_command.plan)
app.command("run")(run_command.run)
app.command("compare")(compare_command.compare)
app.add_typer(calibrate_app, name="calibrate")
app.command("report")(report_command.report)


def _debug() -> bool:
    # Read directly: the Settings object may be what failed to build.
    return os.environ.get("SPECTRABENCH_DEBUG", "").lower() in {"1", "true", "yes"}


def _one_line(message: str) -> str:
    return " ".join(message.split())


def main(argv: list[str] | None = None) -> None:
    """Console entry point; `argv` defaults to sys.argv[1:]."""
    try:
        code = app(args=argv, prog_name="spectrabench", standalone_mode=False)
    except UserError as exc:
        if _debug():
            raise
        print(f"spectrabench: error: {_one_line(str(exc))}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        print("spectrabench: interrupted", file=sys.stderr)
        sys.exit(130)
    except typer.TyperException as exc:
        # Typer's own usage errors (unknown option, missing value): one line too, with where to look.
        ctx = getattr(exc, "ctx", None)
        command = ctx.command_path if ctx is not None else "spectrabench"
        format_message = getattr(exc, "format_message", None)
        text = format_message() if callable(format_message) else str(exc)
        print(f"spectrabench: error: {_one_line(text)} (see '{command} --help')", file=sys.stderr)
        sys.exit(int(getattr(exc, "exit_code", 2)))
    sys.exit(code if isinstance(code, int) else 0)
