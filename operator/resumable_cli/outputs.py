"""``resumable outputs NAME``: a batch's item outputs, in item order, each once.

Reads the status first (a cluster batch through :mod:`resumable_cli.kube`, or
with ``--local``/``--state-dir`` what ``resumable run`` keeps), then the store
spec.outputs names, and shows only the items that status covers
(:func:`resumable.outputs.read_outputs`): an object written by a worker that
died before its position was saved is a redo's to replace, never shown. Prints
JSON lines (``{"index", "key", "output"}``) to stdout, or with ``--to DIR``
writes one ``<index>.json`` per item there.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from resumable import ResumableError, atomic_write
from resumable.outputs import open_outputs, read_outputs
from resumable.v1alpha1 import ResumableBatch, ResumableBatchStatus
from resumable_cli import kube
from resumable_cli.errors import CliError
from resumable_runner.outputs import open_local
from resumable_runner.runner import LocalRunError, read_local_status


def _cluster_store(args: argparse.Namespace) -> tuple[Any, ResumableBatchStatus]:
    """The store and status of a batch in the cluster."""
    api = kube.connect(args)
    ns = kube.namespace(args)
    batch = ResumableBatch.model_validate(kube.get_batch(api, ns, args.name))
    spec = batch.spec.outputs
    if spec.s3 is None and spec.status is None:
        raise CliError(
            f"resumablebatch {ns}/{args.name} keeps its outputs in a directory inside its "
            "pods (spec.outputs.directory or RESUMABLE_OUTPUT_DIR), which the CLI cannot "
            "read from here: read the volume, or use spec.outputs.s3"
        )
    store = open_outputs(
        spec,
        status=batch.status,
        namespace=ns,
        name=args.name,
        uid=batch.metadata.uid or "",
    )
    return store, batch.status


def _local_store(args: argparse.Namespace) -> tuple[Any, ResumableBatchStatus]:
    """The store and status of a batch `resumable run` runs (or ran) here."""
    directory = Path(args.state_dir or Path(".resumable") / args.name)
    try:
        status = read_local_status(directory, args.name)
        return open_local(directory, args.name, status), status
    except (LocalRunError, ValueError) as exc:
        raise CliError(str(exc)) from exc


def cmd_outputs(args: argparse.Namespace) -> int:
    """List (JSON lines) or download (--to DIR) the outputs the batch's status covers."""
    try:
        store, status = _local_store(args) if args.local or args.state_dir else _cluster_store(args)
        target = Path(args.to) if args.to else None
        if target is not None:
            target.mkdir(parents=True, exist_ok=True)
        count = 0
        for index, value in read_outputs(store, status):
            if target is not None:
                atomic_write(target / f"{index:08d}.json", json.dumps(value).encode() + b"\n")
            else:
                sys.stdout.write(json.dumps(value, ensure_ascii=False) + "\n")
            count += 1
    except ResumableError as exc:
        raise CliError(str(exc)) from exc
    except OSError as exc:
        raise CliError(f"{exc.filename or ''}: {exc.strerror or exc}") from exc
    if target is not None:
        print(f"{count} outputs written to {target}", file=sys.stderr)
    return 0
