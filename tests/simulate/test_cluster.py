"""The discrete-event cluster: lower bounds hold, OOMs happen and recover, runs are seeded, and it is fast."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Sequence

import pytest

from spectrabench.planning.dispatch import DynamicLPT
from spectrabench.planning.schedule import SlotState, WorkItem
from spectrabench.planning.speeds import pool_rates
from spectrabench.simulate.attempts import Segment
from spectrabench.simulate.cluster import SimResult, simulate
from spectrabench.simulate.policies import FifoPolicy, LongestFirstPolicy
from spectrabench.simulate.specs import parse_pool
from spectrabench.simulate.truth import SimJob, SimTask, TruthConfig, true_cost, true_vocab
from spectrabench.simulate.workload import SimWorkload, build_workload, group_by_model
from tests.simulate import bundled_profile

EXTENDED = bundled_profile("extended")
POLICIES = (FifoPolicy, lambda: FifoPolicy(colocate=False), LongestFirstPolicy,
            lambda: LongestFirstPolicy(colocate=False))


def _pick(profile_models: Sequence[str], tasks: Sequence[str], pool: str, **options: object) -> SimWorkload:
    profile = EXTENDED.model_copy(update={
        "models": [m for m in EXTENDED.models if m.name in profile_models],
        "tasks": [t for t in EXTENDED.tasks if t.name in tasks]})
    return build_workload(profile, parse_pool(pool)[0], **options)  # type: ignore[arg-type]


def _segments(result: SimResult) -> list[Segment]:
    return [s for timeline in result.per_device_timeline.values() for s in timeline]


def test_the_lower_bound_never_exceeds_the_makespan() -> None:
    rng = random.Random(42)
    pools = ["1xH100-80GB", "2xA100-80GB", "4xL4-24GB", "2xA100-40GB,2xL4-24GB", "3xH200-141GB", "8xH100-80GB",
             "1xA100-80GB,3xL4-24GB", "2xH100-80GB,2xA100-40GB"]
    small_models = [m.name for m in EXTENDED.models if m.params_b <= 12]
    for case in range(40):
        models = rng.sample(small_models, rng.randint(1, 5))
        tasks = rng.sample([t.name for t in EXTENDED.tasks], rng.randint(1, 6))
        pool = rng.choice(pools)
        workload = _pick(models, tasks, pool, seed=case, limit=rng.choice([50, 300, None]),
                         batch_size=rng.choice([1, 4, 16, 64]), runtime_noise=rng.uniform(0, 0.6),
                         memory_noise=rng.uniform(0, 0.3), memory_scale=rng.uniform(0.5, 1.2))
        if rng.random() < 0.3:
            workload = group_by_model(workload)
        truth = TruthConfig(noise=rng.uniform(0, 0.4), outlier_rate=0.1)
        for policy in POLICIES:
            result = simulate(workload.items, workload.jobs, parse_pool(pool), policy(), seed=case, truth=truth,
                              max_per_device=rng.randint(1, 4))
            assert result.completed + len(result.failed) + len(result.unplaced) == len(workload.items)
            assert result.lower_bound_s <= result.makespan_s * (1 + 1e-9), (case, result.policy)
            assert (result.lower_bound_s > 0) == (result.completed > 0)
            assert 0 < result.utilisation <= 1 + 1e-9


def test_on_a_mixed_pool_the_bound_spreads_work_only_over_the_cards_that_hold_it() -> None:
    # A 32B and a 21B model fit only the A100: the L4s can take none of their work, so the bound cannot divide it by
    # four devices (nor stop at the longer of the two).
    devices = parse_pool("1xA100-80GB,3xL4-24GB")
    profile = EXTENDED.model_copy(update={
        "models": [m for m in EXTENDED.models if m.name in ("exaone-3.5-32b-instruct", "luxia-21.4b-v1.2")],
        "tasks": [t for t in EXTENDED.tasks if t.name in ("arc_easy", "piqa", "hellaswag")]})
    workload = group_by_model(build_workload(profile, devices[0], limit=200, fit_margin=0.1, pool=devices))
    policy = DynamicLPT(n_devices=4, pool=pool_rates(devices, workload.speeds))
    result = simulate(workload.items, workload.jobs, devices, policy, seed=0, speeds=workload.speeds)
    assert result.completed == 2 and {s.key for s in result.per_device_timeline["sim:0"]} == set(workload.jobs)
    assert 0.8 * result.makespan_s < result.lower_bound_s <= result.makespan_s


def test_one_exclusive_device_runs_back_to_back() -> None:
    workload = _pick(["qwen3-8b", "gemma-3-4b-it"], ["arc_easy", "piqa", "gsm8k"], "H100-80GB", limit=200)
    result = simulate(workload.items, workload.jobs, parse_pool("H100-80GB"), FifoPolicy(colocate=False), seed=1)
    segments = _segments(result)
    assert [s.key for s in segments] == [i.key for i in workload.items]  # FIFO on one device: queue order
    assert all(a.end_s == pytest.approx(b.start_s) for a, b in itertools.pairwise(segments))
    assert result.makespan_s == pytest.approx(segments[-1].end_s)
    assert result.utilisation == pytest.approx(1.0)
    # Back-to-back tasks of a model find its weights warm: one cold load per model.
    assert (result.model_loads, result.warm_loads) == (2, 4)
    assert [s.warm for s in segments] == [False, True, True, False, True, True]


def test_sharing_a_gpu_helps_small_models() -> None:
    workload = _pick(["hyperclovax-seed-0.5b-instruct", "hyperclovax-seed-1.5b-instruct"], ["arc_easy", "piqa"],
                     "H100-80GB", limit=500)
    pool = parse_pool("H100-80GB")
    shared = simulate(workload.items, workload.jobs, pool, FifoPolicy(), seed=2, truth=TruthConfig(noise=0.0))
    alone = simulate(workload.items, workload.jobs, pool, FifoPolicy(colocate=False), seed=2,
                     truth=TruthConfig(noise=0.0))
    assert shared.makespan_s < alone.makespan_s
    starts = [s.start_s for s in _segments(shared)]
    assert starts.count(0.0) == 4  # all four fit next to each other and start at once


def test_underestimated_memory_causes_ooms_that_retry_at_half_batch() -> None:
    workload = _pick(["llama-3.1-8b"], ["mmlu"], "L4-24GB", limit=64, batch_size=64, memory_scale=0.3)
    result = simulate(workload.items, workload.jobs, parse_pool("L4-24GB"), FifoPolicy(), seed=0)
    segments = _segments(result)
    assert result.oom_count >= 1 and result.completed == 1 and result.failed == ()
    assert [s.outcome for s in segments] == ["oom"] * result.oom_count + ["ok"]
    assert [s.batch_size for s in segments] == [64 // 2**i for i in range(len(segments))]
    assert [s.attempt for s in segments] == list(range(1, len(segments) + 1))
    # Each OOM wastes its load and part of its runtime; the retries' loads are warm.
    assert result.model_loads == 1 and result.warm_loads == result.oom_count


def test_packing_on_low_memory_predictions_ooms_more_than_honest_ones() -> None:
    models = ["llama-3.1-8b", "qwen3-8b", "mistral-7b-v0.3", "gemma-3-4b-it"]
    tasks = ["mmlu", "arc_challenge", "hellaswag", "gsm8k"]
    pool = parse_pool("2xA100-80GB")
    counts = []
    for scale in (0.4, 1.3):
        workload = _pick(models, tasks, "A100-80GB", limit=100, batch_size=16, memory_scale=scale, seed=1)
        result = simulate(workload.items, workload.jobs, pool, FifoPolicy(), seed=1)
        assert result.completed == len(workload.items) and result.failed == ()
        counts.append(result.oom_count)
    assert counts[0] > counts[1]


def test_a_model_that_never_fits_fails_instead_of_looping() -> None:
    workload = _pick(["exaone-3.5-32b-instruct", "qwen3-8b"], ["arc_easy"], "L4-24GB", limit=20, batch_size=2)
    result = simulate(workload.items, workload.jobs, parse_pool("L4-24GB"), FifoPolicy(), seed=0)
    assert result.failed == ("exaone-3.5-32b-instruct/arc_easy",) and result.completed == 1
    exaone = [s for s in _segments(result) if s.model.startswith("exaone")]
    assert [s.batch_size for s in exaone] == [2, 1] and {s.outcome for s in exaone} == {"oom"}
    assert result.lower_bound_s <= result.makespan_s


def test_the_same_seed_gives_the_same_run_and_luck_is_the_same_under_any_policy() -> None:
    workload = _pick(["llama-3.1-8b", "qwen3-8b", "gemma-3-4b-it", "kanana-1.5-2.1b-instruct"],
                     ["mmlu", "gsm8k", "arc_easy"], "H100-80GB", limit=100, seed=4)
    pool = parse_pool("2xH100-80GB")
    first = simulate(workload.items, workload.jobs, pool, FifoPolicy(), seed=9)
    assert first == simulate(workload.items, workload.jobs, pool, FifoPolicy(), seed=9)
    assert first.makespan_s != simulate(workload.items, workload.jobs, pool, FifoPolicy(), seed=10).makespan_s
    # One task per model, so every load is cold: each item then costs the same under any order.
    single = _pick(["llama-3.1-8b", "qwen3-8b", "gemma-3-4b-it", "kanana-1.5-2.1b-instruct"], ["gsm8k"],
                   "H100-80GB", limit=100)
    one = parse_pool("H100-80GB")
    durations = []
    for policy in (FifoPolicy(colocate=False), LongestFirstPolicy(colocate=False)):
        result = simulate(single.items, single.jobs, one, policy, seed=9)
        durations.append({s.key: s.end_s - s.start_s for s in _segments(result)})
    assert durations[0] == pytest.approx(durations[1])


class _Recorder(FifoPolicy):
    def __init__(self) -> None:
        super().__init__(colocate=False)
        self.seen: list[tuple[str, float]] = []
        self.slots: list[SlotState] = []

    def pick(self, queue: Sequence[WorkItem], slot: SlotState, now: float) -> WorkItem | None:
        self.slots.append(slot)
        return super().pick(queue, slot, now)

    def observe(self, item: WorkItem, actual_runtime_s: float) -> None:
        self.seen.append((item.key, actual_runtime_s))


def test_the_policy_sees_slots_and_learns_true_runtimes() -> None:
    workload = _pick(["qwen3-8b"], ["arc_easy", "gsm8k"], "H100-80GB", limit=100)
    policy = _Recorder()
    result = simulate(workload.items, workload.jobs, parse_pool("H100-80GB"), policy, seed=0)
    assert [key for key, _ in policy.seen] == [i.key for i in workload.items]
    for (key, runtime), segment in zip(policy.seen, _segments(result), strict=True):
        assert segment.key == key and 0 < runtime < segment.end_s - segment.start_s
    first = policy.slots[0]
    assert (first.device_id, first.total_mem_gb, first.free_mem_gb, first.running, first.last_model) == (
        "sim:0", 79.6, 79.6, (), None)
    later = next(s for s in policy.slots if s.running)
    assert later.free_mem_gb == pytest.approx(79.6 - workload.items[0].predicted_mem_gb)
    assert policy.slots[-1].last_model == "qwen3-8b"


class _Stubborn:
    name = "stubborn"

    def __init__(self, answer: WorkItem | None) -> None:
        self.answer = answer

    def pick(self, queue: Sequence[WorkItem], slot: SlotState, now: float) -> WorkItem | None:
        return self.answer

    def observe(self, item: WorkItem, actual_runtime_s: float) -> None:
        pass


def test_a_policy_that_starts_nothing_leaves_items_unplaced_and_a_stranger_is_refused() -> None:
    workload = _pick(["qwen3-8b"], ["arc_easy", "piqa"], "H100-80GB", limit=10)
    pool = parse_pool("H100-80GB")
    result = simulate(workload.items, workload.jobs, pool, _Stubborn(None), seed=0)
    assert result.unplaced == ("qwen3-8b/arc_easy", "qwen3-8b/piqa") and result.makespan_s == 0.0
    stranger = workload.items[0].model_copy(update={"key": "nobody/nothing"})
    with pytest.raises(ValueError, match="not queued"):
        simulate(workload.items, workload.jobs, pool, _Stubborn(stranger), seed=0)
    with pytest.raises(ValueError, match="unique"):
        simulate(workload.items * 2, workload.jobs, pool, FifoPolicy(), seed=0)


def test_the_extended_profile_on_eight_h100s_simulates_in_seconds() -> None:
    pool = parse_pool("8xH100-80GB")
    workload = build_workload(EXTENDED, pool[0], seed=0)
    started = time.perf_counter()
    result = simulate(workload.items, workload.jobs, pool, LongestFirstPolicy(), seed=0)
    elapsed = time.perf_counter() - started
    assert elapsed < 5.0
    assert result.completed == 462 and result.failed == () and result.unplaced == ()
    assert len(_segments(result)) == 462 + result.oom_count
    assert result.lower_bound_s <= result.makespan_s
    # Days of GPU work, spread over eight devices: the bound is at least the work over the devices.
    assert 24 * 3600 < result.lower_bound_s < result.makespan_s < 14 * 24 * 3600


def test_an_idle_device_takes_the_unstarted_tail_of_a_long_job_and_every_task_runs_once() -> None:
    from spectrabench.planning.dispatch import DynamicLPT
    from spectrabench.simulate.workload import group_items

    tasks = ["haerae", "kobest", "csatqa", "arc_easy", "piqa", "gsm8k", "bbh", "triviaqa"]
    work = _pick(["llama-3.1-8b", "gemma-3-4b-it"], tasks, "2xA100-80GB", seed=3, runtime_noise=0.2)
    # The 8B model's tasks in one job, the 4B model's first task alone: one device soon idles with nothing queued.
    llama = [i.key for i in work.items if i.model == "llama-3.1-8b"]
    gemma = [i.key for i in work.items if i.model == "gemma-3-4b-it"]
    work = group_items(work, [llama, *[[k] for k in gemma[:1]]])
    work = work._replace(items=[i for i in work.items if i.key not in gemma[1:]])
    devices = parse_pool("2xA100-80GB")
    still = simulate(work.items, work.jobs, devices, DynamicLPT(n_devices=2), seed=3)
    moved = simulate(work.items, work.jobs, devices, DynamicLPT(n_devices=2), seed=3, max_tail_moves=4)
    assert still.tail_moves == 0 and moved.tail_moves >= 1
    assert moved.makespan_s < 0.8 * still.makespan_s
    done = [t for s in _segments(moved) if s.outcome == "ok" for t in s.tasks]
    assert sorted(done) == sorted([*tasks, tasks[0]])  # each of llama's tasks once, and gemma's one task
    assert moved.model_loads == still.model_loads + moved.tail_moves


def test_an_idle_device_looks_again_while_a_group_in_parts_overruns_and_takes_its_parts() -> None:
    from spectrabench.planning.subtasks import split_large_groups
    from spectrabench.simulate.workload import group_items, with_parts

    standard = bundled_profile("standard")
    models = ("exaone-3.5-32b-instruct", "hyperclovax-seed-0.5b-instruct")
    profile = standard.model_copy(update={
        "models": [m for m in standard.models if m.name in models],
        "tasks": [t for t in standard.tasks if t.name in ("kmmlu", "haerae")]})
    pool = parse_pool("2xH100-80GB")
    work = build_workload(profile, pool[0], seed=0, runtime_noise=0.0, fit_margin=0.1)
    kmmlu = [i for i in work.items if i.key == "exaone-3.5-32b-instruct/kmmlu"]
    parts = split_large_groups({"exaone": kmmlu}, 8, share=1e-4, in_job=True)["exaone"]
    work = group_items(with_parts(work, parts), [[p.key for p in parts]])
    job = next(i for i in work.items if len(i.tasks) > 1)
    # Predicted at a 200th of what it runs: when the other device idles (after a 36 s task) moving parts would
    # not pay back a load. Only once the part at hand has run long does the group look long, and no job ends then.
    under = job.model_copy(update={"predicted_runtime_s": job.predicted_runtime_s / 200,
                                   "task_runtimes_s": tuple(r / 200 for r in job.task_runtimes_s)})
    items = [under, next(i for i in work.items if i.key == "hyperclovax-seed-0.5b-instruct/haerae")]
    still = simulate(items, work.jobs, pool, DynamicLPT(n_devices=2), seed=0)
    moved = simulate(items, work.jobs, pool, DynamicLPT(n_devices=2), seed=0, max_tail_moves=4)
    assert moved.tail_moves >= 1
    assert moved.makespan_s < 0.6 * still.makespan_s
    done = [t for s in _segments(moved) if s.outcome == "ok" for t in s.tasks]
    assert sorted(done) == sorted([*(p.tasks[0] for p in parts), "haerae"])


def test_a_sharded_item_runs_on_idle_devices_at_once_and_splits_its_weights() -> None:
    from spectrabench.planning.dispatch import DynamicLPT

    work = _pick(["exaone-3.5-32b-instruct", "gemma-3-4b-it"], ["haerae", "kobest"], "8xL4-24GB", seed=1,
                 fit_margin=0.1)
    sharded = [i for i in work.items if i.model == "exaone-3.5-32b-instruct"]
    assert sharded and all(i.gpus >= 3 for i in sharded)  # 60 GiB of weights on 24 GiB cards
    result = simulate(work.items, work.jobs, parse_pool("8xL4-24GB"), DynamicLPT(n_devices=8), seed=1)
    assert result.oom_count == 0 and not result.unplaced and result.completed == len(work.items)
    for item in sharded:
        segments = [s for s in _segments(result) if s.key == item.key]
        assert len(segments) == item.gpus and len({(s.start_s, s.end_s) for s in segments}) == 1
    # A pool with too few cards never starts it.
    small_pool = simulate(work.items, work.jobs, parse_pool("2xL4-24GB"), DynamicLPT(n_devices=2), seed=1)
    assert set(small_pool.unplaced) == {i.key for i in sharded}


def test_the_bound_counts_one_load_per_model_so_one_worker_per_model_never_beats_it() -> None:
    from spectrabench.simulate.bound import lower_bound

    # Short tasks make loads weigh: a bound that charged a load per (model, task) would exceed a run that loads
    # each model once.
    models = [m.name for m in EXTENDED.models if m.params_b <= 12][:4]
    tasks = [t.name for t in EXTENDED.tasks][:8]
    for pool in ("1xH100-80GB", "2xA100-80GB"):
        finest = _pick(models, tasks, pool, seed=3, limit=5, runtime_noise=0.0, memory_noise=0.0)
        grouped = group_by_model(finest)
        truth = TruthConfig(noise=0.2, outlier_rate=0.0)
        result = simulate(grouped.items, grouped.jobs, parse_pool(pool), FifoPolicy(colocate=False), seed=3,
                          truth=truth, max_per_device=1)
        bound = lower_bound(finest.items, lambda item, w=finest: w.jobs[item.key], parse_pool(pool), 3, truth=truth,
                            max_per_device=1)
        assert result.completed == len(grouped.items) and result.model_loads == len(models)
        assert bound <= result.makespan_s, pool


def _tiny_jobs() -> tuple[dict[str, SimJob], dict[str, float], dict[str, float]]:
    """One-task truths of a 0.5B model on an L4 whose peaks differ by context length: (truths, peaks, seconds)."""
    vocab = true_vocab("hyperclovax-seed-0.5b-instruct")
    device = parse_pool("L4-24GB")[0]
    truths, peaks, seconds = {}, {}, {}
    for name, context in (("heavy", 1000), ("light", 200), ("medium", 500)):
        task = SimTask(name, "loglikelihood", 200, 800, context, 0)
        truths[name] = SimJob(key=name, model="tiny", params_b=0.5, dtype_bytes=2, vocab=vocab, tasks=(task,),
                              batch_size=8)
        cost = true_cost(truths[name], device, 1, None, config=TruthConfig(noise=0.0))
        peaks[name], seconds[name] = cost.peak_mem_gb, cost.runtime_s
    return truths, peaks, seconds


def _job(truths: dict[str, SimJob], names: Sequence[str], key: str) -> SimJob:
    return truths[names[0]]._replace(key=key, tasks=tuple(truths[n].tasks[0] for n in names))


def _item(key: str, model: str, names: Sequence[str], mems: Sequence[float], seconds: dict[str, float]) -> WorkItem:
    return WorkItem(key=key, model=model, tasks=tuple(names), params_b=0.5, predicted_load_s=10.0,
                    predicted_runtime_s=sum(seconds[n] for n in names),
                    task_runtimes_s=tuple(seconds[n] for n in names), predicted_mem_gb=max(mems),
                    task_mems_gb=tuple(mems))


def test_a_job_past_its_memory_heavy_task_makes_room_for_another_beside_it() -> None:
    truths, peaks, seconds = _tiny_jobs()
    pool = parse_pool("L4-24GB")
    assert peaks["heavy"] + peaks["medium"] > pool[0].total_mem_gb > 1.5 * (peaks["light"] + peaks["medium"])
    first = _item("a", "tiny", ["heavy", "light"], [peaks["heavy"], peaks["light"]], seconds)
    other = _item("b", "other", ["medium"], [peaks["medium"]], seconds)
    jobs = {"a": _job(truths, ["heavy", "light"], "a"), "b": truths["medium"]._replace(key="b", model="other")}
    starts = {}
    for stepped in (True, False):
        a = first if stepped else first.model_copy(update={"task_mems_gb": ()})
        result = simulate([a, other], jobs, pool, FifoPolicy(), seed=0, truth=TruthConfig(noise=0.0))
        assert result.oom_count == 0 and result.completed == 2
        # Never more than the device by the predictions of the tasks each job had left when another started.
        assert 0.5 < result.peak_predicted_share <= 1.0
        segments = {s.key: s for s in _segments(result)}
        starts[stepped] = (segments["b"].start_s, segments["a"].end_s)
    heavy_end = 10.0 + seconds["heavy"]  # nothing beside it until then: its load and heavy task run alone
    b_start, a_end = starts[True]
    assert b_start == pytest.approx(heavy_end, rel=0.2) and b_start < a_end
    assert starts[False][0] == pytest.approx(starts[False][1]), "its whole peak held to its end, b waits for it"


def test_a_task_heavier_than_predicted_dies_of_oom_when_it_starts_and_the_rest_of_its_job_is_retried() -> None:
    truths, peaks, seconds = _tiny_jobs()
    pool = parse_pool("L4-24GB")
    # Its heavy second task is predicted as light, so the medium job starts beside it.
    under = _item("a", "tiny", ["light", "heavy"], [peaks["light"], peaks["light"]], seconds)
    other = _item("b", "other", ["medium"], [peaks["medium"]], seconds)
    jobs = {"a": _job(truths, ["light", "heavy"], "a"), "b": truths["medium"]._replace(key="b", model="other")}
    result = simulate([under, other], jobs, pool, FifoPolicy(), seed=0, truth=TruthConfig(noise=0.0))
    assert result.oom_count >= 1 and result.completed == 2 and result.failed == ()
    died = next(s for s in _segments(result) if s.key == "a" and s.outcome == "oom")
    # It died when its heavy task began beside b, past its load and light task, not at its start.
    assert died.start_s == 0.0 and died.end_s > 10.0 + seconds["light"]
    retried = [s for s in _segments(result) if s.key == "a" and s.outcome == "ok"]
    # The worker wrote its light task's results: the retry runs the heavy one only, at half its batch.
    assert len(retried) == 1 and retried[0].batch_size == 4 and retried[0].tasks == ("heavy",)


def test_the_retry_of_a_job_whose_tail_moved_runs_its_head_only() -> None:
    # Memory predicted at 0.3x: the grouped job dies of OOM on its first task, but an idle device first takes the
    # tail of its unstarted tasks. Its retry (half the batch) then runs mmlu alone, not the tasks that moved.
    workload = group_by_model(_pick(["llama-3.1-8b"], ["mmlu", "arc_challenge", "hellaswag"], "H100-80GB", limit=64,
                                    batch_size=64, memory_scale=0.3))
    pool = parse_pool("2xH100-80GB")
    truth = TruthConfig(noise=0.0)
    result = simulate(workload.items, workload.jobs, pool, DynamicLPT(n_devices=2), seed=0, max_tail_moves=2,
                      truth=truth)
    assert (result.oom_count, result.tail_moves, result.completed, result.failed) == (1, 1, 2, ())
    retry = next(s for s in _segments(result) if s.outcome == "ok" and s.tasks == ("mmlu",))
    job = workload.jobs[workload.items[0].key]
    head = job._replace(tasks=job.tasks[:1], task_batches=job.task_batches[:1], batch_size=retry.batch_size)
    alone = true_cost(head, pool[0], 1, None, config=truth, warm=True, luck="0")
    assert retry.batch_size == 32 and retry.end_s - retry.start_s == pytest.approx(alone.load_s + alone.runtime_s)
