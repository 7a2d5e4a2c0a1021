"""`spectrabench plan --devices <what-if pool>`: a predicted schedule for hardware this machine does not have."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_what_if_plan_on_eight_h100s(tmp_path: Path, data_dir: Path) -> None:
    chart = tmp_path / "plan.png"
    result = run_cli("plan", "--profile", "standard", "--devices", "8xH100-80GB", "--gantt", str(chart), "--json")
    assert result.code == 0, result.stderr
    plan = json.loads(result.stdout)
    outlook = plan["outlook"]
    assert plan["mode"] == "optimized" and len(outlook["devices"]) == 8
    # Every (model, task) pair is scheduled exactly once, whole or as every part of it (a 32B model's kmmlu would
    # alone outlast a device's share), on a device of the pool.
    from spectrabench.taskparts import parse_part, whole_name

    scheduled = [(slot["model"], task) for slot in outlook["schedule"] for task in slot["tasks"]]
    assert len(scheduled) == len(set(scheduled)) and not outlook["unplaced"]
    assert len({(model, whole_name(task)) for model, task in scheduled}) == 130
    parts = {(model, parse_part(task)) for model, task in scheduled if parse_part(task)}
    assert parts, "the dominant group runs in parts"
    for model, part in parts:
        assert part is not None and {(model, part.task)} == {
            (m, whole_name(t)) for m, t in scheduled if m == model and whole_name(t) == part.task}
        assert sum(1 for m, t in scheduled if m == model and whole_name(t) == part.task) == part.parts
    assert {slot["device"] for slot in outlook["schedule"]} <= set(outlook["devices"])
    # The bound holds for the predicted schedule, and eight devices beat one at a time.
    assert outlook["lower_bound_s"] <= outlook["makespan_s"] * (1 + 1e-9)
    assert outlook["speedup"] == pytest.approx(outlook["sequential_s"] / outlook["makespan_s"])
    assert 1 < outlook["speedup"] <= 8
    # Nothing shares a GPU here (sharing pays only while the queue outlasts the shared jobs): one job per device.
    assert not outlook["shares_gpus"]
    for device in outlook["devices"]:
        slots = sorted((s["start_s"], s["end_s"]) for s in outlook["schedule"] if s["device"] == device)
        assert all(a_end <= b_start + 1e-6 for (_, a_end), (b_start, _) in itertools.pairwise(slots))
    assert chart.read_bytes().startswith(PNG_MAGIC) and chart.stat().st_size > 10_000
    assert not data_dir.exists(), "planning writes nothing to the store"


def test_mixed_pool_places_small_models_on_small_cards(data_dir: Path) -> None:
    result = run_cli("plan", "--profile", "standard", "--devices", "2xA100-80GB,4xL4-24GB", "--json")
    assert result.code == 0, result.stderr
    plan = json.loads(result.stdout)
    outlook = plan["outlook"]
    used = {slot["device"] for slot in outlook["schedule"]}
    assert len(used) == 6, "the L4s take the models that fit them"
    big = {s["device"] for s in outlook["schedule"] if s["model"] == "exaone-3.5-32b-instruct"}
    assert big <= {"sim:0", "sim:1"}, "a 32B model only fits the A100s"
    # Each job is predicted for the smallest card that holds it; an L4 is slower than an A100 (121 vs 312 TFLOP/s
    # dense bf16), and the schedule runs each card at its speed.
    assert plan["speeds"]["A100-80GB"] == 1.0 and 0.2 < plan["speeds"]["L4-24GB"] < 0.7
    kinds = {job["job_key"]: job["device"] for job in plan["jobs"]}
    runtime = {job["job_key"]: job["runtime_s"] for job in plan["jobs"]}
    on_l4 = [s for s in outlook["schedule"] if s["device"] not in ("sim:0", "sim:1")]
    assert on_l4 and all(kinds[s["job_key"]] == "L4-24GB" for s in on_l4), "only jobs sized for an L4 run there"
    # A cold job on an L4 lasts what it was predicted to take on an L4.
    first = {}
    for s in sorted(on_l4, key=lambda s: s["start_s"]):
        first.setdefault(s["device"], s)
    assert all(s["end_s"] - s["start_s"] == pytest.approx(runtime[s["job_key"]], rel=1e-6) for s in first.values())
    assert outlook["lower_bound_s"] <= outlook["makespan_s"] * (1 + 1e-9)
    # No card finishes long before the others: the slow ones are not left idle while the fast ones queue work.
    ends = {d: max(s["end_s"] for s in outlook["schedule"] if s["device"] == d) for d in outlook["devices"]}
    assert min(ends.values()) > 0.5 * outlook["makespan_s"]
    # Listed slow cards first, the pool plans the same: the fastest card is the reference and runs the sequential
    # baseline, so the speed-up is over the best single card whatever the order.
    again = run_cli("plan", "--profile", "standard", "--devices", "4xL4-24GB,2xA100-80GB", "--json")
    assert again.code == 0, again.stderr
    swapped = json.loads(again.stdout)
    assert swapped["outlook"]["devices"][:2] == ["sim:4", "sim:5"] and swapped["speeds"] == plan["speeds"]
    for key in ("makespan_s", "lower_bound_s", "sequential_s", "speedup"):
        assert swapped["outlook"][key] == pytest.approx(outlook[key], rel=1e-9), key


@pytest.mark.parametrize(("args", "needle"), [
    (["plan", "--devices", "8xH100"], "did you mean 'H100-80GB'"),
    (["plan", "--devices", "8xH100-80GB", "--gantt", "plan.svg"], "--gantt"),
    (["run", "--devices", "8xH100-80GB"], "what-if pool"),
])
def test_bad_what_if_inputs(args: list[str], needle: str, data_dir: Path) -> None:
    result = run_cli(*args[:1], "--profile", "standard", *args[1:])
    assert result.code == 2 and result.stderr.count("\n") == 1 and needle in result.stderr, result.stderr
    assert not data_dir.exists()


def test_a_model_no_card_holds_is_split_over_several_or_refused(data_dir: Path) -> None:
    result = run_cli("plan", "--profile", "standard", "--devices", "4xL4-24GB", "--json")
    assert result.code == 0, result.stderr
    plan = json.loads(result.stdout)
    split = [job for job in plan["jobs"] if job["model"] == "exaone-3.5-32b-instruct"]
    # 60 GiB of bf16 weights on 24 GiB cards: split layer by layer over 3 or 4 of them, said in the batch reason.
    assert split and all(3 <= job["gpus"] <= 4 and "split over" in job["batch_reason"] for job in split)
    assert all(job["gpus"] == 1 for job in plan["jobs"] if job["model"] == "qwen3-8b")
    outlook = plan["outlook"]
    assert not outlook["unplaced"]
    for job in split:  # one slot per card it holds, all at the same time, and nothing else on them meanwhile
        slots = [s for s in outlook["schedule"] if s["job_key"] == job["job_key"]]
        assert len({s["device"] for s in slots}) == job["gpus"] == len(slots)
        assert len({(s["start_s"], s["end_s"]) for s in slots}) == 1
        start, end = slots[0]["start_s"], slots[0]["end_s"]
        for other in outlook["schedule"]:
            if other["job_key"] != job["job_key"] and other["device"] in {s["device"] for s in slots}:
                assert other["end_s"] <= start + 1e-6 or other["start_s"] >= end - 1e-6

    refused = run_cli("plan", "--profile", "standard", "--devices", "2xL4-24GB")
    assert refused.code == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "exaone-3.5-32b-instruct" in refused.stderr and "add GPUs" in refused.stderr


def test_a_split_job_loads_its_model_with_lm_evals_parallelize(data_dir: Path) -> None:
    from spectrabench.execution.runplan import RunOptions, plan_run
    from spectrabench.profiles import load_profile
    from spectrabench.settings import Settings

    settings = Settings()
    plan = plan_run(load_profile("standard", settings), RunOptions(devices="4xL4-24GB"), settings)
    for planned in plan.jobs:
        split = planned.job.gpus > 1
        assert planned.spec.model.model_args.get("parallelize", False) is split, planned.job.model.name
    assert any(planned.job.gpus > 1 for planned in plan.jobs)


def test_a_grouped_job_keeps_each_tasks_own_batch(data_dir: Path) -> None:
    from spectrabench.execution.runplan import RunOptions, plan_run
    from spectrabench.profiles import load_profile
    from spectrabench.settings import Settings

    settings = Settings()
    plan = plan_run(load_profile("standard", settings), RunOptions(devices="1xH100-80GB"), settings)
    mixed = [p for p in plan.jobs if len({r.batch_size for r in p.job.tasks}) > 1]
    assert mixed, "some model's tasks fit different batches on one H100"
    for planned in mixed:
        refs, forecast = planned.job.tasks, plan.forecasts[planned.job.job_key]
        # The worker's cap is the largest; each task runs at its own, as its forecast assumed.
        assert planned.job.batch_size == planned.spec.batch_size == max(r.batch_size or 0 for r in refs)
        assert [r.batch_under(planned.spec.batch_size) for r in planned.spec.tasks] == [
            t.batch_size for t in forecast.tasks]
        assert min(t.batch_size for t in forecast.tasks) < planned.job.batch_size
        assert forecast.batch_reason.startswith("per task "), forecast.batch_reason


def test_a_gpu_memory_limit_sizes_batches_within_it_and_reaches_the_worker(data_dir: Path) -> None:
    from spectrabench.execution.runplan import RunOptions, plan_run
    from spectrabench.profiles import load_profile
    from spectrabench.settings import Settings

    whole = Settings()
    held = Settings(gpu_memory_limit_gb=40)
    options = RunOptions(devices="8xH100-80GB")
    free = plan_run(load_profile("standard", whole), options, whole)
    limited = plan_run(load_profile("standard", held), options, held)
    assert {p.spec.gpu_memory_limit_gb for p in free.jobs} == {None}
    assert {p.spec.gpu_memory_limit_gb for p in limited.jobs} == {40}
    # Per (model, task): a job's key names its batch, so the two plans' keys differ.
    batches = {(p.job.model.name, r.profile_task): r.batch_size or 0 for p in free.jobs for r in p.job.tasks}
    smaller = 0
    for planned in limited.jobs:
        if planned.job.gpus == 1:
            assert limited.forecasts[planned.job.job_key].peak_mem_gb <= 40 * (1 - held.memory_margin)
        for ref in planned.job.tasks:
            assert (ref.batch_size or 0) <= batches[planned.job.model.name, ref.profile_task]
            smaller += (ref.batch_size or 0) < batches[planned.job.model.name, ref.profile_task]
    assert smaller, "some task runs a smaller batch within 40 GB than on the whole card"


def test_small_models_share_a_gpu_in_the_optimized_plan_only(data_dir: Path) -> None:
    shared = run_cli("plan", "--profile", "smoke", "--devices", "1xH100-80GB", "--limit", "8")
    assert shared.code == 0, shared.stderr
    assert " & " in shared.stdout and "lower bound without GPU sharing" in shared.stdout
    outlook = json.loads(run_cli("plan", "--profile", "smoke", "--devices", "1xH100-80GB", "--limit", "8",
                                 "--json").stdout)["outlook"]
    slots = sorted((s["start_s"], s["end_s"]) for s in outlook["schedule"])
    assert outlook["shares_gpus"] and any(b < a_end for (_, a_end), (b, _) in itertools.pairwise(slots))
    # The traditional modes run one job per device.
    alone = run_cli("plan", "--profile", "smoke", "--devices", "1xH100-80GB", "--limit", "8", "--mode", "parallel")
    assert alone.code == 0 and " & " not in alone.stdout and "without GPU sharing" not in alone.stdout
