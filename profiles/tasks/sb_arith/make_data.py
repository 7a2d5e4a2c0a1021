"""Generate sb_arith's test.jsonl and train.jsonl: small additions, subtractions and multiplications.

Deterministic (fixed seed): rerunning it rewrites byte-identical files. Run from anywhere:
`python profiles/tasks/sb_arith/make_data.py`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 20240517
TEST_PER_OP = 110
TRAIN_PER_OP = 10


def _problem(rng: random.Random, op: str) -> tuple[str, int]:
    if op == "+":
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        return f"What is {a} + {b}?", a + b
    if op == "-":
        a = rng.randint(10, 99)
        b = rng.randint(1, a)
        return f"What is {a} - {b}?", a - b
    a, b = rng.randint(2, 12), rng.randint(2, 12)
    return f"What is {a} * {b}?", a * b


def build() -> dict[str, list[dict[str, str]]]:
    """Draw unique problems per operation and split them into test and train."""
    rng = random.Random(SEED)
    seen: set[str] = set()
    splits: dict[str, list[dict[str, str]]] = {"test": [], "train": []}
    for op, name in (("+", "add"), ("-", "sub"), ("*", "mul")):
        drawn: list[tuple[str, int]] = []
        while len(drawn) < TEST_PER_OP + TRAIN_PER_OP:
            question, answer = _problem(rng, op)
            if question not in seen:
                seen.add(question)
                drawn.append((question, answer))
        for split, chunk in (("train", drawn[:TRAIN_PER_OP]), ("test", drawn[TRAIN_PER_OP:])):
            for index, (question, answer) in enumerate(chunk):
                splits[split].append({"id": f"{split}-{name}-{index:03d}", "question": question,
                                      "answer": str(answer)})
    # Interleave operations so that a --limit prefix sees all three.
    for split in splits.values():
        rng.shuffle(split)
    return splits


def render(records: list[dict[str, str]]) -> str:
    """One JSON object per line."""
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def main() -> None:
    """Write the splits next to this script."""
    for split, records in build().items():
        (HERE / f"{split}.jsonl").write_text(render(records), encoding="utf-8")


if __name__ == "__main__":
    main()
