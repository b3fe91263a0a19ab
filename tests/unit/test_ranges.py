"""IndexSet, the "0-46,48" range compression of completed items, checked against a Python set."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resumable import IndexSet

# Small indices so that sets have runs, holes and adjacent ranges to merge.
indices = st.sets(st.integers(min_value=0, max_value=120), max_size=80)
ranges = st.lists(
    st.tuples(st.integers(0, 120), st.integers(0, 12)).map(lambda t: (t[0], t[0] + t[1])),
    max_size=20,
)


def model_str(model: set[int]) -> str:
    """The canonical text of a set: maximal runs, ascending, single indices bare."""
    parts, ordered = [], sorted(model)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        lo, hi = ordered[i], ordered[j]
        parts.append(str(lo) if lo == hi else f"{lo}-{hi}")
        i = j + 1
    return ",".join(parts)


@given(indices)
def test_parse_of_str_gives_back_the_same_set(model: set[int]) -> None:
    s = IndexSet(model)
    assert IndexSet.parse(str(s)) == s


@given(indices)
def test_text_is_the_canonical_run_form(model: set[int]) -> None:
    assert str(IndexSet(model)) == model_str(model)


@given(indices, st.integers(min_value=-2, max_value=130))
def test_membership_length_and_order_match_a_python_set(model: set[int], probe: int) -> None:
    s = IndexSet(model)
    assert (probe in s) == (probe in model)
    assert len(s) == len(model)
    assert list(s) == sorted(model)


@given(indices, st.integers(min_value=0, max_value=130))
def test_first_missing_is_the_smallest_absent_index_from_start(model: set[int], start: int) -> None:
    expected = start
    while expected in model:
        expected += 1
    assert IndexSet(model).first_missing(start) == expected


@given(indices, st.integers(min_value=0, max_value=130))
def test_covers_means_every_index_below_total_is_present(model: set[int], total: int) -> None:
    assert IndexSet(model).covers(total) == all(i in model for i in range(total))


@given(indices, ranges)
def test_add_range_merges_like_a_set_union(model: set[int], spans: list[tuple[int, int]]) -> None:
    s, model = IndexSet(model), set(model)
    for lo, hi in spans:
        s.add_range(lo, hi)
        model |= set(range(lo, hi + 1))
    assert str(s) == model_str(model)
    assert s == IndexSet(model)


@given(indices, indices)
def test_equality_is_set_equality(a: set[int], b: set[int]) -> None:
    assert (IndexSet(a) == IndexSet(b)) == (a == b)


@given(indices)
def test_copy_is_independent(model: set[int]) -> None:
    s = IndexSet(model)
    c = s.copy()
    c.add(500)
    assert 500 not in s
    assert c == IndexSet(model | {500})


def test_adjacent_ranges_merge_into_one() -> None:
    s = IndexSet.parse("0-4,6")
    s.add(5)
    assert str(s) == "0-6"


def test_parse_tolerates_spaces_and_empty_parts() -> None:
    assert str(IndexSet.parse(" 3 , 0-1,,2 ")) == "0-3"
    assert str(IndexSet.parse("")) == ""


@pytest.mark.parametrize("text", ["a", "3-1", "-1", "1-x", "0-46,48-"])
def test_parse_refuses_bad_ranges_naming_the_part(text: str) -> None:
    with pytest.raises(ValueError, match="bad index range"):
        IndexSet.parse(text)


@pytest.mark.parametrize(("lo", "hi"), [(-1, 3), (5, 4)])
def test_add_range_refuses_a_negative_or_reversed_range(lo: int, hi: int) -> None:
    with pytest.raises(ValueError, match="bad range"):
        IndexSet().add_range(lo, hi)


def test_a_huge_batch_with_a_few_holes_stays_a_few_bytes() -> None:
    s = IndexSet()
    s.add_range(500_001, 999_999)
    s.add_range(0, 46)
    s.add_range(48, 499_999)
    assert len(s) == 999_998
    assert s.first_missing() == 47
    assert str(s) == "0-46,48-499999,500001-999999"
    assert not s.covers(1_000_000)


@given(st.lists(st.tuples(st.integers(0, 150), st.integers(0, 20)), max_size=40))
def test_length_stays_exact_as_ranges_in_any_order_merge(spans: list[tuple[int, int]]) -> None:
    s = IndexSet()
    model: set[int] = set()
    for lo, width in spans:
        s.add_range(lo, lo + width)
        model.update(range(lo, lo + width + 1))
        assert len(s) == len(model)
    assert str(s) == model_str(model)
    assert len(s.copy()) == len(model)
