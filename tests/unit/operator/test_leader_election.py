"""Leader election's pure parts: the next step for a replica, and the settings that turn it on.

The Lease reads and writes themselves run against the real API server in
tests/integration/test_leader.py.
"""

from __future__ import annotations

import re

import pytest

from resumable_operator.config import OperatorConfig, SettingsError
from resumable_operator.leader import LeaseView, micro_time, next_step

ME = "operator-a_1234abcd"


def lease(holder: str, duration: int = 15) -> LeaseView:
    return LeaseView(
        holder=holder, renew_time=micro_time(), duration=duration, transitions=2,
        resource_version="7",
    )  # fmt: skip


def test_no_lease_yet_is_created() -> None:
    assert next_step(None, ME, unchanged_for=0, lease_seconds=15) == "create"


def test_the_holder_renews_its_own_lease() -> None:
    assert next_step(lease(ME), ME, unchanged_for=100, lease_seconds=15) == "renew"


def test_a_released_lease_is_taken_at_once() -> None:
    assert next_step(lease(""), ME, unchanged_for=0, lease_seconds=15) == "acquire"


def test_another_holder_is_waited_out_for_its_lease_duration_by_our_own_clock() -> None:
    held = lease("operator-b_99999999", duration=15)
    assert next_step(held, ME, unchanged_for=14.9, lease_seconds=30) == "wait"
    assert next_step(held, ME, unchanged_for=15.0, lease_seconds=30) == "acquire"


def test_a_lease_without_a_duration_is_waited_out_for_ours() -> None:
    held = lease("operator-b_99999999", duration=0)
    assert next_step(held, ME, unchanged_for=10, lease_seconds=12) == "wait"
    assert next_step(held, ME, unchanged_for=12, lease_seconds=12) == "acquire"


def test_lease_times_are_microsecond_rfc3339_in_utc() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", micro_time())


def test_leader_election_is_off_by_default_and_reads_its_settings_when_on() -> None:
    assert OperatorConfig.from_env({}).leader_election is False
    config = OperatorConfig.from_env(
        {
            "RESUMABLE_OPERATOR_LEADER_ELECTION": "true",
            "RESUMABLE_OPERATOR_LEASE_NAME": "rb-operator",
            "RESUMABLE_OPERATOR_LEASE_SECONDS": "6",
            "POD_NAMESPACE": "resumable-system",
            "POD_NAME": "rb-operator-7d9f-x2x",
        }
    )
    assert config.leader_election is True
    assert (config.lease_name, config.lease_namespace, config.lease_seconds) == (
        "rb-operator",
        "resumable-system",
        6,
    )
    # The pod's name, and a random part so two processes on one host never share one.
    assert re.fullmatch(r"rb-operator-7d9f-x2x_[0-9a-f]{8}", config.identity)
    explicit = {"RESUMABLE_OPERATOR_LEASE_NAMESPACE": "ops", "POD_NAMESPACE": "other"}
    assert OperatorConfig.from_env(explicit).lease_namespace == "ops"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RESUMABLE_OPERATOR_LEADER_ELECTION": "maybe"}, "LEADER_ELECTION='maybe'"),
        ({"RESUMABLE_OPERATOR_LEASE_SECONDS": "2"}, "LEASE_SECONDS=2 is outside 3..300"),
        ({"RESUMABLE_OPERATOR_STANDALONE": "false"}, "STANDALONE is no longer read"),
        ({"RESUMABLE_OPERATOR_PEERING": "x"}, "set RESUMABLE_OPERATOR_LEADER_ELECTION=true"),
    ],
)
def test_bad_or_removed_election_settings_are_errors_naming_the_variable(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        OperatorConfig.from_env(env)
