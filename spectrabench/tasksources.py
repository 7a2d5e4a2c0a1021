"""Where each profile task comes from (a local task folder or lm-eval's built-in tasks) and its content version."""

from __future__ import annotations

import hashlib
from importlib import metadata
from typing import TYPE_CHECKING, NamedTuple

from spectrabench.harness.localtasks import LocalTask, group_leaves, index_local
from spectrabench.profiles import Profile

if TYPE_CHECKING:
    from spectrabench.prediction.features import TaskShape


class TaskSources(NamedTuple):
    """The resolved origin of every task of a profile."""

    local: dict[str, LocalTask]       # by profile task name, for tasks found in the profile's task_paths
    versions: dict[str, str]          # by profile task name: what a result of this task depends on
    include_paths: list[str]          # folders to hand lm-eval's TaskManager
    all_local: bool                   # every task is local: skip indexing lm-eval's 14k built-in tasks
    # by profile task name, for local groups whose every leaf is local: the leaves in lm-eval's order
    groups: dict[str, list[LocalTask]]


def lm_eval_version() -> str:
    """The installed lm-eval version, read without importing lm-eval."""
    try:
        return metadata.version("lm_eval")
    except metadata.PackageNotFoundError:
        return "missing"


def _content_hash(task: LocalTask) -> str:
    digest = hashlib.sha256()
    folder = task.yaml_path.parent
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    for path in sorted(task.data_files.values()):
        if not path.is_relative_to(folder) and path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def resolve_task_sources(profile: Profile) -> TaskSources:
    """Find each task of `profile` locally or among lm-eval's tasks, and version it.

    A local task's version hashes its folder (config, data, code), so editing the data invalidates its results; a
    local group's hashes its own yaml and its leaves' versions; a built-in task's version is the lm-eval release
    that ships it.
    """
    index, group_index = index_local(profile.task_paths)
    local = {t.name: index[t.harness_name] for t in profile.tasks if t.harness_name in index}
    groups = {t.name: leaves for t in profile.tasks if t.name not in local
              and (leaves := group_leaves(t.harness_name, index, group_index))}
    builtin_version = f"lm-eval-{lm_eval_version()}"
    versions = {}
    for task in profile.tasks:
        if task.name in local:
            versions[task.name] = _content_hash(local[task.name])
        elif task.name in groups:
            digest = hashlib.sha256(group_index[task.harness_name].yaml_path.read_bytes())
            for leaf in groups[task.name]:
                digest.update(_content_hash(leaf).encode())
            versions[task.name] = digest.hexdigest()[:16]
        else:
            versions[task.name] = builtin_version
    return TaskSources(local=local, versions=versions, include_paths=[str(p) for p in profile.task_paths],
                       all_local=len(local) + len(groups) == len(profile.tasks), groups=groups)


def task_shapes(profile: Profile, sources: TaskSources) -> dict[str, TaskShape]:
    """How much work each task of `profile` is (documents, request type, prompt and generation lengths).

    Local tasks are measured from their files; built-in tasks come from the catalog. A task outside both (an
    explicit `lm_eval_task` we know nothing about) gets a neutral guess, which the learned stage corrects.
    """
    from spectrabench.catalog import task_facts
    from spectrabench.prediction.features import TaskShape, shape_from_facts, shape_from_local, shape_of_group

    shapes: dict[str, TaskShape] = {}
    for task in profile.tasks:
        if task.name in sources.local:
            shapes[task.name] = shape_from_local(sources.local[task.name], name=task.name)
        elif task.name in sources.groups:
            shapes[task.name] = shape_of_group([shape_from_local(leaf) for leaf in sources.groups[task.name]],
                                               name=task.name)
        elif (facts := task_facts(task.harness_name)) is not None:
            shapes[task.name] = shape_from_facts(facts, name=task.name)
        else:
            shapes[task.name] = TaskShape("loglikelihood", 1000, 4.0, 0, 256, task.name)
    return shapes
