"""More instances than one Durable query page (100): the runs listing still shows the newest run
and cancel terminates every watcher, also those past the first page. The hub is seeded cheaply:
watch_job instances (one timer each, the manual clock never reaches it) under the ids of chain
runs and of a run's VM watchers, in instance-id order before the real run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from demo.stack import Stack, vault_id
from harness.chain_stack import chain, running_stack, scenario, vm

DURABLE = "/runtime/webhooks/durabletask"
SEEDS = 110  # past the first page of 100
# Cancel lists a run's active watchers up to three times (CANCEL_PASSES); more than three pages
# of them means a cancel that read only first pages would leave some running.
WATCHERS = 310


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    upstream = {"eventType": "Contoso.Paged", "subject": "/jobs/paged", "timeout": "PT6H"}
    chains = [chain("paged", ["pg01"], upstream=upstream)]
    with running_stack(tmp_path_factory.mktemp("paging"), scenario([vm("pg01")]), chains) as running:
        running.settle()
        yield running


def _durable(stack: Stack, method: str, path: str, **kwargs: Any) -> Any:
    headers = {"x-functions-key": stack.keys["masterKey"], **kwargs.pop("headers", {})}
    return stack.session.request(method, f"{stack.devhost.url}{DURABLE}/{path}", headers=headers, timeout=60, **kwargs)


def _seed(stack: Stack, instance_ids: list[str]) -> None:
    watch = {"vaultId": vault_id("v1"), "jobId": "seed", "until": "snapshot", "plan": {}}
    for instance_id in instance_ids:
        response = _durable(stack, "POST", f"orchestrators/watch_job/{instance_id}", json=watch)
        assert response.status_code == 202, response.text
    stack.settle()


def _statuses(stack: Stack, prefix: str) -> dict[str, str]:
    """instanceId -> runtimeStatus for every instance under ``prefix``, page by page."""
    out: dict[str, str] = {}
    headers: dict[str, str] = {}
    for _ in range(20):
        response = _durable(stack, "GET", "instances", params={"instanceIdPrefix": prefix}, headers=headers)
        assert response.status_code == 200, response.text
        out.update({s["instanceId"]: s["runtimeStatus"] for s in response.json()})
        token = response.headers["x-ms-continuation-token"]
        if token == "null":
            return out
        headers = {"x-ms-continuation-token": token}
    raise AssertionError("the instance query kept answering continuation tokens")


def test_runs_listing_and_cancel_see_past_the_first_page(stack: Stack) -> None:
    _seed(stack, [f"chain:paged:r-{i:03d}" for i in range(SEEDS)])
    stack.advance(5)  # the real run is newer than every seed
    started = stack.api("POST", "chains/paged/runs", {"runId": "z-newest", "waitForUpstream": True})
    assert started.status_code == 202, started.text
    stack.settle()
    assert len(_statuses(stack, "chain:paged:")) == SEEDS + 1  # the real run sorts last: page two

    listing = stack.api("GET", "chains/paged/runs?top=3")
    assert listing.status_code == 200, listing.text
    newest = listing.json()["runs"][0]
    assert newest["runId"] == "z-newest" and newest["runtimeStatus"] == "Running"
    everything = stack.api("GET", "chains/paged/runs?top=500").json()["runs"]
    assert len(everything) == SEEDS + 1

    watchers = [f"vm:paged:z-newest:w{i:03d}" for i in range(WATCHERS)]
    _seed(stack, watchers)
    assert set(_statuses(stack, "vm:paged:z-newest:").values()) == {"Running"}
    cancelled = stack.api("POST", "chains/paged/runs/z-newest/cancel")
    assert cancelled.status_code == 202, cancelled.text
    stack.settle()
    after = _statuses(stack, "vm:paged:z-newest:")
    assert sorted(after) == watchers
    assert {i for i, status in after.items() if status != "Terminated"} == set()
