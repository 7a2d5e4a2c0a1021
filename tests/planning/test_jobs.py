"""Job keys: what defines a measurement is in the key, what must not change a score is not."""

from __future__ import annotations

from spectrabench.planning.jobs import build_jobs, measurement_key
from spectrabench.profiles import ModelSpec, Profile, TaskSpec

MODEL = ModelSpec(name="m", pretrained="org/m", params_b=1.0)
TASK = TaskSpec(name="arc_easy", shots=5)


def _profile() -> Profile:
    return Profile(name="p", models=[MODEL, MODEL.model_copy(update={"name": "n", "pretrained": "org/n"})],
                   tasks=[TASK, TaskSpec(name="piqa", shots=5)])


def test_key_changes_with_what_defines_the_measurement() -> None:
    base = measurement_key(MODEL, TASK, 10, "v1", "0.4.13")
    assert measurement_key(MODEL, TASK, 10, "v1", "0.4.13") == base
    assert measurement_key(MODEL, TASK, 20, "v1", "0.4.13") != base
    assert measurement_key(MODEL, TASK, None, "v1", "0.4.13") != base
    assert measurement_key(MODEL, TASK.model_copy(update={"shots": 0}), 10, "v1", "0.4.13") != base
    assert measurement_key(MODEL, TASK, 10, "v2", "0.4.13") != base
    assert measurement_key(MODEL, TASK, 10, "v1", "0.4.14") != base
    assert measurement_key(MODEL, TASK, 10, "v1", "0.4.13", seed=1) != base
    assert measurement_key(MODEL.model_copy(update={"revision": "abc"}), TASK, 10, "v1", "0.4.13") != base
    assert measurement_key(MODEL.model_copy(update={"model_args": {"max_length": 2048}}), TASK, 10, "v1",
                           "0.4.13") != base


def test_key_ignores_the_display_name() -> None:
    renamed = MODEL.model_copy(update={"name": "other"})
    assert measurement_key(renamed, TASK, 10, "v1", "0.4.13") == measurement_key(MODEL, TASK, 10, "v1", "0.4.13")


def test_baseline_has_one_job_per_pair_in_profile_order() -> None:
    versions = {"arc_easy": "a", "piqa": "b"}
    jobs = build_jobs(_profile(), limit=5, batch_size=4, task_versions=versions, lm_eval_version="x")
    assert [(j.model.name, j.task_names) for j in jobs] == [
        ("m", ["arc_easy"]), ("m", ["piqa"]), ("n", ["arc_easy"]), ("n", ["piqa"])]
    assert len({j.job_key for j in jobs}) == 4


def test_per_model_groups_share_task_keys_with_baseline() -> None:
    versions = {"arc_easy": "a", "piqa": "b"}
    single = build_jobs(_profile(), limit=5, batch_size=4, task_versions=versions, lm_eval_version="x")
    grouped = build_jobs(_profile(), limit=5, batch_size=4, task_versions=versions, lm_eval_version="x",
                         group_by_model=True)
    assert len(grouped) == 2
    assert {t.task_key for j in single for t in j.tasks} == {t.task_key for j in grouped for t in j.tasks}
