"""Stage "adaptive": LightGBM models that learn, from the history, what the rules get wrong.

Each target is learned as a log-ratio to the rules' estimate (log(actual / rules)): trees cannot extrapolate,
but a ratio to a physical estimate carries over to models and tasks larger than any seen, and with no signal
the model predicts ~0, i.e. the rules. Memory is learned on the part of the peak above the weights, which are
known exactly: an error of 20% on a 32B model's 60 GiB of weights would be 12 GiB that no model ever needs.
Runtime and load time use squared error on that log target (a geometric-mean fit); peak memory uses a 0.95
quantile, so that 95% of real peaks fall under the prediction.

Training is deterministic (fixed seed, one thread, LightGBM's `deterministic`) and works from ~20 records:
leaves may hold 2 records and the tree count is small.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

from spectrabench.prediction.features import (
    BASE_COLUMNS,
    HISTORY_COLUMNS,
    FeatureRow,
    HistoryIndex,
    HistoryRecord,
    JobFeatures,
    with_history_features,
)
from spectrabench.prediction.pairweight import Guess, blended, unseen_pair_weight
from spectrabench.prediction.rules import Estimate, estimate, runtime_parts, weights_gib

# 7: the rules decode CPU batches with the weight and KV-cache traffic measured here, and answer shares are a task +
# model fit (`prediction.answers`): corrections learned against the older rules and shares would be misapplied.
FORMAT_VERSION = 7
RULE_COLUMNS = ("rules_log_runtime", "rules_log_load", "rules_log_mem", "rules_prefill_share", "rules_decode_share")
COLUMNS = BASE_COLUMNS + HISTORY_COLUMNS + RULE_COLUMNS
TARGETS = ("runtime", "load", "memory")
MEMORY_QUANTILE = 0.95
_MIN_RECORDS = 5  # below this a target keeps the rules' estimate


def _params(target: str, n: int) -> dict[str, Any]:
    """LightGBM parameters sized for `n` training rows."""
    params: dict[str, Any] = {
        "objective": "regression", "learning_rate": 0.1, "num_leaves": 15, "max_depth": 5,
        "min_data_in_leaf": max(2, min(20, n // 10)), "min_data_in_bin": 1, "min_sum_hessian_in_leaf": 1e-3,
        "lambda_l2": 1.0, "feature_fraction": 1.0, "bagging_fraction": 1.0, "seed": 0, "num_threads": 1,
        "deterministic": True, "force_col_wise": True, "verbosity": -1,
    }
    if target == "memory":
        params |= {"objective": "quantile", "alpha": MEMORY_QUANTILE}
    return params


def _rounds(n: int) -> int:
    return max(20, min(200, 2 * n))


def _rules_row(f: JobFeatures, rules: Estimate) -> FeatureRow:
    # Where the rules think the time goes: their errors differ by part (e.g. answers stop before the
    # generation cap the rules assume), so the trees can correct each part by its own factor.
    parts = runtime_parts(f)
    total = max(parts.total_s, 1e-9)
    return {"rules_log_runtime": math.log(max(rules.runtime_s, 1e-6)),
            "rules_log_load": math.log(max(rules.load_s, 1e-6)),
            "rules_log_mem": math.log(max(rules.peak_mem_gb, 1e-6)),
            "rules_prefill_share": parts.prefill_s / total, "rules_decode_share": parts.decode_s / total}


def _train(target: str, xs: Sequence[list[float]], ys: Sequence[float]) -> Any:
    import lightgbm as lgb
    import numpy as np

    data = lgb.Dataset(np.asarray(xs, dtype=float), label=np.asarray(ys), feature_name=list(COLUMNS),
                       params={"min_data_in_bin": 1, "verbosity": -1}, free_raw_data=True)
    return lgb.train(_params(target, len(ys)), data, num_boost_round=_rounds(len(ys)))


_CALIBRATION_BLOCKS = 5
# The coverage the offset is calibrated for, above `MEMORY_QUANTILE`: conformal calibration promises its level only
# for exchangeable records, and a history is not one (new models and tasks arrive later, unlike what came before).
# Calibrated at 0.95, coverage of the newest simulated records dipped to 89.5% at 100 records and held-out pairs
# to 94.2% at 400; at 0.97 every size covers 95% or more, for ~0.2-0.4 GB more reserved
# (`benchmarks/predictor_accuracy.py`).
_CALIBRATION_LEVEL = 0.97


def _memory_offset(xs: Sequence[list[float]], ys: Sequence[float]) -> float:
    """How far to raise the memory quantile so that it covers its share of peaks on unseen jobs.

    A quantile forest fitted on few records hugs its training peaks and covers fewer new ones than its alpha
    promises. The records (in time order) are cut into blocks; each of the newest `_CALIBRATION_BLOCKS` is predicted
    by a fit on everything before it, and the pooled excess over those predictions at the quantile becomes an
    additive offset in log space (split conformal calibration, repeated over time so that one unusual block does not
    set the offset alone: one newest fifth left coverage at 84% on some histories, five blocks at 90% or more).
    """
    import numpy as np

    size = max(_MIN_RECORDS, len(ys) // (_CALIBRATION_BLOCKS + 2))
    excess: list[float] = []
    for block in range(_CALIBRATION_BLOCKS):
        start = len(ys) - (block + 1) * size
        if start < _MIN_RECORDS:
            break
        model = _train("memory", xs[:start], ys[:start])
        predicted = model.predict(np.asarray(xs[start:start + size], dtype=float))
        excess.extend(float(e) for e in np.asarray(ys[start:start + size]) - predicted)
    if not excess:
        return 0.0
    # The finite-sample conformal level: the ceil((n + 1) * alpha)-th smallest excess of n covers a new peak with
    # probability at least alpha, where the plain alpha-quantile of n falls short by about 1 / n.
    level = min(1.0, math.ceil((len(excess) + 1) * _CALIBRATION_LEVEL) / len(excess))
    return max(0.0, float(np.quantile(excess, level, method="higher")))


def _vector(f: JobFeatures, row: FeatureRow, rules: Estimate, columns: Sequence[str]) -> list[float]:
    full = {**row, **_rules_row(f, rules)}
    return [full[c] for c in columns]


def _reference(f: JobFeatures) -> tuple[float, float, float, float]:
    rules = estimate(f)
    return rules.runtime_s, rules.load_s, rules.peak_mem_gb, runtime_parts(f).decode_s


def _base(f: JobFeatures, rules: Estimate, row: FeatureRow) -> Estimate:
    """What the trees correct: the rules, with a generation task's decoding cut to the share of the cap its answers
    took in earlier records (`hist_task_answer`), when there are any."""
    answer = row.get("hist_task_answer", math.nan)
    if not math.isfinite(answer):
        return rules
    decode = runtime_parts(f).decode_s
    if decode <= 0:
        return rules
    return rules._replace(runtime_s=max(1e-6, rules.runtime_s - decode + math.exp(answer) * decode))


def _residual_gb(f: JobFeatures, peak_gb: float) -> float:
    """The part of a peak that is not weights (never below a MiB: a monitor may read just under the weights)."""
    return max(peak_gb - weights_gib(f), 2.0**-10)


def _target(f: JobFeatures, target: str, actual: float, rule: float) -> float:
    """What the trees learn for one record: log(actual / rules), on the part above the weights for memory."""
    if target == "memory":
        return math.log(_residual_gb(f, actual) / _residual_gb(f, rule))
    return math.log(actual / max(rule, 1e-6))


def _corrected(f: JobFeatures, target: str, rule: float, correction: float) -> float:
    """The rules' value with the trees' log correction applied (the inverse of `_target`)."""
    if target == "memory":
        return weights_gib(f) + _residual_gb(f, rule) * math.exp(correction)
    return rule * math.exp(correction)


def _actual(record: HistoryRecord, target: str) -> float | None:
    value = {"runtime": record.runtime_s, "load": record.load_s, "memory": record.peak_mem_gb}[target]
    return value if value is not None and value > 0 else None


class LearnedPredictor:
    """LightGBM corrections to the rules for runtime, load time and peak memory.

    Build with `fit`; save with `to_bytes` and restore with `from_bytes`. A target with too few usable records
    has no booster and predicts the rules' value.
    """

    def __init__(self, boosters: dict[str, Any], n_records: int, columns: Sequence[str] = COLUMNS,
                 memory_offset: float = 0.0, unseen_pair_weight: float = 1.0) -> None:
        self._boosters = boosters
        self.n_records = n_records
        self.columns = tuple(columns)
        self.memory_offset = memory_offset
        # The share of the runtime correction a pair without history gets (`prediction.pairweight`).
        self.unseen_pair_weight = unseen_pair_weight

    @classmethod
    def fit(cls, records: Sequence[HistoryRecord], targets: Sequence[str] = TARGETS,
            weigh_unseen_pairs: bool = True) -> LearnedPredictor:
        """Train on finished measurements (each row's history features come only from earlier records).

        Args:
            records: The history, in any order.
            targets: Which of `TARGETS` to learn (the others keep the rules' values).
            weigh_unseen_pairs: Measure how far the runtime correction carries over to pairs without history, by
                pair folds of `records` (`prediction.pairweight`); otherwise it carries over whole.
        """
        ordered = sorted(records, key=lambda r: r.finished_at)
        rows = with_history_features(ordered, _reference)
        rules = [_base(r.features, estimate(r.features), row) for r, row in zip(ordered, rows, strict=True)]
        boosters: dict[str, Any] = {}
        offset = 0.0
        for index, target in enumerate(TARGETS):
            if target not in targets:
                continue
            xs, ys = [], []
            for record, row, rule in zip(ordered, rows, rules, strict=True):
                actual = _actual(record, target)
                if actual is not None:
                    xs.append(_vector(record.features, row, rule, COLUMNS))
                    ys.append(_target(record.features, target, actual, rule[index]))
            if len(ys) < _MIN_RECORDS:
                continue
            boosters[target] = _train(target, xs, ys)
            if target == "memory":
                offset = _memory_offset(xs, ys)
        weight = 1.0
        if weigh_unseen_pairs and "runtime" in boosters:
            weight = unseen_pair_weight(ordered, _runtime_guesses)
        return cls(boosters, len(records), memory_offset=offset, unseen_pair_weight=weight)

    def predict(self, f: JobFeatures, history: Sequence[HistoryRecord]) -> Estimate:
        """Runtime, load time and peak memory of a job that has not run, given everything that has.

        Args:
            f: The job's features.
            history: All finished measurements (they feed the history features, not the trees).
        """
        return self.predict_many([f], history)[0]

    def predict_many(self, jobs: Sequence[JobFeatures], history: Sequence[HistoryRecord]) -> list[Estimate]:
        """`predict` for many jobs, reading the history once."""
        index = history_index(history)
        return self._predict_rows(jobs, [index.row(f) for f in jobs], [estimate(f) for f in jobs])

    def predict_indexed(self, f: JobFeatures, index: HistoryIndex) -> Estimate:
        """`predict` with the history already summarised by `history_index` (for many predictions)."""
        return self._predict_rows([f], [index.row(f)], [estimate(f)])[0]

    def _predict_rows(self, jobs: Sequence[JobFeatures], rows: Sequence[FeatureRow], rules: Sequence[Estimate]
                      ) -> list[Estimate]:
        import numpy as np

        if not rows:
            return []
        rules = [_base(f, rule, row) for f, rule, row in zip(jobs, rules, rows, strict=True)]
        x = np.asarray([_vector(f, row, rule, self.columns) for f, row, rule in zip(jobs, rows, rules, strict=True)],
                       dtype=float)
        corrections = [booster.predict(x) if (booster := self._boosters.get(t)) is not None else np.zeros(len(rows))
                       for t in TARGETS]
        if "memory" in self._boosters:
            corrections[TARGETS.index("memory")] = corrections[TARGETS.index("memory")] + self.memory_offset
        out = []
        for i, (f, rule, row) in enumerate(zip(jobs, rules, rows, strict=True)):
            guess = Estimate(*(_corrected(f, t, rule[k], float(corrections[k][i])) for k, t in enumerate(TARGETS)))
            if not row.get("hist_pair_n", 0) > 0 and self.unseen_pair_weight < 1:
                guess = guess._replace(runtime_s=blended(rule.runtime_s, guess.runtime_s, self.unseen_pair_weight))
            out.append(guess)
        return out

    @property
    def targets(self) -> list[str]:
        """The targets that have a trained booster."""
        return sorted(self._boosters)

    def to_bytes(self) -> bytes:
        """The predictor as JSON: format version, feature columns, record count and LightGBM model strings."""
        payload = {"format": FORMAT_VERSION, "columns": list(self.columns), "n_records": self.n_records,
                   "memory_quantile": MEMORY_QUANTILE, "memory_offset": self.memory_offset,
                   "unseen_pair_weight": self.unseen_pair_weight,
                   "boosters": {t: b.model_to_string() for t, b in sorted(self._boosters.items())}}
        return json.dumps(payload).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> LearnedPredictor:
        """Restore a predictor saved by `to_bytes`.

        Raises:
            ValueError: The bytes are not a saved predictor of this format, or its columns differ from this
                version's (retrain with `spectrabench calibrate predictor`).
        """
        import lightgbm as lgb

        try:
            payload = json.loads(data.decode())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a saved predictor: {exc}") from None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
            raise ValueError(f"unknown predictor format {payload.get('format') if isinstance(payload, dict) else '?'}")
        if tuple(payload["columns"]) != COLUMNS:
            raise ValueError("the saved predictor uses other feature columns than this version")
        boosters = {t: lgb.Booster(model_str=s) for t, s in payload["boosters"].items()}
        return cls(boosters, int(payload["n_records"]), payload["columns"], float(payload["memory_offset"]),
                   float(payload["unseen_pair_weight"]))


def _runtime_guesses(train: Sequence[HistoryRecord], test: Sequence[HistoryRecord]) -> list[Guess]:
    """(actual, informed rules, trees) runtimes of `test`, from runtime trees fitted on `train` alone."""
    model = LearnedPredictor.fit(train, targets=("runtime",), weigh_unseen_pairs=False)
    index = history_index(train)
    jobs = [record.features for record in test]
    rows = [index.row(f) for f in jobs]
    rules = [estimate(f) for f in jobs]
    # One batch through the trees; the informed rules are what the trees' correction is applied to.
    learned = model._predict_rows(jobs, rows, rules)
    return [(record.runtime_s, _base(f, rule, row).runtime_s, guess.runtime_s)
            for record, f, row, rule, guess in zip(test, jobs, rows, rules, learned, strict=True)]


def informed_rules(f: JobFeatures, index: HistoryIndex) -> Estimate:
    """The rules, with a generation task's decoding cut to the share of the cap its answers took in the history:
    what the learned model corrects, and the rules side of the hybrid stage's blend."""
    return _base(f, estimate(f), index.row(f))


def history_index(history: Sequence[HistoryRecord]) -> HistoryIndex:
    """The history summarised as the learned model's history features need it (residuals against the rules)."""
    return HistoryIndex(history, _reference)


def fit(records: Sequence[HistoryRecord]) -> LearnedPredictor:
    """Train a `LearnedPredictor` on finished measurements (see `LearnedPredictor.fit`)."""
    return LearnedPredictor.fit(records)


def blend(rules: Estimate, learned: Estimate, weight: float) -> Estimate:
    """Mix the rules and the learned estimate: weight 0 is the rules, 1 the learned model.

    Times mix geometrically (errors are multiplicative). Memory takes the larger of the two while both are in
    use (0 < weight < 1), so a half-trained model never lowers a reservation; at weight 1 the learned 0.95
    quantile stands alone.
    """
    if weight <= 0:
        return rules
    if weight >= 1:
        return learned

    def geo(a: float, b: float) -> float:
        return math.exp((1 - weight) * math.log(max(a, 1e-9)) + weight * math.log(max(b, 1e-9)))

    return Estimate(geo(rules.runtime_s, learned.runtime_s), geo(rules.load_s, learned.load_s),
                    max(rules.peak_mem_gb, learned.peak_mem_gb))


class Scores(NamedTuple):
    """Errors of one method over the held-out rows of a cross-validation."""

    runtime_mape: float  # mean |predicted - real| / real
    runtime_mae_s: float
    mem_coverage: float  # share of real peaks <= predicted
    mem_over_reservation_gb: float  # mean of max(0, predicted - real)


class CVReport(NamedTuple):
    """Time-ordered cross-validation of the rules, the learned model and their blend."""

    folds: int
    n_test: int
    blend_weight: float
    rules: Scores
    learned: Scores
    blend: Scores


def _scores(pairs: Sequence[tuple[HistoryRecord, Estimate]]) -> Scores:
    runtime = [(r.runtime_s, e.runtime_s) for r, e in pairs if r.runtime_s > 0]
    memory = [(r.peak_mem_gb, e.peak_mem_gb) for r, e in pairs if r.peak_mem_gb is not None]
    mean = (lambda xs: sum(xs) / len(xs) if xs else math.nan)  # noqa: E731
    return Scores(
        runtime_mape=mean([abs(p - a) / a for a, p in runtime]), runtime_mae_s=mean([abs(p - a) for a, p in runtime]),
        mem_coverage=mean([1.0 if a <= p else 0.0 for a, p in memory]),
        mem_over_reservation_gb=mean([max(0.0, p - a) for a, p in memory]),
    )


def time_ordered_cv(records: Sequence[HistoryRecord], folds: int = 5, blend_weight: float = 0.5) -> CVReport:
    """Expanding-window cross-validation in time order.

    The records, sorted by `finished_at`, are cut into `folds + 1` consecutive blocks; fold k trains on blocks
    0..k-1 and predicts block k. A held-out row's history features use every record that finished before it,
    as the scheduler would have had them; its own and later outcomes are never seen.

    Args:
        records: The history.
        folds: Number of train/test splits (>= 1).
        blend_weight: The learned weight of the blend scored alongside the rules and the learned model.

    Raises:
        ValueError: Fewer records than `folds + 1`.
    """
    ordered = sorted(records, key=lambda r: r.finished_at)
    if folds < 1 or len(ordered) < folds + 1:
        raise ValueError(f"time-ordered CV with {folds} folds needs at least {folds + 1} records, got {len(ordered)}")
    bounds = [round(i * len(ordered) / (folds + 1)) for i in range(folds + 2)]
    rows = with_history_features(ordered, _reference)
    methods: dict[str, list[tuple[HistoryRecord, Estimate]]] = {"rules": [], "learned": [], "blend": []}
    for k in range(1, folds + 1):
        model = LearnedPredictor.fit(ordered[: bounds[k]])
        held_out = range(bounds[k], bounds[k + 1])
        rules = [estimate(ordered[i].features) for i in held_out]
        learned = model._predict_rows([ordered[i].features for i in held_out], [rows[i] for i in held_out], rules)
        for i, rule, guess in zip(held_out, rules, learned, strict=True):
            methods["rules"].append((ordered[i], rule))
            methods["learned"].append((ordered[i], guess))
            informed = _base(ordered[i].features, rule, rows[i])
            methods["blend"].append((ordered[i], blend(informed, guess, blend_weight)))
    return CVReport(folds, len(methods["rules"]), blend_weight, _scores(methods["rules"]),
                    _scores(methods["learned"]), _scores(methods["blend"]))
