"""Phase 2: from how many comparable records the learned predictor beats the rules, and when it stops improving.

The history is replayed in time order, separately for each domain that the stages count records in (device kind
x model-size domain, see `prediction.stages`). At each size n, the predictor is trained on every record that had
finished when the domain's n-th record finished (records of other domains included, as the scheduler trains on
everything), and scored on the domain's next `window` records against the rules. The error of a prediction is
|log(predicted runtime / real runtime)|: symmetric in over- and under-estimates, which multiply.

- `min_learning_data` is the smallest n from which the learned error is below the rules' error at that n and at
  every larger n replayed ("consistently"); none when the learned model is not ahead at the end of the history.
- `stable_learning_data` is the smallest n >= min at which the learned error curve (a running median of three
  points, so that one odd window does not decide) is within `tolerance` (10%) of its best value at any larger n,
  i.e. more data improves it by less than that; it needs `_CONFIRM` points after it, else none (still improving
  when the history ends).

Thresholds are chosen by these rules from the measured curves only; a domain without enough records keeps the
base config's values, and the report says which values were measured and which were kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from spectrabench.profiles import SchedulerConfig

if TYPE_CHECKING:
    from spectrabench.prediction.features import HistoryRecord

Predict = Callable[[Sequence["HistoryRecord"]], list[float]]  # runtime estimates for records
Learner = Callable[[Sequence["HistoryRecord"]], Predict]  # trains on records, returns a Predict

DEFAULT_TOLERANCE = 0.10
MIN_DOMAIN_RECORDS = 30  # below this a domain's curve has too few points to decide anything
_CONFIRM = 3  # grid points that must follow a stable point to show the curve stayed flat
_DOMAIN_NAMES = {0: "under 1B", 1: "1B to large", 2: "large"}


class CurvePoint(NamedTuple):
    """Rules and learned predictor on one test window, after training on n comparable records."""

    n: int  # comparable (same-domain) records the predictor had seen
    n_train: int  # all records it was trained on
    n_test: int
    rules_error: float  # mean |log(predicted / real runtime)| over the window
    learned_error: float
    learned_wins: float  # share of the window where the learned estimate was the closer one


class DomainResult(NamedTuple):
    """The learning curve of one domain and the thresholds read from it."""

    device_kind: str
    size_domain: int
    records: int
    window: int
    curve: list[CurvePoint]
    min_learning_data: int | None
    stable_learning_data: int | None

    @property
    def label(self) -> str:
        """A short name, e.g. 'cuda, under 1B'."""
        return f"{self.device_kind}, {_DOMAIN_NAMES.get(self.size_domain, str(self.size_domain))}"


class ThresholdReport(NamedTuple):
    """Phase 2: per-domain results and the scheduler config they lead to."""

    records: int
    tolerance: float
    domains: list[DomainResult]
    config: SchedulerConfig
    notes: dict[str, str]  # config field -> how its value was chosen


def log_error(predicted: float, real: float) -> float:
    """|log(predicted / real)|: 0 for a perfect estimate, log 2 for a factor of two either way."""
    return abs(math.log(max(predicted, 1e-9) / max(real, 1e-9)))


def default_window(domain_records: int) -> int:
    """Test window for a domain: an eighth of its records, kept between 10 and 30."""
    return max(10, min(30, domain_records // 8))


def sizes_for(domain_records: int, window: int) -> list[int]:
    """Training sizes replayed: about 40 evenly spaced steps (at least 5 records apart) up to the last window."""
    step = max(5, math.ceil(domain_records / 40))
    return list(range(step, domain_records - window + 1, step))


def replay(records: Sequence[HistoryRecord], in_domain: Callable[[HistoryRecord], bool], learner: Learner,
           rules: Predict, sizes: Sequence[int], window: int) -> list[CurvePoint]:
    """The learning curve of one domain.

    Args:
        records: The whole history, oldest first.
        in_domain: Whether a record counts for this domain.
        learner: Trains a predictor on records (see `lightgbm_learner`).
        rules: The rules' runtime estimates.
        sizes: Comparable-record counts to replay.
        window: Domain records scored after each size.
    """
    positions = [i for i, r in enumerate(records) if in_domain(r)]
    curve = []
    for n in sizes:
        if n < 1 or n + window > len(positions):
            continue
        train = records[: positions[n - 1] + 1]
        test = [records[i] for i in positions[n: n + window]]
        learned = learner(train)(test)
        ruled = rules(test)
        real = [r.runtime_s for r in test]
        learned_err = [log_error(p, a) for p, a in zip(learned, real, strict=True)]
        rules_err = [log_error(p, a) for p, a in zip(ruled, real, strict=True)]
        wins = sum(1 for a, b in zip(learned_err, rules_err, strict=True) if a < b) / len(test)
        curve.append(CurvePoint(n, len(train), len(test), sum(rules_err) / len(test),
                                sum(learned_err) / len(test), wins))
    return curve


def _running_median(values: Sequence[float]) -> list[float]:
    out = []
    for i in range(len(values)):
        around = sorted(values[max(0, i - 1): i + 2])
        out.append(around[len(around) // 2] if len(around) % 2 else (around[0] + around[1]) / 2)
    return out


def choose_thresholds(curve: Sequence[CurvePoint],
                      tolerance: float = DEFAULT_TOLERANCE) -> tuple[int | None, int | None]:
    """`min_learning_data` and `stable_learning_data` read from one learning curve (see the module docstring)."""
    low = None
    for point in reversed(curve):
        if point.learned_error >= point.rules_error:
            break
        low = point.n
    if low is None:
        return None, None
    smooth = _running_median([p.learned_error for p in curve])
    start = next(i for i, p in enumerate(curve) if p.n == low)
    for i in range(start, len(curve) - _CONFIRM):
        if smooth[i] <= (1 + tolerance) * min(smooth[i:]):
            return low, curve[i].n
    return low, None


def lightgbm_learner(train: Sequence[HistoryRecord]) -> Predict:
    """The scheduler's learned predictor trained on `train`; its history features see only `train` too."""
    from spectrabench.prediction.learned import LearnedPredictor

    model = LearnedPredictor.fit(train)

    def predict(records: Sequence[HistoryRecord]) -> list[float]:
        return [e.runtime_s for e in model.predict_many([r.features for r in records], train)]

    return predict


def rules_runtime(records: Sequence[HistoryRecord]) -> list[float]:
    """The rules' runtime estimate of each record."""
    from spectrabench.prediction.rules import estimate

    return [estimate(r.features).runtime_s for r in records]


def _pick(found: list[int], field: str, base: int, notes: dict[str, str], what: str) -> int:
    if found:
        # The stricter domain decides: a shared threshold must be safe for every domain it covers.
        notes[field] = f"measured ({what}: {', '.join(map(str, found))}; the largest is used)"
        return max(found)
    notes[field] = f"kept {base} from the base config ({what}: not measured)"
    return base


def calibrate_thresholds(records: Sequence[HistoryRecord], base: SchedulerConfig | None = None, *,
                         learner: Learner = lightgbm_learner, rules: Predict = rules_runtime,
                         tolerance: float = DEFAULT_TOLERANCE, window: int | None = None) -> ThresholdReport:
    """Replay the history per domain and derive the scheduler's learning thresholds from it.

    Args:
        records: The history, oldest first.
        base: The config whose values are kept where the history cannot decide (defaults if None).
        learner: How a predictor is trained (the LightGBM predictor unless a test injects another).
        rules: The rules' runtime estimates.
        tolerance: Relative improvement below which the learned error counts as stable.
        window: Test records per step; by default `default_window` of each domain's size.

    Raises:
        ValueError: No domain has `MIN_DOMAIN_RECORDS` records.
    """
    from spectrabench.prediction.stages import size_domain

    base = base or SchedulerConfig()
    ordered = sorted(records, key=lambda r: r.finished_at)
    keys = sorted({(r.features.device_kind, size_domain(r.features.params_b, base)) for r in ordered})
    domains = []
    for kind, domain in keys:
        def in_domain(r: HistoryRecord, kind: str = kind, domain: int = domain) -> bool:
            return r.features.device_kind == kind and size_domain(r.features.params_b, base) == domain

        count = sum(1 for r in ordered if in_domain(r))
        if count < MIN_DOMAIN_RECORDS:
            continue
        size = window or default_window(count)
        curve = replay(ordered, in_domain, learner, rules, sizes_for(count, size), size)
        low, stable = choose_thresholds(curve, tolerance)
        domains.append(DomainResult(kind, domain, count, size, curve, low, stable))
    if not domains:
        raise ValueError(f"no domain has {MIN_DOMAIN_RECORDS} history records (got {len(ordered)} in all)")
    notes: dict[str, str] = {}
    small = [d for d in domains if d.size_domain < 2]
    large = [d for d in domains if d.size_domain == 2]
    low = _pick([d.min_learning_data for d in small if d.min_learning_data is not None], "min_learning_data",
                base.min_learning_data, notes, "models up to the large size")
    stable = _pick([d.stable_learning_data for d in small if d.stable_learning_data is not None],
                   "stable_learning_data", max(base.stable_learning_data, low), notes, "models up to the large size")
    large_low = _pick([d.min_learning_data for d in large if d.min_learning_data is not None],
                      "large_model_min_learning_data", base.large_model_min_learning_data, notes, "large models")
    large_stable = _pick([d.stable_learning_data for d in large if d.stable_learning_data is not None],
                         "large_model_stable_learning_data",
                         max(base.large_model_stable_learning_data, large_low), notes, "large models")
    config = SchedulerConfig(min_learning_data=low, stable_learning_data=max(stable, low),
                             large_model_min_learning_data=large_low,
                             large_model_stable_learning_data=max(large_stable, large_low),
                             large_model_params_b=base.large_model_params_b)
    return ThresholdReport(len(ordered), tolerance, domains, config, notes)


def report_json(report: ThresholdReport) -> dict[str, Any]:
    """The report as plain JSON-ready values."""
    return {
        "records": report.records, "tolerance": report.tolerance, "error": "mean |log(predicted / real runtime)|",
        "scheduler": report.config.model_dump(), "notes": report.notes,
        "domains": [{"device_kind": d.device_kind, "size_domain": d.size_domain, "label": d.label,
                     "records": d.records, "window": d.window, "min_learning_data": d.min_learning_data,
                     "stable_learning_data": d.stable_learning_data, "curve": [p._asdict() for p in d.curve]}
                    for d in report.domains],
    }


def scheduler_yaml(report: ThresholdReport, source: str) -> str:
    """A `scheduler:` section that a profile can copy, with how each value was found as comments."""
    lines = [f"# Written by `spectrabench calibrate thresholds` from {source} ({report.records} records).",
             "# Copy this section into a profile to use these thresholds."]
    lines += [f"#   {field}: {note}" for field, note in report.notes.items()]
    lines.append("scheduler:")
    lines += [f"  {field}: {value}" for field, value in report.config.model_dump().items()]
    return "\n".join(lines) + "\n"
