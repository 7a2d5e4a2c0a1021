"""A local lm-eval group for tests: `sb_pair`, the smoke profile's sb_facts and sb_ko, scored together."""

from __future__ import annotations

from pathlib import Path

GROUP = "sb_pair"
LEAVES = ("sb_facts", "sb_ko")


def write_pair_group(folder: Path) -> Path:
    """Write the group's yaml under `folder` (a task path beside profiles/tasks) and return the folder."""
    (folder / GROUP).mkdir(parents=True, exist_ok=True)
    (folder / GROUP / f"{GROUP}.yaml").write_text(
        f"group: {GROUP}\n"
        "task:\n" + "".join(f"  - {leaf}\n" for leaf in LEAVES)
        + "aggregate_metric_list:\n  - metric: acc\n    weight_by_size: true\n"
        "metadata:\n  version: 1\n", encoding="utf-8")
    return folder
