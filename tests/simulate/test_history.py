"""Histories drawn from the simulator: deterministic, within the pool's memory, and as the predictor reads them."""

from __future__ import annotations

from spectrabench.profiles import load_profile
from spectrabench.settings import Settings
from spectrabench.simulate.history import draw_records
from spectrabench.simulate.specs import parse_pool
from spectrabench.simulated_history import simulated_history

POOL = parse_pool("A100-80GB,H100-80GB,L4-24GB")


def test_drawn_records_are_seeded_ordered_and_fit_their_device() -> None:
    profile = load_profile("extended", Settings())
    first = draw_records(profile, POOL, 120, seed=3)
    assert first == draw_records(profile, POOL, 120, seed=3)
    assert first != draw_records(profile, POOL, 120, seed=4)
    assert [r.finished_at for r in first] == sorted(r.finished_at for r in first)
    assert all(r.cost.peak_mem_gb <= r.device.total_mem_gb for r in first)  # an OOM leaves no record
    assert {r.device.name for r in first} == {"A100-80GB", "H100-80GB", "L4-24GB"}


def test_the_predictors_view_carries_the_drawn_costs_and_settings() -> None:
    profile = load_profile("extended", Settings())
    drawn = draw_records(profile, POOL, 50, seed=1)
    history = simulated_history(profile, POOL, 50, seed=1)
    for sim, record in zip(drawn, history, strict=True):
        assert (record.model, record.task) == (sim.model.name, sim.task.name)
        assert (record.runtime_s, record.load_s, record.peak_mem_gb) == (sim.cost.runtime_s, sim.cost.load_s,
                                                                     sim.cost.peak_mem_gb)
        assert record.features.batch_size == sim.batch_size
        assert record.features.device_name == sim.device.name
