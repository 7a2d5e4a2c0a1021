"""Which predictor to trust, by how much comparable history there is: intelligent -> hybrid -> adaptive.

Comparable records are history records that ran on the same kind of device (CPU or CUDA) with a model in the
same size domain as the job: under 1B parameters, from 1B up to `large_model_params_b`, or above it. Runtime
and memory behave alike within a domain (overhead-bound tiny models, one-GPU mid-size models, large models
that fill a GPU) and differently across them, so 500 records of 135M models on CPU say little about a 70B
model on an H100. Large models use the larger thresholds because their errors cost more (an OOM or a bad
placement wastes a whole GPU).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

from pydantic import BaseModel

from spectrabench.prediction.features import HistoryIndex, HistoryRecord, JobFeatures
from spectrabench.prediction.learned import LearnedPredictor, blend, history_index, informed_rules
from spectrabench.prediction.rules import estimate
from spectrabench.profiles import SchedulerConfig

Stage = Literal["intelligent", "hybrid", "adaptive"]
_SMALL_MODEL_B = 1.0


class StageChoice(NamedTuple):
    """The stage for a job and the weight its learned estimate gets (0 = rules only, 1 = learned only)."""

    stage: Stage
    learned_weight: float


class Prediction(BaseModel, frozen=True):
    """What the scheduler is told about one job."""

    runtime_s: float
    load_s: float
    peak_mem_gb: float
    stage: Stage
    learned_weight: float


def stage_for(n_comparable: int, params_b: float, cfg: SchedulerConfig) -> StageChoice:
    """The stage for a job with `n_comparable` comparable history records.

    Below the minimum: "intelligent" (rules only). From the minimum up to the stable count: "hybrid", with the
    learned weight rising linearly from 0 to 1. At or above the stable count: "adaptive" (learned only).
    Models larger than `cfg.large_model_params_b` use the large-model thresholds.

    Args:
        n_comparable: Comparable history records (see the module docstring).
        params_b: The job's model size in billions of parameters.
        cfg: The profile's scheduler settings.
    """
    large = params_b > cfg.large_model_params_b
    low = cfg.large_model_min_learning_data if large else cfg.min_learning_data
    high = cfg.large_model_stable_learning_data if large else cfg.stable_learning_data
    if n_comparable < low:
        return StageChoice("intelligent", 0.0)
    if n_comparable >= high:
        return StageChoice("adaptive", 1.0)
    return StageChoice("hybrid", (n_comparable - low) / (high - low))


def size_domain(params_b: float, cfg: SchedulerConfig) -> int:
    """0 under 1B parameters, 1 up to `cfg.large_model_params_b`, 2 above it."""
    if params_b < _SMALL_MODEL_B:
        return 0
    return 1 if params_b <= cfg.large_model_params_b else 2


def count_comparable(history: Sequence[HistoryRecord], device_kind: str, params_b: float,
                     cfg: SchedulerConfig) -> int:
    """History records on the same device kind whose model is in the same size domain as `params_b`."""
    domain = size_domain(params_b, cfg)
    return sum(1 for r in history
               if r.features.device_kind == device_kind and size_domain(r.features.params_b, cfg) == domain)


class Predictor:
    """The scheduler's predictor: rules, a learned model, or a blend, chosen per job by comparable history.

    Args:
        cfg: The profile's scheduler settings (thresholds).
        learned: A trained model, or None before any training (then every job gets the rules).
        history: The finished measurements, for stage counts and the learned model's history features.
    """

    def __init__(self, cfg: SchedulerConfig, learned: LearnedPredictor | None,
                 history: Sequence[HistoryRecord]) -> None:
        self.cfg = cfg
        self.learned = learned
        self.history = list(history)
        self._counts: dict[tuple[str, int], int] = {}
        self._index: HistoryIndex | None = None

    def stage(self, f: JobFeatures, params_b: float | None = None) -> StageChoice:
        """The stage this job gets; "intelligent" whenever there is no learned model."""
        size = f.params_b if params_b is None else params_b
        if self.learned is None:
            return StageChoice("intelligent", 0.0)
        key = (f.device_kind, size_domain(size, self.cfg))
        if key not in self._counts:
            self._counts[key] = count_comparable(self.history, f.device_kind, size, self.cfg)
        return stage_for(self._counts[key], size, self.cfg)

    def predict(self, f: JobFeatures, params_b: float | None = None) -> Prediction:
        """Runtime, load time and peak memory of one job, with the stage that produced them.

        Args:
            f: The job's features.
            params_b: The model size that picks the thresholds; defaults to `f.params_b`.
        """
        choice = self.stage(f, params_b)
        rules = estimate(f)
        if self.learned is None or choice.learned_weight <= 0:
            mixed = rules
        else:
            if self._index is None:
                self._index = history_index(self.history)
            # The rules side of the blend already knows how long each generation task's answers ran.
            mixed = blend(informed_rules(f, self._index), self.learned.predict_indexed(f, self._index),
                          choice.learned_weight)
        return Prediction(runtime_s=mixed.runtime_s, load_s=mixed.load_s, peak_mem_gb=mixed.peak_mem_gb,
                          stage=choice.stage, learned_weight=choice.learned_weight)
