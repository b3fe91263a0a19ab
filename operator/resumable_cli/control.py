"""``suspend``, ``resume``, ``rerun`` and ``retry-skipped``: the commands that change a
batch's spec.

Each reads the batch first: an ended batch is refused with how it can go on
(:func:`ended_error`, the cluster wording of
:func:`resumable_core.hints.resume_hint`), a resume of a batch that is not
suspended changes nothing and says so, and a rerun refuses the runId it already has.
"""

from __future__ import annotations

import argparse
import time
import uuid
from typing import Any

from resumable import constants as names
from resumable.v1alpha1 import ResumableBatch
from resumable_cli import kube
from resumable_cli.errors import CliError
from resumable_core import hints


def ended_error(name: str, namespace: str | None, hint: hints.ResumeHint, verb: str) -> str:
    """Why `suspend`/`resume` (verb) does nothing to an ended batch, and what to do instead.

    ``namespace`` is the one the user gave (-n), if any: the rerun command repeats it.
    """
    rerun = f"`resumable rerun {name}{f' -n {namespace}' if namespace else ''}`"
    if hint.way is hints.Way.RERUN:
        return (
            f"resumablebatch/{name} has succeeded, so there is nothing to {verb}: "
            f"{rerun} starts it again from item 1"
        )
    why = ""
    if hint.reason:
        message = " ".join(hint.message.split())
        why = f" ({hint.reason}{': ' + message if message else ''})"
    at = f"its checkpoint (item {hint.item})"
    if hint.way is hints.Way.RESTARTS_RAISED:  # the operator has not acted on it yet
        way = (
            f"spec.retry.maxRestarts is already {hint.max_restarts}, above its "
            f"{hint.restarts} restarts: the operator goes on from {at} once it sees that; "
            f"or {rerun} starts over from item 1"
        )
    elif hint.way is hints.Way.RAISE_MAX_RESTARTS:
        way = (
            f"raise spec.retry.maxRestarts above {hint.restarts} (its restarts) to go on from "
            f"{at}, or {rerun} to start over from item 1"
        )
    elif hint.way is hints.Way.EDIT_SPEC:
        way = (
            f"fix the cause and edit its spec (e.g. the template) to go on from {at}, "
            f"or {rerun} to start over from item 1"
        )
    else:
        way = f"no edit of its spec reopens it: {rerun} starts it over from item 1"
    return f"resumablebatch/{name} has failed{why}, so there is nothing to {verb}: {way}"


def _unended_batch(args: argparse.Namespace, verb: str) -> tuple[Any, str, ResumableBatch]:
    """The API client, namespace and batch for `suspend`/`resume` (verb) of ``args.name``.

    An ended batch is refused (CliError, :func:`ended_error`): there is nothing to suspend
    or resume, and the message says how it can go on instead.
    """
    api = kube.connect(args)
    ns = kube.namespace(args)
    batch = ResumableBatch.model_validate(kube.get_batch(api, ns, args.name))
    hint = hints.resume_hint(batch.spec, batch.status)
    if hint is not None:
        raise CliError(ended_error(args.name, args.namespace, hint, verb))
    return api, ns, batch


def cmd_suspend(args: argparse.Namespace) -> int:
    """Set spec.suspend=true: the worker stops gracefully and saves its checkpoint."""
    api, ns, _ = _unended_batch(args, "suspend")
    kube.patch_spec(api, ns, args.name, {"suspend": True})
    print(f"resumablebatch/{args.name} suspended")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    """Set spec.suspend=false: a new worker resumes from the checkpoint."""
    api, ns, batch = _unended_batch(args, "resume")
    if not batch.spec.suspend:  # nothing to change: say so rather than "resumed"
        if batch.status.phase == names.PHASE_SUSPENDED:
            print(
                f"resumablebatch/{args.name} is resuming already (spec.suspend is false; "
                "the operator starts its next worker)"
            )
        else:
            phase = batch.status.phase or "not reconciled yet"
            print(f"resumablebatch/{args.name} is not suspended ({phase}): nothing to resume")
        return 0
    kube.patch_spec(api, ns, args.name, {"suspend": False})
    print(f"resumablebatch/{args.name} resumed")
    return 0


def cmd_rerun(args: argparse.Namespace) -> int:
    """Change spec.runId: a clean rerun from item 1."""
    api = kube.connect(args)
    ns = kube.namespace(args)
    run_id = args.run_id or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    current = (kube.get_batch(api, ns, args.name).get("spec") or {}).get("runId", "")
    if run_id == current:
        raise CliError(
            f"resumablebatch/{args.name} already has runId {run_id!r}, so nothing would rerun: "
            "give a new --run-id, or none for a generated one"
        )
    kube.patch_spec(api, ns, args.name, {"runId": run_id, "suspend": False})
    print(f"resumablebatch/{args.name} rerun with runId {run_id}")
    return 0


def cmd_retry_skipped(args: argparse.Namespace) -> int:
    """Change spec.retrySkipped: the skipped items of a batch that succeeded go again."""
    api = kube.connect(args)
    ns = kube.namespace(args)
    batch = ResumableBatch.model_validate(kube.get_batch(api, ns, args.name))
    skipped = [s.index + 1 for s in batch.status.skipped]
    if not skipped:
        raise CliError(f"resumablebatch/{args.name} has no skipped item: nothing to retry")
    token = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    kube.patch_spec(api, ns, args.name, {"retrySkipped": token})
    which = ", ".join(str(i) for i in skipped)
    if batch.status.phase == names.PHASE_SUCCEEDED:
        print(f"resumablebatch/{args.name}: retrying skipped item(s) {which}")
    else:
        print(
            f"resumablebatch/{args.name}: skipped item(s) {which} are retried once the batch "
            f"has succeeded (it is {batch.status.phase or 'not reconciled yet'})"
        )
    return 0
