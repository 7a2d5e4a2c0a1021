"""Where each profile task comes from (a local task folder or lm-eval's built-in tasks) and its content version."""

from __future__ import annotations

import hashlib
from importlib import metadata
from typing import TYPE_CHECKING, NamedTuple

from spectrabench.harness.localtasks import LocalTask, index_local_tasks
from spectrabench.profiles import Profile

if TYPE_CHECKING:
    from spectrabench.prediction.features import TaskShape


class TaskSources(NamedTuple):
    """The resolved origin of every task of a profile."""

    local: dict[str, LocalTask]       # by profile task name, for tasks found in the profile's task_paths
    versions: dict[str, str]          # by profile task name: what a result of this task depends on
    include_paths: list[str]          # folders to hand lm-eval's TaskManager
    all_local: bool                   # every task is local: skip indexing lm-eval's 14k built-in tasks


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

    A local task's version hashes its folder (config, data, code), so editing the data invalidates its results;
    a built-in task's version is the lm-eval release that ships it.
    """
    index = index_local_tasks(profile.task_paths)
    local = {t.name: index[t.harness_name] for t in profile.tasks if t.harness_name in index}
    builtin_version = f"lm-eval-{lm_eval_version()}"
    versions = {t.name: _content_hash(local[t.name]) if t.name in local else builtin_version for t in profile.tasks}
    return TaskSources(local=local, versions=versions, include_paths=[str(p) for p in profile.task_paths],
                       all_local=len(local) == len(profile.tasks))


def task_shapes(profile: Profile, sources: TaskSources) -> dict[str, TaskShape]:
    """How much work each task of `profile` is (documents, request type, prompt and generation lengths).

    Local tasks are measured from their files; built-in tasks come from the catalog. A task outside both (an
    explicit `lm_eval_task` we know nothing about) gets a neutral guess, which the learned stage corrects.
    """
    from spectrabench.catalog import task_facts
    from spectrabench.prediction.features import TaskShape, shape_from_facts, shape_from_local

    shapes: dict[str, TaskShape] = {}
    for task in profile.tasks:
        if task.name in sources.local:
            shapes[task.name] = shape_from_local(sources.local[task.name], name=task.name)
        elif (facts := task_facts(task.harness_name)) is not None:
            shapes[task.name] = shape_from_facts(facts, name=task.name)
        else:
            shapes[task.name] = TaskShape("loglikelihood", 1000, 4.0, 0, 256, task.name)
    return shapes
