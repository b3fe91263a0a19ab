"""``resumable get [NAME]``: batches in a namespace with progress, restarts and phase.

Reads the objects through :mod:`resumable_cli.kube` and prints them as
``kubectl get`` would: aligned columns, and "No resources found" on stderr.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from resumable_cli import kube


def _row(obj: dict[str, Any]) -> list[str]:
    """A batch's NAME, PROGRESS, RESTARTS and PHASE cells."""
    st = obj.get("status") or {}
    return [
        obj["metadata"]["name"],
        str(st.get("progress", "")),
        str(st.get("restarts", 0)),
        str(st.get("phase", "")),
    ]


def cmd_get(args: argparse.Namespace) -> int:
    """List batches with their progress."""
    api = kube.connect(args)  # first: without the kubernetes client it says what to install
    from resumable.kubeapi import batch_path

    ns = kube.namespace(args)
    if args.name:
        items = [kube.get_batch(api, ns, args.name)]
    else:
        items = api.request("GET", batch_path(ns)).get("items", [])
        if not items:  # as kubectl says it (on stderr: stdout stays empty), also for no namespace
            print(f"No resources found in {ns} namespace.", file=sys.stderr)
            return 0
    rows = [["NAME", "PROGRESS", "RESTARTS", "PHASE"]] + [_row(o) for o in items]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0
