"""Baseline policies, the schedules our dispatcher is measured against. Same protocol as `DynamicLPT`.

- `Sequential` ("sequential"): one item at a time on one device, in profile order: what running
  `lm_eval` once per (model, task) in a shell loop does.
- `PerModel` ("per-model"): one worker per model, models one after another on one device; a model's items run
  back to back, so its weights are loaded (or cached) once. The original tool's "optimized" mode.
- `RoundRobin` ("round-robin"): a worker pool as common tools have: the next item in profile order goes to any
  free device, with no memory check and no ordering by length.

They read the queue in the order given, which is the profile's (models outer, tasks inner), and ignore predictions
except that none of them may be started on a device that is already busy.
"""

from __future__ import annotations

from collections.abc import Sequence

from spectrabench.errors import UserError, did_you_mean
from spectrabench.planning.dispatch import DynamicLPT
from spectrabench.planning.schedule import Policy, SlotState, WorkItem
from spectrabench.planning.speeds import DeviceRate


class Sequential:
    """One item at a time, in profile order, on the first device only.

    Args:
        device_id: The device to use; by default the first one the policy is asked about.
    """

    name = "sequential"

    def __init__(self, device_id: str | None = None) -> None:
        self._device = device_id

    def pick(self, queue: Sequence[WorkItem], slot: SlotState, now: float) -> WorkItem | None:
        """The first queued item, when `slot` is this policy's device and idle."""
        self._device = self._device or slot.device_id
        if slot.device_id != self._device or slot.running or not queue:
            return None
        return queue[0]

    def observe(self, item: WorkItem, actual_runtime_s: float) -> None:
        """Nothing to learn: the order is fixed."""


class PerModel(Sequential):
    """One model at a time on the first device: its items back to back, then the next model in profile order."""

    name = "per-model"

    def pick(self, queue: Sequence[WorkItem], slot: SlotState, now: float) -> WorkItem | None:
        """The next item of the model on the device, else the first queued item; only when the device is idle."""
        first = super().pick(queue, slot, now)
        if first is not None and slot.last_model is not None and first.model != slot.last_model:
            # A worker finishes its model before the next one starts, even if the queue interleaves models.
            return next((item for item in queue if item.model == slot.last_model), first)
        return first


class RoundRobin:
    """The next item in profile order on whichever device is idle; no memory check, no ordering by length."""

    name = "round-robin"

    def pick(self, queue: Sequence[WorkItem], slot: SlotState, now: float) -> WorkItem | None:
        """The first queued item, when `slot` is idle."""
        if slot.running or not queue:
            return None
        return queue[0]

    def observe(self, item: WorkItem, actual_runtime_s: float) -> None:
        """Nothing to learn: the order is fixed."""


POLICY_NAMES = (DynamicLPT.name, Sequential.name, PerModel.name, RoundRobin.name)


def make_policy(name: str, *, n_devices: int | None = None, pool: Sequence[DeviceRate] = ()) -> Policy:
    """A fresh policy by its name (policies keep state, so one per run).

    Args:
        name: One of `POLICY_NAMES`.
        n_devices: Devices in the pool (used by "ours").
        pool: Each device's memory and speed, where the pool mixes kinds (used by "ours").

    Raises:
        UserError: The name is unknown.
    """
    if name == DynamicLPT.name:
        return DynamicLPT(n_devices=n_devices, pool=pool)
    if name == Sequential.name:
        return Sequential()
    if name == PerModel.name:
        return PerModel()
    if name == RoundRobin.name:
        return RoundRobin()
    raise UserError(f"unknown scheduling policy '{name}'", hint=did_you_mean(name, POLICY_NAMES, "policies"))
