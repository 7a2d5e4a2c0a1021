"""The two kinds of failure: a user's mistake (one line, exit 2) and everything else (a bug, with its traceback)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """Bad input that the user can fix: printed as one line with a hint, exit code 2, no traceback.

    Args:
        message: What is wrong, in the user's terms.
        hint: How to fix it, or what they probably meant.
    """

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


def did_you_mean(name: str, known: Iterable[str], what: str) -> str:
    """Build a hint naming the closest known value, then all of them.

    Args:
        name: The value the user gave.
        known: The values that exist.
        what: The plural noun for the list, e.g. "profiles".
    """
    choices = sorted(set(known))
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    listing = f"{what}: {', '.join(choices)}" if len(choices) <= 12 else f"{len(choices)} {what} known"
    return f"did you mean '{close[0]}'? ({listing})" if close else listing
