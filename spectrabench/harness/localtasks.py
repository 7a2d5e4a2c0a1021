"""A cheap index of local lm-eval task and group configs: names, data files, request types, document counts.

Building lm-eval's own `TaskManager` costs seconds; planning only needs a few facts per task, so this reads
the yaml files directly. It never imports lm-eval or `datasets`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from spectrabench.errors import UserError
from spectrabench.harness.taskdata import count_lines, resolve_data_files

_MAX_INCLUDE_DEPTH = 8


@dataclass(frozen=True)
class LocalTask:
    """What the planner needs to know about one local lm-eval task.

    Attributes:
        name: The yaml's `task:`.
        yaml_path: The config file.
        data_files: Split name to absolute path, from `dataset_kwargs.data_files` (relative to the yaml) and
            `dataset_kwargs.package_files` (inside an installed package); empty when the task declares none.
        output_type: lm-eval's request type: multiple_choice, generate_until, loglikelihood, ...
        unsafe_code: The task executes model-written code (lm-eval refuses it unless confirmed).
        test_split: The split lm-eval scores: `test_split`, else `validation_split`; None if neither is set.
    """

    name: str
    yaml_path: Path
    data_files: dict[str, Path] = field(default_factory=dict)
    output_type: str = "generate_until"
    unsafe_code: bool = False
    test_split: str | None = None


@dataclass(frozen=True)
class LocalGroup:
    """A local lm-eval group: a yaml with `group:` and a list of member names under `task:`.

    Attributes:
        name: The yaml's `group:`.
        yaml_path: The config file.
        members: Its tasks and subgroups by name, in the yaml's order (lm-eval's leaf order follows it).
    """

    name: str
    yaml_path: Path
    members: tuple[str, ...]


class _TolerantLoader(yaml.SafeLoader):
    """A safe loader that reads lm-eval's `!function module.name` tags as plain strings, importing nothing."""


def _any_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)  # type: ignore[arg-type]


_TolerantLoader.add_multi_constructor("!", _any_tag)


def _read_config(path: Path, depth: int = 0) -> dict[str, Any] | None:
    """Read a task yaml, merging the files it `include`s (as lm-eval does: the including file wins)."""
    try:
        with path.open(encoding="utf-8") as handle:
            config = yaml.load(handle, Loader=_TolerantLoader)  # a SafeLoader subclass: no code runs
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        # A broken or unrelated yaml in a task folder must not hide the valid tasks next to it.
        return None
    if not isinstance(config, dict):
        return None
    include = config.pop("include", None)
    if include is None or depth >= _MAX_INCLUDE_DEPTH:
        return config
    merged: dict[str, Any] = {}
    for name in include if isinstance(include, list) else [include]:
        base = _read_config(path.parent / str(name), depth + 1)  # an absolute name replaces the folder
        if base is not None:
            base.pop("task_list", None)
            merged |= base
    return merged | config


def _split_files(declared: Any) -> dict[str, str]:
    """Normalise `data_files` as datasets accepts it: a single file means the `train` split."""
    if isinstance(declared, str):
        return {"train": declared}
    if isinstance(declared, Mapping):
        files: dict[str, str] = {}
        for split, value in declared.items():
            if isinstance(value, str):
                files[str(split)] = value
            elif isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
                files[str(split)] = value[0]
        return files
    return {}


def _task_from_config(path: Path, config: Mapping[str, Any]) -> LocalTask | None:
    name = config.get("task")
    if not isinstance(name, str):
        return None  # a group config (task: [list]) or a fragment meant to be included
    kwargs = config.get("dataset_kwargs") or {}
    if not isinstance(kwargs, Mapping):
        kwargs = {}
    package_files = kwargs.get("package_files")
    data_files = resolve_data_files(
        path.parent,
        _split_files(kwargs.get("data_files")),
        _split_files(package_files) if isinstance(package_files, Mapping) else None,
    )
    split = config.get("test_split") or config.get("validation_split")
    return LocalTask(
        name=name,
        yaml_path=path.resolve(),
        data_files=data_files,
        output_type=str(config.get("output_type") or "generate_until"),
        unsafe_code=bool(config.get("unsafe_code", False)),
        test_split=str(split) if split else None,
    )


def _group_from_config(path: Path, config: Mapping[str, Any]) -> LocalGroup | None:
    name, members = config.get("group"), config.get("task")
    # Only groups of named members: an inline task config in the list is lm-eval's business alone.
    if not isinstance(name, str) or not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        return None
    return LocalGroup(name=name, yaml_path=path.resolve(), members=tuple(members))


def index_local_tasks(paths: Sequence[Path]) -> dict[str, LocalTask]:
    """Find every task config under the given folders (or files).

    Args:
        paths: Folders scanned recursively for `*.yaml`, or yaml files.

    Returns:
        Task name to `LocalTask`. Yaml files that are not task configs are ignored.

    Raises:
        UserError: Two different files define the same task name (lm-eval would pick one silently).
    """
    return index_local(paths)[0]


def index_local(paths: Sequence[Path]) -> tuple[dict[str, LocalTask], dict[str, LocalGroup]]:
    """Find every task and every group of named members under the given folders (or files).

    Raises:
        UserError: Two different files define the same task or group name (lm-eval would pick one silently).
    """
    tasks: dict[str, LocalTask] = {}
    groups: dict[str, LocalGroup] = {}
    for root in paths:
        files = [root] if root.is_file() else sorted(root.rglob("*.yaml")) if root.is_dir() else []
        for path in files:
            config = _read_config(path)
            if config is None:
                continue
            found: LocalTask | LocalGroup | None = _task_from_config(path, config) or _group_from_config(path, config)
            if found is None:
                continue
            index: dict[str, Any] = tasks if isinstance(found, LocalTask) else groups
            other = index.get(found.name)
            if other is not None and other.yaml_path != found.yaml_path:
                raise UserError(
                    f"{'task' if index is tasks else 'group'} '{found.name}' is defined twice: {other.yaml_path} "
                    f"and {found.yaml_path}",
                    hint="rename one of them or remove one of the folders from task_paths",
                )
            index[found.name] = found
    return tasks, groups


def group_leaves(name: str, tasks: Mapping[str, LocalTask], groups: Mapping[str, LocalGroup],
                 depth: int = 0) -> list[LocalTask] | None:
    """The leaf tasks of local group `name`, in lm-eval's order, or None when a member is not local (a built-in
    task or a tag) or the nesting loops."""
    group = groups.get(name)
    if group is None or depth >= _MAX_INCLUDE_DEPTH:
        return None
    leaves: list[LocalTask] = []
    for member in group.members:
        if member in tasks:
            leaves.append(tasks[member])
            continue
        nested = group_leaves(member, tasks, groups, depth + 1)
        if nested is None:
            return None
        leaves.extend(nested)
    return leaves


def missing_data_files(task: LocalTask) -> list[Path]:
    """The declared data files of `task` that do not exist (or whose package is not installed)."""
    return [path for path in task.data_files.values() if not path.is_file()]


def count_documents(task: LocalTask) -> int | None:
    """Number of documents lm-eval will score for `task`, or None when it cannot be known cheaply.

    Counts the lines of the scored split's jsonl (or jsonl.gz) file, without parsing them.
    """
    if task.test_split is None:
        return None
    path = task.data_files.get(task.test_split)
    if path is None or not path.is_file():
        return None
    return count_lines(path)
