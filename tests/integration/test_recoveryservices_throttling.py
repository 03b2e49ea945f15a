"""ARM's per-subscription throttling in the Recovery Services emulator, through the real SDK over
HTTPS on a manual clock: token buckets per request class, 429 SubscriptionRequestsThrottled with
Retry-After, refill in virtual seconds, the remaining-count headers, no side effect of a throttled
trigger, the admin figures and limits, and config validation naming the field."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest

from devhost.procs import ServiceStartError
from emulators.recoveryservices.scenario import ScenarioError, parse
from emulators.recoveryservices.throttling import iso
from tests.integration.rs_support import (
    RG,
    SUB,
    VAULT,
    Emulator,
    container,
    far_policies,
    item,
    scenario,
    start_emulator,
    trigger,
    utcnow,
    vault_path,
    vm_entry,
)

# Small buckets so a test empties one in a few calls: reads 5 (1/s), writes 3 (0.5/s), deletes 2 (1/s).
LIMITS = {
    "enabled": True,
    "reads": {"bucket": 5, "refillPerSecond": 1},
    "writes": {"bucket": 3, "refillPerSecond": 0.5},
    "deletes": {"bucket": 2, "refillPerSecond": 1},
}
READS = "x-ms-ratelimit-remaining-subscription-reads"
WRITES = "x-ms-ratelimit-remaining-subscription-writes"
DELETES = "x-ms-ratelimit-remaining-subscription-deletes"
VMS = [f"thr{i:02d}" for i in range(1, 9)]


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    body = scenario([vm_entry(vm, "daily") for vm in VMS], far_policies(utcnow()), throttling=LIMITS)
    yield from start_emulator(tmp_path_factory.mktemp("rs-throttle"), body)


@pytest.fixture(scope="module")
def client(emu: Emulator) -> Any:
    return emu.client(retry_total=0)  # no SDK retries: each call is one request, a 429 surfaces


@pytest.fixture(autouse=True)
def fresh_buckets(emu: Emulator) -> None:
    emu.admin("PUT", "/admin/throttling", json=LIMITS)
    emu.admin("DELETE", "/admin/throttling")


def read(client: Any) -> Any:
    """One GET (ProtectionPolicies_Get); returns the response headers."""
    return client.protection_policies.get(
        VAULT, RG, "daily", cls=lambda resp, _body, _headers: resp.http_response.headers
    )


def throttled(call: Any, verb: str = "read") -> Any:
    """Assert ``call`` gets ARM's throttling 429; returns the response headers."""
    with pytest.raises(HttpResponseError) as err:
        call()
    assert err.value.status_code == 429
    assert err.value.error is not None and err.value.error.code == "SubscriptionRequestsThrottled"
    assert f"Number of '{verb}' requests for subscription '{SUB}' exceeded." in str(err.value.error.message)
    response: Any = err.value.response
    return response.headers


def delete(emu: Emulator, client: Any, vm: str) -> Any:
    """A DELETE on a protected item (the emulator serves none: 405), still an ARM delete request."""
    path = f"{vault_path()}/backupFabrics/Azure/protectionContainers/{container(vm)}/protectedItems/{item(vm)}"
    return client.send_request(HttpRequest("DELETE", f"{emu.url}{path}?api-version=2026-10-01"))


def jobs_of(emu: Emulator, vm: str) -> list[dict[str, Any]]:
    return list(emu.admin("GET", f"/admin/jobs?vm={vm}"))


def figures(emu: Emulator) -> dict[str, Any]:
    return dict(emu.admin("GET", "/admin/throttling")["subscriptions"][SUB])


def test_read_bucket_empties_to_429_with_retry_after_and_headers_count_down(client: Any) -> None:
    remaining = [read(client)[READS] for _ in range(5)]
    assert remaining == ["4", "3", "2", "1", "0"]
    headers = throttled(lambda: read(client))
    assert headers["Retry-After"] == "1"  # one token at 1/s
    assert headers[READS] == "0"
    throttled(lambda: read(client))  # no time passed: still empty, and a refused call earns nothing


def test_refill_on_the_manual_clock_restores_service(emu: Emulator, client: Any) -> None:
    for _ in range(5):
        read(client)
    throttled(lambda: read(client))
    emu.advance(1)  # one virtual second: one token
    assert read(client)[READS] == "0"
    throttled(lambda: read(client))
    emu.advance(3)
    assert read(client)[READS] == "2"
    emu.advance(3600)  # refill stops at the bucket size
    assert read(client)[READS] == "4"


def test_reads_writes_and_deletes_are_separate_buckets(emu: Emulator, client: Any) -> None:
    for _ in range(5):
        read(client)
    throttled(lambda: read(client))
    headers = trigger(client, VMS[0])  # a POST is a write: its bucket is full
    assert headers[WRITES] == "2"
    assert READS not in headers
    assert delete(emu, client, VMS[0]).headers[DELETES] == "1"
    assert [trigger(client, vm)[WRITES] for vm in VMS[1:3]] == ["1", "0"]
    throttled(lambda: trigger(client, VMS[3]), "write")
    assert delete(emu, client, VMS[0]).headers[DELETES] == "0"
    refused = delete(emu, client, VMS[0])
    assert (refused.status_code, refused.headers["Retry-After"]) == (429, "1")
    assert "Number of 'delete' requests" in refused.json()["error"]["message"]
    emu.advance(1)  # reads refill while writes (0.5/s) still lack a whole token
    assert read(client)[READS] == "0"
    throttled(lambda: trigger(client, VMS[3]), "write")


def test_throttled_trigger_starts_no_job(emu: Emulator, client: Any) -> None:
    for vm in VMS[4:7]:
        trigger(client, vm)
    before = emu.admin("GET", "/admin/state")
    errors_before = emu.admin("GET", "/admin/requests")["errors"].get("Backups_Trigger:429", 0)
    headers = throttled(lambda: trigger(client, VMS[7]), "write")
    assert headers["Retry-After"] == "2"  # one token at 0.5/s
    assert headers[WRITES] == "0"
    assert jobs_of(emu, VMS[7]) == []
    after = emu.admin("GET", "/admin/state")
    assert (after["jobs"], after["operations"]) == (before["jobs"], before["operations"])
    assert emu.admin("GET", "/admin/requests")["errors"]["Backups_Trigger:429"] == errors_before + 1
    emu.advance(2)
    trigger(client, VMS[7])
    assert [job["userTriggered"] for job in jobs_of(emu, VMS[7])] == [True]


def test_admin_figures(emu: Emulator, client: Any) -> None:
    first = emu.now().timestamp()
    for _ in range(3):
        read(client)
    trigger(client, VMS[0])
    delete(emu, client, VMS[0])
    emu.advance(120)
    second = emu.now().timestamp()
    for _ in range(5):
        read(client)
    for _ in range(2):
        throttled(lambda: read(client))
    got = figures(emu)
    assert got["requests"] == {"reads": 10, "writes": 1, "deletes": 1, "total": 12}
    assert got["throttled"] == {"reads": 2, "writes": 0, "deletes": 0, "total": 2}
    assert got["peakPerMinute"] == {"reads": 7, "writes": 1, "deletes": 1, "total": 7}
    assert got["minutes"] == [
        {"minute": iso(math.floor(first / 60) * 60.0), "reads": 3, "writes": 1, "deletes": 1, "throttled": 0},
        {"minute": iso(math.floor(second / 60) * 60.0), "reads": 7, "writes": 0, "deletes": 0, "throttled": 2},
    ]
    assert got["remaining"] == {"reads": 0, "writes": 3, "deletes": 2}  # 120 s refilled writes and deletes
    whole = emu.admin("GET", "/admin/throttling")
    assert {k: whole[k] for k in ("enabled", "reads", "writes", "deletes")} == LIMITS


def test_admin_changes_limits_at_run_time(emu: Emulator, client: Any) -> None:
    read(client)
    body = emu.admin("PUT", "/admin/throttling", json={"reads": {"bucket": 2}})
    assert body["reads"] == {"bucket": 2, "refillPerSecond": 1}
    assert body["writes"] == LIMITS["writes"]
    assert body["subscriptions"][SUB]["remaining"]["reads"] == 2  # 4 tokens kept, up to the new size
    assert [read(client)[READS] for _ in range(2)] == ["1", "0"]
    throttled(lambda: read(client))

    emu.admin("PUT", "/admin/throttling", json={"enabled": False})
    for _ in range(4):
        assert READS not in read(client)
    got = figures(emu)
    assert "remaining" not in got
    assert got["requests"]["reads"] == 8  # still counted while off
    emu.admin("PUT", "/admin/throttling", json={"enabled": True})
    assert read(client)[READS] == "1"  # on again: buckets start full


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reads": {"bucket": 0}}, "throttling.reads.bucket"),
        ({"writes": {"refillPerSecond": "fast"}}, "throttling.writes.refillPerSecond"),
        ({"enabled": "yes"}, "throttling.enabled"),
        ({"deletes": {"size": 3}}, "throttling.deletes: unknown field 'size'"),
    ],
)
def test_admin_rejects_bad_limits_naming_the_field(emu: Emulator, body: dict[str, Any], field: str) -> None:
    response = requests.put(f"{emu.url}/admin/throttling", json=body, verify=emu.ca, timeout=30)
    assert response.status_code == 400
    assert field in response.json()["error"]["message"]
    current = emu.admin("GET", "/admin/throttling")
    assert {k: current[k] for k in ("enabled", "reads", "writes", "deletes")} == LIMITS


@pytest.mark.parametrize(
    ("throttling", "message"),
    [
        ({"enabled": True, "reads": {"bucket": 2.5}}, "throttling.reads.bucket must be an integer >= 1, got 2.5"),
        ({"writes": {"refillPerSecond": 0}}, "throttling.writes.refillPerSecond must be a number > 0, got 0"),
        ({"enabled": 1}, "throttling.enabled must be true or false, got 1"),
        ({"read": {}}, "throttling: unknown field 'read' (expected enabled, reads, writes, deletes)"),
        ([], "throttling must be a JSON object, got []"),
    ],
)
def test_scenario_rejects_bad_throttling(throttling: Any, message: str) -> None:
    with pytest.raises(ScenarioError) as err:
        parse(scenario([], [], throttling=throttling))
    assert str(err.value) == message


def test_throttling_is_off_by_default_with_arms_limits() -> None:
    config = parse(scenario([], [])).throttling
    assert config.to_json() == {
        "enabled": False,
        "reads": {"bucket": 250, "refillPerSecond": 25.0},
        "writes": {"bucket": 200, "refillPerSecond": 10.0},
        "deletes": {"bucket": 200, "refillPerSecond": 10.0},
    }


def test_emulator_refuses_to_start_on_bad_throttling(tmp_path: Path) -> None:
    body = scenario([], [], throttling={"deletes": {"bucket": -1}})
    with pytest.raises(ServiceStartError) as err:
        next(start_emulator(tmp_path, body))
    assert "scenario error: throttling.deletes.bucket must be an integer >= 1, got -1" in str(err.value)
