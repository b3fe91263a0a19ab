"""Sets of item indices, kept as sorted disjoint ranges and written as "0-46,48".

The checkpoint stores completed items in this form so status stays a few bytes
even for huge batches with a few holes. Used by the SDK, the operator and the CLI.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator


class IndexSet:
    """A set of non-negative integers stored as sorted, disjoint, non-adjacent ranges."""

    __slots__ = ("_count", "_ends", "_starts")

    def __init__(self, indices: Iterable[int] = ()) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []  # inclusive
        self._count = 0  # len(), kept as ranges change: the SDK asks at every checkpoint
        for index in indices:
            self.add(index)

    @classmethod
    def parse(cls, text: str) -> IndexSet:
        """Parse "0-46,48"; raise ValueError naming the bad part."""
        result = cls()
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            lo_text, sep, hi_text = part.partition("-")
            try:
                lo = int(lo_text)
                hi = int(hi_text) if sep else lo
            except ValueError:
                raise ValueError(f"bad index range {part!r} in {text!r}") from None
            if lo < 0 or hi < lo:
                raise ValueError(f"bad index range {part!r} in {text!r}")
            result.add_range(lo, hi)
        return result

    def add(self, index: int) -> None:
        """Add one index."""
        ends = self._ends
        if ends and ends[-1] + 1 == index:  # the common case: the next item in order
            ends[-1] = index
            self._count += 1
            return
        self.add_range(index, index)

    def add_range(self, lo: int, hi: int) -> None:
        """Add every index from lo to hi inclusive."""
        if lo < 0 or hi < lo:
            raise ValueError(f"bad range {lo}-{hi}")
        starts, ends = self._starts, self._ends
        # First range that could touch [lo, hi]: its end >= lo - 1.
        i = bisect.bisect_left(ends, lo - 1)
        j = i
        merged = 0
        while j < len(starts) and starts[j] <= hi + 1:
            merged += ends[j] - starts[j] + 1
            lo = min(lo, starts[j])
            hi = max(hi, ends[j])
            j += 1
        starts[i:j] = [lo]
        ends[i:j] = [hi]
        self._count += hi - lo + 1 - merged

    def __contains__(self, index: object) -> bool:
        if not isinstance(index, int):
            return False
        i = bisect.bisect_right(self._starts, index) - 1
        return i >= 0 and self._ends[i] >= index

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[int]:
        for s, e in zip(self._starts, self._ends, strict=True):
            yield from range(s, e + 1)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IndexSet):
            return NotImplemented
        return self._starts == other._starts and self._ends == other._ends

    def __hash__(self) -> int:  # pragma: no cover - mutable, not hashable in practice
        raise TypeError("IndexSet is mutable")

    def __repr__(self) -> str:
        return f"IndexSet({str(self)!r})"

    def __str__(self) -> str:
        if len(self._starts) == 1:  # no holes: the usual checkpoint
            s, e = self._starts[0], self._ends[0]
            return str(s) if s == e else f"{s}-{e}"
        return ",".join(
            str(s) if s == e else f"{s}-{e}" for s, e in zip(self._starts, self._ends, strict=True)
        )

    def spans(self) -> Iterator[tuple[int, int]]:
        """The ranges, as (first, last) pairs, in order."""
        return zip(self._starts, self._ends, strict=True)

    def update(self, other: IndexSet) -> None:
        """Add every index of ``other``."""
        for lo, hi in other.spans():
            self.add_range(lo, hi)

    def difference(self, other: IndexSet) -> IndexSet:
        """The indices of this set that are not in ``other``."""
        result = IndexSet()
        for lo, hi in self.spans():
            index = lo
            while index <= hi:
                if index in other:
                    index = other.first_missing(index)
                    continue
                j = bisect.bisect_right(other._starts, index)  # other's next range
                end = min(hi, other._starts[j] - 1) if j < len(other._starts) else hi
                result.add_range(index, end)
                index = end + 1
        return result

    def copy(self) -> IndexSet:
        """An independent copy."""
        other = IndexSet()
        other._starts = list(self._starts)
        other._ends = list(self._ends)
        other._count = self._count
        return other

    def first_missing(self, start: int = 0) -> int:
        """The smallest index >= start that is not in the set."""
        i = bisect.bisect_right(self._starts, start) - 1
        if i >= 0 and self._ends[i] >= start:
            return self._ends[i] + 1
        return start

    def covers(self, total: int) -> bool:
        """True when every index in range(total) is in the set."""
        return total == 0 or (
            bool(self._starts) and self._starts[0] == 0 and self._ends[0] >= total - 1
        )
