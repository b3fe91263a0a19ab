"""The rules :func:`resumable_core.reconcile.decide` applies, one policy per module.

Each takes the :class:`resumable_core.context.SyncContext` of the decision being
made and changes only its status and decision:

* :mod:`.accept`: first sight of a batch;
* :mod:`.rerun`: a new spec.runId starts over from item 1;
* :mod:`.recurring`: spec.window.recurrence starts a new run at each opening;
* :mod:`.totals`: the worker's item count differs from spec.totalItems;
* :mod:`.reopen`: a failed batch goes on after an edit that may fix it;
* :mod:`.pods`: stale and leftover pods, and which ended pods to keep;
* :mod:`.terminal`: a batch that succeeded or failed, and its TTL;
* :mod:`.suspend`: spec.suspend;
* :mod:`.window`: spec.window, outside which the batch waits as if suspended;
* :mod:`.attempts`: starting an attempt;
* :mod:`.active`: watching the active attempt until its pod ends;
* :mod:`.podcreate`: what became of creating its pod (created, refused for
  now, refused as invalid, name taken), as the executor reports it;
* :mod:`.failures`: how an attempt ended, and what follows (a table of actions),
  poison items included;
* :mod:`.backoff`: the restart budget and the delay before the next attempt.
"""
