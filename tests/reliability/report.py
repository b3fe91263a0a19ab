"""The reliability report: each guarantee, the test that proves it, and its latest figures.

The tests of tests/reliability that prove a guarantee of issue 21 call :func:`record`
(through the ``figure`` fixture of conftest.py) with one line of figures. The line is
printed, listed at the end of the pytest run, and, when ``RELIABILITY_FIGURES`` names
a file, appended to it as one JSON object. ``make reliability`` runs the tests with
that variable set, then renders the file into docs/reliability.md::

    python tests/reliability/report.py FIGURES.jsonl docs/reliability.md

A guarantee whose test did not record a figure in the run is shown as not measured.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
#: The environment variable naming the file the figures are appended to.
FIGURES_ENV = "RELIABILITY_FIGURES"
#: The lines recorded in this pytest session, for the terminal summary.
SESSION: list[str] = []


@dataclass(frozen=True)
class Guarantee:
    """One promise the report carries, with the figure that must hold for it."""

    title: str
    promise: str
    must: str  # the figures that must hold, in words


#: The report's guarantees in order, by the key their test records under.
GUARANTEES: dict[str, Guarantee] = {
    "kill-trials": Guarantee(
        "Random kills on the real control plane",
        "Workers are SIGKILLed and their pods force-deleted (`kubectl delete pod --force "
        "--grace-period=0`) several times per batch, at random items, while the operator "
        "and the process kubelet run the batch. The worker uses named steps.",
        "lost outputs 0, duplicates 0, finished steps redone 0, at most the one step in "
        "flight redone per kill",
    ),
    "apiserver-outage": Guarantee(
        "API server outage",
        "kube-apiserver is stopped for 30 s in the middle of a run and started again on "
        "the same etcd; the worker and the operator stay up.",
        "progress lost 0, nothing redone, the batch completes",
    ),
    "operator-crash-loop": Guarantee(
        "Operator crash loop",
        "The operator is SIGKILLed and restarted again and again during a run, a worker "
        "killed while it is down; the pods are polled throughout.",
        "never two live workers for the batch; the batch completes with every output once",
    ),
    "zombie-writer": Guarantee(
        "Zombie writer",
        "A worker the operator has replaced (its kubelet reported it dead while it was only "
        "frozen) wakes up and goes on writing.",
        "0 of its writes land; the status never moves backwards",
    ),
    "graceful-eviction": Guarantee(
        "Graceful eviction",
        "The worker's pod is evicted through the Eviction API (as `kubectl drain` does), "
        "several times in one run.",
        "0 items redone",
    ),
    "bad-input": Guarantee(
        "Bad input catalogue",
        "Malformed manifests go through `kubectl apply` (the real API server) and "
        "`resumable run`; malformed `RESUMABLE_*` values and corrupt checkpoints through a "
        "real worker process.",
        "every one refused with the field named; tracebacks 0, silently accepted 0",
    ),
    "least-privilege": Guarantee(
        "Least privilege",
        "A worker pod's own token (from the process kubelet, bound to the pod) asks for "
        "other batches, pods, secrets and RBAC; the operator's verbs are listed in "
        "[security.md](security.md#the-operators-own-rights).",
        "every request beyond its own batch's status refused",
    ),
}


def record(key: str, test: str, line: str, figures: dict[str, Any]) -> None:
    """Print one test's figure line and append it to ``$RELIABILITY_FIGURES`` if set."""
    if key not in GUARANTEES:
        raise KeyError(f"{key!r} is not a guarantee of the report: {sorted(GUARANTEES)}")
    text = f"[{key}] {line}"
    print(text)
    SESSION.append(text)
    path = os.environ.get(FIGURES_ENV, "").strip()
    if path:
        entry = {"key": key, "test": test, "line": line, "figures": figures}
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(entry, sort_keys=True) + "\n")


def read_figures(path: Path) -> dict[str, dict[str, Any]]:
    """The last record of each key in a figures file."""
    latest: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                entry = json.loads(line)
                latest[entry["key"]] = entry
    return latest


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


def render(latest: dict[str, dict[str, Any]], *, when: str, commit: str) -> str:
    """docs/reliability.md from the latest record of each guarantee."""
    parts = [
        "# Reliability: the guarantees and their latest figures",
        "",
        "Generated by `make reliability` (tests/reliability/report.py): do not edit by hand.",
        "Each guarantee below is proved by a test in tests/reliability that runs in every",
        "`make test` on the real control plane (kube-apiserver and etcd, the operator as a",
        "process, pods run by the process kubelet, see [development.md](development.md)).",
        "`make reliability` runs the same tests and writes their figures here. The random",
        "kill trials run 30 trials in CI; `RELIABILITY_KILL_TRIALS=300 make reliability`",
        "runs 300 by hand.",
        "",
        f"Last run: {when}, commit `{commit}`, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}.",
        "",
    ]
    for number, (key, guarantee) in enumerate(GUARANTEES.items(), start=1):
        parts += [f"## {number}. {guarantee.title}", "", guarantee.promise, ""]
        parts += [f"- Must hold: {guarantee.must}."]
        entry = latest.get(key)
        if entry is None:
            parts += ["- Latest figures: not measured in the last run.", ""]
            continue
        parts += [f"- Proved by: `{entry['test']}`", f"- Latest figures: {entry['line']}", ""]
    return "\n".join(parts)


def main(argv: list[str]) -> int:
    """``report.py FIGURES OUT``: render the figures file into the markdown page."""
    if len(argv) != 2:
        print("usage: report.py FIGURES.jsonl OUT.md", file=sys.stderr)
        return 2
    figures, out = Path(argv[0]), Path(argv[1])
    latest = read_figures(figures)
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    out.write_text(render(latest, when=when, commit=_commit()))
    missing = [key for key in GUARANTEES if key not in latest]
    print(f"{out}: {len(latest)} of {len(GUARANTEES)} guarantees measured", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
