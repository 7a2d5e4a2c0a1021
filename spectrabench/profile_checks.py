"""Checks of a profile against the world: known tasks, task data on disk, builtin models, local model paths."""

from __future__ import annotations

from spectrabench.catalog import known_task_names
from spectrabench.errors import UserError, did_you_mean
from spectrabench.harness.localtasks import group_leaves, index_local, missing_data_files
from spectrabench.harness.models import builtin_names
from spectrabench.profiles import Profile, local_model_path
from spectrabench.settings import Settings


def check_profile(profile: Profile, settings: Settings) -> None:
    """Reject a profile that cannot run as written, before anything starts.

    Raises:
        UserError: naming the first problem found and how to fix it.
    """
    where = f"profile '{profile.source_path or profile.name}'"
    for folder in profile.task_paths:
        if not folder.is_dir():
            raise UserError(f"{where}: task_paths entry '{folder}' is not a folder",
                            hint="task_paths are folders of lm-eval task YAML files, relative to the profile")
    local, groups = index_local(profile.task_paths)
    known = set(known_task_names())
    for task in profile.tasks:
        name = task.harness_name
        # A local task, or every leaf of a local group, must have its data and leave code alone unless allowed.
        leaves = [local[name]] if name in local else group_leaves(name, local, groups) or []
        for leaf in leaves:
            missing = missing_data_files(leaf)
            if missing:
                raise UserError(f"{where}: task '{task.name}' is missing its data file {missing[0]}",
                                hint=f"restore the file or fix dataset_kwargs.data_files in {leaf.yaml_path}")
            if leaf.unsafe_code and not task.allow_code_execution:
                raise UserError(f"{where}: task '{task.name}' executes model-written code",
                                hint="set allow_code_execution: true on the task to allow it (sandboxed)")
        if leaves:
            continue
        if task.lm_eval_task is None and name in groups:
            foreign = next((m for m in groups[name].members if m not in local and not group_leaves(m, local, groups)),
                           "nothing")
            raise UserError(f"{where}: local group '{task.name}' lists '{foreign}', which is not a local task or group",
                            hint=f"fix the member in {groups[name].yaml_path}, or set lm_eval_task: {name} on the task "
                                 "to run it as lm-eval resolves it")
        if task.lm_eval_task is None and name not in known:
            raise UserError(f"{where}: unknown task '{task.name}'",
                            hint=did_you_mean(task.name, known | set(local) | set(groups), "tasks")
                            + "; to use any other lm-eval task, set lm_eval_task explicitly")
    builtins = builtin_names()
    for model in profile.models:
        if model.builtin is not None and model.builtin not in builtins:
            raise UserError(f"{where}: model '{model.name}' names unknown builtin '{model.builtin}'",
                            hint=did_you_mean(model.builtin, builtins, "builtin models"))
        path = local_model_path(model, profile.source_path)
        if path is not None and not path.is_dir():
            raise UserError(f"{where}: model '{model.name}' points at missing local folder '{model.pretrained}'",
                            hint="fix the path (relative paths start at the profile's folder) or use a hub id")
