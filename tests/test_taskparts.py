"""Parts of an lm-eval group: names, and slices that cover every leaf exactly once."""

from __future__ import annotations

import pytest

from spectrabench.taskparts import TaskPart, file_stem, leaf_slice, parse_part, part_name, part_share, whole_name


def test_names_round_trip() -> None:
    assert part_name("mmlu", 2, 4) == "mmlu[2/4]"
    assert parse_part("mmlu[2/4]") == TaskPart("mmlu", 2, 4)
    assert parse_part("mmlu") is None and parse_part("mmlu[5/4]") is None and parse_part("mmlu[0/4]") is None
    assert whole_name("kmmlu_hard[1/3]") == "kmmlu_hard" and whole_name("kmmlu_hard") == "kmmlu_hard"
    assert file_stem("mmlu[2/4]") == "mmlu[2of4]" and "/" not in file_stem("a[1/2]")
    with pytest.raises(ValueError, match="does not exist"):
        part_name("mmlu", 5, 4)


@pytest.mark.parametrize(("leaves", "count"), [(57, 4), (45, 7), (5, 5), (2, 2), (6, 4)])
def test_slices_cover_every_leaf_once_and_differ_by_at_most_one(leaves: int, count: int) -> None:
    slices = [leaf_slice(leaves, i, count) for i in range(1, count + 1)]
    covered = [leaf for start, stop in slices for leaf in range(start, stop)]
    assert covered == list(range(leaves))
    sizes = [stop - start for start, stop in slices]
    assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1
    assert sum(part_share(leaves, i, count) for i in range(1, count + 1)) == pytest.approx(1.0)


def test_more_parts_than_leaves_is_refused() -> None:
    with pytest.raises(ValueError, match="does not exist"):
        leaf_slice(3, 1, 4)
