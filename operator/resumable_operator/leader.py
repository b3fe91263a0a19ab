"""Leader election through a ``coordination.k8s.io/v1`` Lease: one replica reconciles.

With more than one operator replica, each runs its watches (they only fill the
work queue) but only the holder of the Lease runs the queue's workers. The rules
are client-go's:

- the leader renews the Lease every ``retry`` seconds; when it has not managed
  to for ``renew_deadline`` seconds it stops leading (and the process exits, so
  the pod restarts as a standby with nothing left over);
- a standby takes the Lease over once it has seen the same renewal for
  ``lease_seconds`` by its own clock (never by comparing another host's
  timestamps), or at once when the holder released it;
- every write carries the ``resourceVersion`` it read, so of two replicas
  trying at once the API server accepts one and refuses the other (409).

``renew_deadline`` is shorter than ``lease_seconds``, so a leader that lost
touch stops before any standby may start. :func:`next_step` holds the decision,
pure; :class:`LeaderElector` does the reads and writes around it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from resumable.kubeapi import ApiError, KubeApi, NotFoundError

log = logging.getLogger("resumable_operator")

Step = Literal["create", "renew", "acquire", "wait"]


@dataclass(frozen=True)
class LeaseView:
    """What a replica needs from the Lease it read."""

    holder: str
    renew_time: str
    duration: int
    transitions: int
    resource_version: str

    @classmethod
    def from_object(cls, obj: dict[str, Any]) -> LeaseView:
        """Read the fields of a Lease object (missing ones as empty)."""
        spec = obj.get("spec") or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            renew_time=str(spec.get("renewTime") or ""),
            duration=int(spec.get("leaseDurationSeconds") or 0),
            transitions=int(spec.get("leaseTransitions") or 0),
            resource_version=str((obj.get("metadata") or {}).get("resourceVersion") or ""),
        )


def next_step(
    lease: LeaseView | None, me: str, *, unchanged_for: float, lease_seconds: float
) -> Step:
    """What this replica does next, given the Lease as read.

    ``unchanged_for`` is how long, by this replica's own clock, the Lease has
    shown the same holder and renewal.
    """
    if lease is None:
        return "create"
    if lease.holder == me:
        return "renew"
    if not lease.holder:
        return "acquire"  # released by a leader that stopped cleanly
    if unchanged_for >= (lease.duration or lease_seconds):
        return "acquire"  # its holder stopped renewing
    return "wait"


def micro_time(now: datetime | None = None) -> str:
    """A Lease time (MicroTime): RFC 3339 with microseconds, UTC."""
    return (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Keeps trying to hold one Lease; calls back when it starts and stops leading."""

    def __init__(
        self,
        api: KubeApi,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_seconds: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_seconds = lease_seconds
        self.renew_deadline = lease_seconds * 2 / 3
        self.retry = lease_seconds / 7.5
        self.clock = clock
        self.leading = False
        self._last_renew = 0.0
        self._seen: tuple[str, str] | None = None  # (holder, renewTime) last read
        self._seen_since = 0.0
        self._announced_holder = ""
        self._held = False  # the last round wrote the Lease as its holder

    @property
    def path(self) -> str:
        """The Lease's API path."""
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases/{self.name}"

    def _body(self, lease: LeaseView | None, *, acquire: bool) -> dict[str, Any]:
        now = micro_time()
        spec: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.lease_seconds),
            "renewTime": now,
        }
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if lease is not None:
            metadata["resourceVersion"] = lease.resource_version
            spec["leaseTransitions"] = lease.transitions + (1 if acquire else 0)
        else:
            spec["leaseTransitions"] = 0
        if acquire or lease is None:
            spec["acquireTime"] = now
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": spec,
        }

    def _until(self) -> float | None:
        """While holding the Lease, the time.monotonic() by which a round must end.

        A leader's requests are cut short at its renew deadline, so a server that
        answers slowly cannot keep it leading past the point where a standby may
        take over.
        """
        if not self._held:
            return None
        left = self._last_renew + self.renew_deadline - self.clock()
        if left <= 0:
            # Past it, this replica may no longer count on the Lease: its next
            # round reads it as any standby does (and re-acquires it, if free).
            self._held = False
            return None
        return time.monotonic() + left

    def _read(self) -> LeaseView | None:
        try:
            obj = self.api.request("GET", self.path, until=self._until())
        except NotFoundError:
            return None
        return LeaseView.from_object(obj)

    def try_once(self) -> bool:
        """One round: read, decide, write. Returns True when this replica holds the Lease.

        Blocking (API calls); raises ApiError when the server cannot be reached.
        """
        until = self._until()
        lease = self._read()
        now = self.clock()
        if lease is not None:
            seen = (lease.holder, lease.renew_time)
            if seen != self._seen:
                self._seen, self._seen_since = seen, now
        step = next_step(
            lease, self.identity, unchanged_for=now - self._seen_since,
            lease_seconds=self.lease_seconds,
        )  # fmt: skip
        held, self._held = self._held, False
        if step == "wait":
            assert lease is not None
            if lease.holder != self._announced_holder:
                self._announced_holder = lease.holder
                where = f"{self.namespace}/{self.name}"
                log.info("standby: lease %s is held by %s", where, lease.holder)
            return False
        if step == "renew" and not held:
            # Ours from an earlier life of this identity: treat it as a fresh acquire.
            step = "acquire"
        try:
            if step == "create":
                self.api.request(
                    "POST",
                    f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases",
                    body=self._body(None, acquire=True),
                    until=until,
                )
            else:
                body = self._body(lease, acquire=step == "acquire")
                self.api.request("PUT", self.path, body=body, until=until)
        except ApiError as exc:
            if exc.status == 409:  # another replica wrote first: read again next round
                return False
            self._held = held  # not known to be lost: the next round may renew
            raise
        self._last_renew = self.clock()
        self._held = True
        return True

    def release(self) -> None:
        """Give the Lease up at a clean stop, so a standby takes over at once."""
        if not self.leading:
            return
        self.leading = False
        try:
            lease = self._read()
            if lease is None or lease.holder != self.identity:
                return
            body = self._body(lease, acquire=False)
            body["spec"]["holderIdentity"] = None
            body["spec"]["leaseDurationSeconds"] = 1
            self.api.request("PUT", self.path, body=body, timeout=5.0)
            log.info("released lease %s/%s", self.namespace, self.name)
        except ApiError as exc:
            log.warning("could not release lease %s/%s: %s", self.namespace, self.name, exc)

    async def run(
        self,
        on_started: Callable[[], Awaitable[None] | None],
        on_stopped: Callable[[], Awaitable[None] | None],
    ) -> None:
        """Try to lead until leadership is lost (then call on_stopped and return)."""
        while True:
            held = False
            round_ = asyncio.ensure_future(asyncio.to_thread(self.try_once))
            round_.add_done_callback(_consume)
            # A leader waits for its round no longer than its renew deadline: past
            # it, it stops acting even if the round (cut short by its request
            # deadline) has not returned yet.
            left = self._last_renew + self.renew_deadline - self.clock() if self.leading else None
            done, _ = await asyncio.wait({round_}, timeout=None if left is None else max(left, 0))
            if round_ in done:
                try:
                    held = round_.result()
                except ApiError as exc:
                    log.warning("lease %s/%s: %s", self.namespace, self.name, exc)
            taken = self._seen is not None and self._seen[0] not in ("", self.identity)
            if self.leading and not held and taken:
                self._last_renew = -float("inf")  # another replica holds it now: stop at once
            if held and not self.leading:
                self.leading = True
                log.info("leading: %s holds lease %s/%s", self.identity, self.namespace, self.name)
                result = on_started()
                if result is not None:
                    await result
            elif self.leading and self.clock() - self._last_renew > self.renew_deadline:
                self.leading = False
                log.error("lost lease %s/%s: stopping", self.namespace, self.name)
                result = on_stopped()
                if result is not None:
                    await result
                return
            await asyncio.sleep(self.retry * random.uniform(0.9, 1.1))


def _consume(future: asyncio.Future[bool]) -> None:
    """Retrieve a round's outcome, so one given up on logs no 'never retrieved' error."""
    if not future.cancelled():
        future.exception()
