"""Parts of an lm-eval group: a slice of its leaf tasks that one worker runs, so one large group can use several
devices at once.

A part is named `<task>[<i>/<k>]` (1-based), e.g. `mmlu[2/4]`: the second of four contiguous slices of the group's
leaf tasks, in the order lm-eval lists them. Slices differ by at most one leaf. lm-eval applies `--limit`, shots and
seeds to every leaf alike whether it runs inside the whole group or alone, so the parts' leaf scores are the whole
group's, and the group's own scores are aggregated from them as lm-eval aggregates (`harness.groupscores`).
Profile task names are plain identifiers, so a part's name never collides with a task's.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_PART = re.compile(r"^(?P<task>.+)\[(?P<index>\d+)/(?P<count>\d+)\]$")


class TaskPart(NamedTuple):
    """Which slice of a group's leaves: the `position`-th (1-based) of `parts`."""

    task: str
    position: int
    parts: int


def part_name(task: str, index: int, count: int) -> str:
    """The name of part `index` of `count` of `task`, e.g. `mmlu[2/4]`.

    Raises:
        ValueError: `index` is not within 1..count.
    """
    if not 1 <= index <= count:
        raise ValueError(f"part {index} of {count} does not exist")
    return f"{task}[{index}/{count}]"


def parse_part(name: str) -> TaskPart | None:
    """The part a name stands for, or None for a whole task's name."""
    match = _PART.match(name)
    if match is None:
        return None
    index, count = int(match["index"]), int(match["count"])
    return TaskPart(match["task"], index, count) if 1 <= index <= count else None


def whole_name(name: str) -> str:
    """The task a (part) name belongs to: `mmlu[2/4]` -> `mmlu`, `mmlu` -> `mmlu`."""
    part = parse_part(name)
    return part.task if part is not None else name


def leaf_slice(n_leaves: int, index: int, count: int) -> tuple[int, int]:
    """Start and stop (0-based, stop exclusive) of part `index` of `count` in a list of `n_leaves` leaves.

    Raises:
        ValueError: The part would be empty (more parts than leaves) or does not exist.
    """
    if not 1 <= index <= count <= n_leaves:
        raise ValueError(f"part {index} of {count} of a group of {n_leaves} leaf tasks does not exist")
    return (index - 1) * n_leaves // count, index * n_leaves // count


def part_share(n_leaves: int, index: int, count: int) -> float:
    """The share of the group's leaves in part `index` of `count`: what its work is predicted from."""
    start, stop = leaf_slice(n_leaves, index, count)
    return (stop - start) / n_leaves


def file_stem(name: str) -> str:
    """A (part) name as a file name: `mmlu[2/4]` -> `mmlu[2of4]` (a slash would make a folder)."""
    return name.replace("/", "of")
