"""Running an lm-eval group in parts (`taskparts`), and scoring the group from its parts as lm-eval does.

A worker running part i of k builds the whole group through lm-eval's `TaskManager` (so every leaf gets exactly the
configuration it has inside the group), evaluates only its slice of the leaves, and writes the group's structure
next to the results: each group and subgroup with its leaves and its `aggregate_metric_list`. Once every part has
run, the driver aggregates each group's metrics from the leaves' with lm-eval's own formulas, in lm-eval's leaf
order, as `lm_eval.api.group.Group.aggregate` does for a whole run: a size-weighted (or plain) mean of the leaves'
values, the pooled (or unweighted-mean) standard error, filters discovered from the leaves where the group lists
none. The leaves' scores are the same numbers either way, so the group's are too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from spectrabench.harness.results import ScoreRow
from spectrabench.taskparts import leaf_slice

GROUPS_KEY = "spectrabench_groups"  # where a part's results file holds its group's structure


class GroupSpec(NamedTuple):
    """One lm-eval group as its aggregation needs it."""

    leaves: tuple[str, ...]
    # (metric, filters or None to discover them, weight by size) per entry of its aggregate_metric_list
    aggregate: tuple[tuple[str, tuple[str, ...] | None, bool], ...]


class PartError(Exception):
    """A part cannot run: the task is no group, the part is empty, or the group aggregates in a way we cannot."""


def part_of_group(task_manager: Any, group_name: str, index: int, count: int) -> tuple[list[Any], dict[str, Any]]:
    """The lm-eval `Task` objects of part `index` of `count` of `group_name`, and the group's structure to write
    beside the part's results (`GROUPS_KEY`).

    Raises:
        PartError: `group_name` is not an lm-eval group, has fewer leaves than parts, or aggregates other than by
            mean.
    """
    return GroupBuilds(task_manager).part(group_name, index, count)


class GroupBuilds:
    """The groups one worker has built, so that its parts of one group build it once.

    Building a group loads every leaf's dataset and config (kmmlu: 45 subjects, tens of seconds), and a part needs
    the whole group for its leaves' configuration. A worker running several parts of a group takes each part's
    slice from the one build: the slices are disjoint, so every leaf's `Task` object still serves exactly one
    `simple_evaluate` call, as when each part built the group anew.
    """

    def __init__(self, task_manager: Any) -> None:
        self._task_manager = task_manager
        self._built: dict[str, tuple[list[Any], dict[str, Any]]] = {}

    def part(self, group_name: str, index: int, count: int) -> tuple[list[Any], dict[str, Any]]:
        """What `part_of_group` returns, building `group_name` only the first time a part of it is asked for."""
        if group_name not in self._built:
            self._built[group_name] = _build_group(self._task_manager, group_name)
        leaves, structure = self._built[group_name]
        try:
            start, stop = leaf_slice(len(leaves), index, count)
        except ValueError as exc:
            raise PartError(f"'{group_name}': {exc}") from None
        return leaves[start:stop], structure


def _build_group(task_manager: Any, group_name: str) -> tuple[list[Any], dict[str, Any]]:
    """Every leaf `Task` of `group_name`, in lm-eval's order, and the group's structure (see `part_of_group`)."""
    loaded = task_manager.load([group_name])
    group = loaded["groups"].get(group_name)
    if group is None:
        raise PartError(f"'{group_name}' is not an lm-eval group, so it cannot run in parts")
    leaves = group.get_all_tasks()
    structure: dict[str, Any] = {}
    for member in [group, *group.get_all_groups()]:
        aggregate = []
        for config in member.aggregate_metric_list or []:
            if config.aggregation != "mean":
                raise PartError(f"group '{member.name}' aggregates '{config.metric}' by {config.aggregation!r}; "
                                "only means can be aggregated from parts")
            aggregate.append({"metric": config.metric, "filter_list": config.filter_list,
                              "weight_by_size": bool(config.weight_by_size)})
        structure[member.name] = {"leaves": [t.task_name for t in member.get_all_tasks()], "aggregate": aggregate}
    return list(leaves), structure


def parse_structure(raw: Any) -> dict[str, GroupSpec]:
    """The group structure a part's results file holds (`GROUPS_KEY`), validated.

    Raises:
        ValueError: It is missing or not in the layout `part_of_group` writes.
    """
    if not isinstance(raw, dict) or not raw:
        raise ValueError("no group structure in the part's results")
    groups = {}
    for name, entry in raw.items():
        leaves, aggregate = entry.get("leaves"), entry.get("aggregate")
        if not isinstance(leaves, list) or not isinstance(aggregate, list):
            raise ValueError(f"group '{name}' has no leaves or aggregate list")
        groups[str(name)] = GroupSpec(tuple(map(str, leaves)), tuple(
            (str(a["metric"]), tuple(a["filter_list"]) if a.get("filter_list") is not None else None,
             bool(a.get("weight_by_size", True))) for a in aggregate))
    return groups


def aggregate_groups(groups: Mapping[str, GroupSpec], leaf_rows: Sequence[ScoreRow]) -> list[ScoreRow]:
    """Every group's aggregate scores from its leaves' rows (all parts' together), as lm-eval computes them.

    Args:
        groups: The group and its subgroups (`parse_structure`).
        leaf_rows: The leaves' score rows, as `harness.results.parse_scores` read them from the parts' results.

    Returns:
        One row per group, metric and filter that lm-eval would report, its `n_samples` the leaves' documents.
    """
    from lm_eval.api.metrics import aggregate_subtask_metrics, pooled_sample_stderr, unweighted_mean_stderr

    by_leaf: dict[str, dict[tuple[str, str], ScoreRow]] = {}
    for row in leaf_rows:
        by_leaf.setdefault(row.subtask, {})[row.metric, row.filter] = row
    rows: list[ScoreRow] = []
    for name, spec in groups.items():
        for metric, filter_list, weight_by_size in spec.aggregate:
            filters = filter_list if filter_list is not None else sorted(
                {f for leaf in spec.leaves for (m, f) in by_leaf.get(leaf, {}) if m == metric})
            for filter_name in filters:
                found = [by_leaf[leaf][metric, filter_name] for leaf in spec.leaves
                         if (metric, filter_name) in by_leaf.get(leaf, {})]
                if not found:
                    continue
                values = [r.value for r in found]
                sizes = [r.n_samples or 0 for r in found]
                value = float(aggregate_subtask_metrics(values, sizes, weight_by_size))
                stderr = None
                if all(r.stderr is not None for r in found):
                    stderrs = [float(r.stderr) for r in found if r.stderr is not None]
                    try:
                        stderr = float(pooled_sample_stderr(stderrs, sizes) if weight_by_size
                                       else unweighted_mean_stderr(stderrs))
                    except ZeroDivisionError:  # one document per leaf leaves no degrees of freedom
                        stderr = None
                rows.append(ScoreRow(name, metric, filter_name, value, stderr, sum(sizes)))
    return rows
