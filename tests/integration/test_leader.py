"""Leader election against the real API server: one Lease, two (or more) replicas.

Each elector is what one operator replica runs (resumable_operator.leader); here
they are driven round by round, so a test decides who renews and when.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

from resumable.kubeapi import KubeApi
from resumable_operator.leader import LeaderElector, LeaseView
from tests.waiting import wait_for

LEASE_SECONDS = 3.0


def elector(api: KubeApi, namespace: str, identity: str, **kwargs: Any) -> LeaderElector:
    return LeaderElector(
        api, namespace=namespace, name="resumable-batch", identity=identity,
        lease_seconds=LEASE_SECONDS, **kwargs,
    )  # fmt: skip


def lease(api: KubeApi, namespace: str) -> dict[str, Any]:
    obj: dict[str, Any] = api.request(
        "GET", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/resumable-batch"
    )
    return obj["spec"]


def test_of_two_replicas_exactly_one_holds_the_lease_and_it_is_named_there(
    api: KubeApi, namespace: str
) -> None:
    a, b = elector(api, namespace, "replica-a"), elector(api, namespace, "replica-b")
    for _ in range(3):  # rounds, as each replica's loop would run them
        assert a.try_once() is True
        assert b.try_once() is False
    spec = lease(api, namespace)
    assert spec["holderIdentity"] == "replica-a"
    assert spec["leaseDurationSeconds"] == 3
    assert spec["leaseTransitions"] == 0


def test_a_standby_takes_over_one_lease_duration_after_the_leader_stops_renewing(
    api: KubeApi, namespace: str
) -> None:
    a, b = elector(api, namespace, "replica-a"), elector(api, namespace, "replica-b")
    assert a.try_once() is True
    assert b.try_once() is False
    seen = time.monotonic()  # the standby's clock starts at its first look
    # The leader dies: no more renewals. The standby keeps looking.
    wait_for(b.try_once, what="the standby to take over", timeout=10 * LEASE_SECONDS, every=0.2)
    waited = time.monotonic() - seen
    assert LEASE_SECONDS <= waited < LEASE_SECONDS + 2, waited
    spec = lease(api, namespace)
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("replica-b", 1)
    # The old leader, back, sees the new holder and does not take it back.
    assert a.try_once() is False


def test_a_renewing_leader_is_never_taken_over(api: KubeApi, namespace: str) -> None:
    a, b = elector(api, namespace, "replica-a"), elector(api, namespace, "replica-b")
    deadline = time.monotonic() + 2.5 * LEASE_SECONDS
    while time.monotonic() < deadline:
        assert a.try_once() is True
        assert b.try_once() is False
        time.sleep(LEASE_SECONDS / 7.5)
    assert lease(api, namespace)["holderIdentity"] == "replica-a"


def test_a_lease_released_at_a_clean_stop_is_taken_at_once(api: KubeApi, namespace: str) -> None:
    a, b = elector(api, namespace, "replica-a"), elector(api, namespace, "replica-b")
    assert a.try_once() is True
    a.leading = True  # as run() sets it
    assert b.try_once() is False
    a.release()
    assert lease(api, namespace).get("holderIdentity") is None  # the server drops a null
    assert b.try_once() is True  # no lease duration to wait out
    assert lease(api, namespace)["holderIdentity"] == "replica-b"


def test_of_two_standbys_taking_an_expired_lease_at_once_the_server_accepts_one(
    api: KubeApi, namespace: str
) -> None:
    a = elector(api, namespace, "replica-a")
    assert a.try_once() is True
    a.leading = True
    a.release()
    b, c = elector(api, namespace, "replica-b"), elector(api, namespace, "replica-c")
    # Both read the released Lease before either writes: a race the server settles
    # by resourceVersion. c's read is replayed to it after b's write.
    stale = b._read()
    assert isinstance(stale, LeaseView)
    assert b.try_once() is True
    c._read = lambda: stale  # type: ignore[method-assign]
    assert c.try_once() is False  # refused with 409, not an error
    assert lease(api, namespace)["holderIdentity"] == "replica-b"


@pytest.mark.parametrize("cut_off", ["refused", "hanging"])
def test_a_leader_that_cannot_reach_the_server_stops_before_a_standby_may_start(
    api: KubeApi, namespace: str, cut_off: str
) -> None:
    from kubernetes import client as k8s_client

    # Where the leader's requests go once it leads: a port nobody listens on (each
    # request fails at once), or a socket that accepts and never answers (each
    # would wait out the client's 10 s timeout, longer than the whole lease).
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(16)
    port = 9 if cut_off == "refused" else blackhole.getsockname()[1]
    events: list[tuple[str, float]] = []
    a = elector(api, namespace, "replica-a")

    def started() -> None:
        events.append(("started", time.monotonic()))
        configuration = k8s_client.Configuration()
        configuration.host = f"https://127.0.0.1:{port}"
        configuration.retries = 0
        a.api = KubeApi(k8s_client.ApiClient(configuration))  # the default 10 s timeout

    def stopped() -> None:
        events.append(("stopped", time.monotonic()))

    try:
        asyncio.run(asyncio.wait_for(a.run(started, stopped), timeout=10 * LEASE_SECONDS))
    finally:
        blackhole.close()
    assert [name for name, _ in events] == ["started", "stopped"]
    held_for = events[1][1] - events[0][1]
    # Stopped once the renew deadline (2/3 of the lease) passed, before the lease did.
    assert a.renew_deadline <= held_for < LEASE_SECONDS, held_for
