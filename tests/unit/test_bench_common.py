"""The benches' pure helpers: percentiles, tables and the API server's request counts.

The benches themselves run by hand (bench/); what they compute from their
measurements is checked here, so a figure in docs/performance.md is not an
artefact of a helper.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import percentile, request_counts, table, writes  # noqa: E402


def sample(verb: str, resource: str, subresource: str, code: str, value: str) -> str:
    """One apiserver_request_total line, labelled as kube-apiserver labels it."""
    labels = (
        f'code="{code}",component="apiserver",dry_run="",group="",resource="{resource}",'
        f'scope="resource",subresource="{subresource}",verb="{verb}",version="v1"'
    )
    return f"apiserver_request_total{{{labels}}} {value}"


METRICS = "\n".join(
    [
        "# HELP apiserver_request_total [STABLE] Counter of apiserver requests",
        "# TYPE apiserver_request_total counter",
        sample("PATCH", "resumablebatches", "status", "200", "120"),
        sample("PATCH", "resumablebatches", "status", "422", "3"),
        sample("POST", "pods", "", "201", "7"),
        sample("LIST", "pods", "", "200", "1e+03"),
        'apiserver_request_duration_seconds_count{verb="PATCH"} 99',
    ]
)


def test_percentile_interpolates_between_the_closest_ranks() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert percentile(values, 50) == 3.0
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 5.0
    assert percentile(values, 99) == pytest.approx(4.96)
    assert percentile([5.0, 1.0], 50) == 3.0  # unsorted input
    assert percentile([2.5], 99) == 2.5
    assert math.isnan(percentile([], 50))


def test_request_counts_sum_codes_by_verb_resource_and_subresource() -> None:
    counts = request_counts(METRICS)
    assert counts[("PATCH", "resumablebatches", "status")] == 123
    assert counts[("POST", "pods", "")] == 7
    assert counts[("LIST", "pods", "")] == 1000
    assert writes(counts) == 130  # the LIST and the other metric do not count


def test_table_aligns_numbers_right_and_trims_float_zeros() -> None:
    text = table(["strategy", "items", "ratio"], [["plain Job", 420, 2.1], ["ours", 205, 1.025]])
    assert text.splitlines() == [
        "strategy   items  ratio",
        "plain Job    420    2.1",
        "ours         205  1.025",
    ]
