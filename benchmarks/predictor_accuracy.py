"""Held-out error of the rules, the blend and LightGBM as the history grows, on a real history in DuckDB.

The real CPU history comes from `make history`; the simulated one is drawn from the simulator's truth
(`simulate.history`), which shares no code or constants with the predictor. Two splits, both measured in this
one invocation on the same records:
- time-ordered: train on the first n records, test on the newest 20% (what the scheduler faces next run);
- held-out pairs: the (model, task) pairs are dealt into five folds; each fold's records are predicted by a model
  trained on the other folds' records (the first n of them), so every pair is held out once and the error is pooled
  over all records. (One random fifth of the pairs, as this script did before, gave a 3-pair test set on the real
  history, whose error swung from 19% to 42% with the draw.)
Prompt lengths are counted with each model's own tokenizer (`harness.tokencounts`), for records written before counts
were measured too (`--profile ''` keeps what the store says).
Usage: `python benchmarks/predictor_accuracy.py [--db .spectrabench/history/spectrabench.duckdb]`
(`make history` builds that store).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spectrabench.prediction.features import HistoryRecord

REPO = Path(__file__).resolve().parent.parent
SIZES = (25, 50, 100, 200)
SIM_SIZES = (25, 50, 100, 200, 400, 800)
SIM_POOL = "A100-80GB,H100-80GB,H200-141GB,L4-24GB"
PAIR_FOLDS = 5


def _mape(pairs: Sequence[tuple[float, float]]) -> float:
    return sum(abs(p - a) / a for a, p in pairs) / len(pairs) if pairs else math.nan


Rows = dict[str, list[tuple[float, float, float | None, float]]]


def _predict(train: list[HistoryRecord], test: list[HistoryRecord], rows: Rows | None = None) -> Rows:
    """(actual runtime, predicted runtime, actual peak, predicted peak) of each test record, per method."""
    from spectrabench.prediction.learned import LearnedPredictor, blend, history_index, informed_rules
    from spectrabench.prediction.rules import estimate

    model = LearnedPredictor.fit(train)
    index = history_index(train)
    results: Rows = rows if rows is not None else {"rules": [], "blend": [], "lightgbm": []}
    for record in test:
        rules = estimate(record.features)
        learned = model.predict_indexed(record.features, index)
        informed = informed_rules(record.features, index)
        for name, guess in (("rules", rules), ("blend", blend(informed, learned, 0.5)), ("lightgbm", learned)):
            results[name].append((record.runtime_s, guess.runtime_s, record.peak_mem_gb, guess.peak_mem_gb))
    return results


def _evaluate(train: list[HistoryRecord], test: list[HistoryRecord]) -> dict[str, tuple[float, float, float]]:
    return _score(_predict(train, test))


def _pair_folds(history: list[HistoryRecord], seed: int
                ) -> list[tuple[list[HistoryRecord], list[HistoryRecord]]]:
    """(train, test) per fold: the (model, task) pairs, shuffled by `seed`, dealt into `PAIR_FOLDS` folds; each fold's
    records are the test, everything else (in time order) the training."""
    from spectrabench.prediction.pairweight import pair_folds

    return pair_folds(history, PAIR_FOLDS, seed)


def _held_out_pairs(folds: list[tuple[list[HistoryRecord], list[HistoryRecord]]], n: int | None
                    ) -> dict[str, tuple[float, float, float]]:
    """Errors pooled over every fold's test records, each fold trained on its first `n` records (None: all)."""
    rows: Rows = {"rules": [], "blend": [], "lightgbm": []}
    for train, test in folds:
        _predict(train[:n] if n is not None else train, test, rows)
    return _score(rows)


def _score(results: Rows) -> dict[str, tuple[float, float, float]]:
    out = {}
    for name, rows in results.items():
        mem = [(a, p) for _, _, a, p in rows if a is not None]
        coverage = sum(1 for a, p in mem if a <= p) / len(mem) if mem else math.nan
        over = sum(max(0.0, p - a) for a, p in mem) / len(mem) if mem else math.nan
        out[name] = (_mape([(a, p) for a, p, _, _ in rows if a > 0]), coverage, over)
    return out


def _print(title: str, rows: list[tuple[int, dict[str, tuple[float, float, float]]]]) -> None:
    print(f"\n{title}")
    print(f"{'train n':>8}  {'rules MAPE':>10} {'blend MAPE':>10} {'LGBM MAPE':>10}  {'LGBM mem cover':>14} "
          f"{'LGBM over GB':>12}  {'rules cover':>11}")
    for n, r in rows:
        print(f"{'all' if n < 0 else n:>8}  {r['rules'][0]:>10.1%} {r['blend'][0]:>10.1%} {r['lightgbm'][0]:>10.1%}  "
              f"{r['lightgbm'][1]:>14.1%} {r['lightgbm'][2]:>12.3f}  {r['rules'][1]:>11.1%}")


def _curves(label: str, history: list[HistoryRecord], seed: int, sizes: Sequence[int],
            floor: Sequence[float] | None = None, deals: int = 1) -> None:
    """Both learning curves of one history; with `floor` (each record's noiseless runtime, known only for a
    simulated history), the MAPE of that runtime on the same test records: what no predictor can beat."""
    print(f"\n=== {label}: {len(history)} task records ===")
    cut = int(len(history) * 0.8)
    past, future = history[:cut], history[cut:]
    _print(f"time-ordered: test on the newest {len(future)} records",
           [(n, _evaluate(past[:n], future)) for n in sizes if n <= len(past)] +
           ([(len(past), _evaluate(past, future))] if len(past) not in sizes else []))
    folds = _pair_folds(history, seed)
    smallest = min(len(train) for train, _ in folds)  # every fold has at least this many records to train on
    n_pairs = len({(r.model, r.task) for r in history})
    _print(f"held-out pairs: {n_pairs} (model, task) pairs dealt into {PAIR_FOLDS} folds; every record predicted by a "
           f"model trained on the first n records of the other folds (all: {smallest} or more)",
           [(n, _held_out_pairs(folds, n)) for n in sizes if n <= smallest] + [(-1, _held_out_pairs(folds, None))])
    if deals > 1:
        # With 16 pairs, which four are held out together moves the figure by a point or two: every deal is shown.
        n = max(s for s in sizes if s <= smallest)
        figures = []
        for deal in range(seed, seed + deals):
            deal_folds = _pair_folds(history, deal)
            if min(len(train) for train, _ in deal_folds) >= n:
                figures.append(_held_out_pairs(deal_folds, n)["lightgbm"][0])
        print(f"held-out pairs, LGBM MAPE at {n} records over {len(figures)} deals of the pairs (seeds {seed}-"
              f"{seed + deals - 1}): {', '.join(f'{f:.1%}' for f in figures)}; mean {sum(figures) / len(figures):.1%}")
    if floor is not None:
        expected = {id(r): f for r, f in zip(history, floor, strict=True)}
        print(f"noise floor: the truth's own noiseless runtime scores MAPE "
              f"{_mape([(r.runtime_s, expected[id(r)]) for r in future]):.1%} on the newest records and "
              f"{_mape([(r.runtime_s, expected[id(r)]) for r in history]):.1%} over all records (the held-out pairs)")


def _recount(db: Path, history: list[HistoryRecord], profile_name: str, model_cache: Path
             ) -> list[HistoryRecord]:
    """The records with their prompt lengths counted by each model's tokenizer, as the predictor's training and
    planning load them (`store.learning.load_history`)."""
    from spectrabench.harness.tokencounts import scales_for
    from spectrabench.profiles import load_profile
    from spectrabench.settings import Settings
    from spectrabench.store.learning import load_history

    settings = Settings(model_cache_dir=model_cache)
    out = load_history(db, scales_for(load_profile(profile_name, settings), settings))
    changed = sum(a.features.token_scale != b.features.token_scale for a, b in zip(history, out, strict=True))
    counted = sum(r.features.token_scale is not None for r in out)
    print(f"prompt tokens: {counted} of {len(out)} records counted with their model's tokenizer "
          f"({changed} recounted now, from the {profile_name} profile's tokenizers in {model_cache})")
    return out


def main() -> None:
    """Print both learning curves on the real CPU history, then on a history drawn from the simulator."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", type=Path, default=REPO / ".spectrabench" / "history" / "spectrabench.duckdb")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--deals", type=int, default=5,
                        help="deals of the real history's pairs into folds to show the held-out figure for")
    parser.add_argument("--simulated", type=int, default=1000, metavar="N",
                        help="records in the simulated history (0: skip it)")
    parser.add_argument("--pool", default=SIM_POOL, help="devices the simulated history ran on")
    parser.add_argument("--profile", default="smoke",
                        help="the profile the real history ran ('' to skip): its models' tokenizers count the prompt "
                             "tokens of records written before counts were measured, as training does")
    parser.add_argument("--model-cache", type=Path, default=REPO / ".spectrabench" / "models",
                        help="where `make history` built the smoke models")
    args = parser.parse_args()
    from spectrabench.store.learning import history_and_left_out

    if args.db.exists():
        # As training does, the tasks timed while other work competed for the cores are left out.
        history, left_out = history_and_left_out(args.db)
        if args.profile:
            history = _recount(args.db, history, args.profile, args.model_cache)
        busy = f"; {left_out} more left out, timed on a busy machine" if left_out else ""
        if len(history) >= 30:
            _curves(f"real CPU history ({args.db}{busy})", history, args.seed, SIZES, deals=args.deals)
        else:
            print(f"\n{args.db} has {len(history)} records{busy}: too few for a learning curve (need 30)")
    else:
        print(f"\nno store at {args.db}: run `make history` for the real CPU history")
    if args.simulated:
        from spectrabench.profiles import load_profile
        from spectrabench.settings import Settings
        from spectrabench.simulate.specs import parse_pool
        from spectrabench.simulated_history import simulated_history

        profile = load_profile("extended", Settings())
        from spectrabench.simulate.history import draw_records
        from spectrabench.simulate.truth import expected_cost
        from spectrabench.simulate.workload import sim_job_for, sim_task

        pool = parse_pool(args.pool)
        drawn = simulated_history(profile, pool, args.simulated, seed=args.seed)
        # The same draws as the truth saw them: each record's cost without noise or outliers.
        floor = [expected_cost(sim_job_for(r.model, (sim_task(r.task, r.limit),), r.batch_size), r.device).runtime_s
                 for r in draw_records(profile, pool, args.simulated, seed=args.seed)]
        _curves(f"simulated history (extended profile on {args.pool}, truth noise 0.15, 2% outliers)", drawn,
                args.seed, SIM_SIZES, floor)


if __name__ == "__main__":
    main()
