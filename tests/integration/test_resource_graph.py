"""Membership reads against the Recovery Services emulator's Resource Graph and vault, through the
real SDK clients the ``resolve_members`` activity uses: tag, resource-group and "any value"
selection, paging with $skipToken, throttling with the quota headers, the 400 for a query the
emulator does not answer, and VMs added, retagged, protected and unprotected at run time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.resourcegraph.models import QueryRequest, QueryRequestOptions

from activities import clients
from activities.membership import graph_vms, vault_items
from backup_chain.membership import resource_graph_query
from backup_chain.resource_ids import VaultId
from emulators.recoveryservices.resource_graph import GraphError, parse_query
from tests.integration.rs_support import (
    SUB,
    TOKEN,
    Emulator,
    far_policies,
    scenario,
    start_emulator,
    utcnow,
    vault_path,
    vm_entry,
)

OTHER_SUB = "99999999-2222-3333-4444-555555555555"


def _vm(name: str, rg: str = "rg-app", sub: str = SUB) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"


@pytest.fixture
def emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    vms = [
        vm_entry("web01", "daily", tags={"env": "prod", "tier": "web"}),
        vm_entry("web02", "weekly", tags={"env": "Prod"}),
        vm_entry("db01", "daily", resourceGroup="rg-db", tags={"env": "test"}),
    ]
    unprotected = [
        {"name": "loose01", "resourceGroup": "rg-app", "tags": {"env": "prod"}},
        {"name": "far01", "resourceGroup": "rg-app", "subscriptionId": OTHER_SUB, "tags": {"env": "prod"}},
    ]
    body = scenario(vms, far_policies(utcnow()), unprotectedVms=unprotected)
    for emu in start_emulator(tmp_path, body):
        # The activity's own clients, pointed at the emulator as devhost points them.
        monkeypatch.setenv(clients.ARM_ENDPOINT_SETTING, emu.url)
        monkeypatch.setenv(clients.CREDENTIAL_SETTING, "local")
        monkeypatch.setenv(clients.LOCAL_TOKEN_SETTING, TOKEN)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", emu.ca)
        for cached in (clients.credential, clients.resource_graph_client):
            cached.cache_clear()
        clients._backup_clients.clear()
        yield emu
        for cached in (clients.credential, clients.resource_graph_client):
            cached.cache_clear()
        clients._backup_clients.clear()


def _names(ids: list[str]) -> list[str]:
    return [vm_id.rsplit("/", 1)[-1] for vm_id in ids]


def test_tags_and_resource_groups_choose_vms_in_the_subscription_only(emulator: Emulator) -> None:
    assert _names(graph_vms(SUB, {"tags": {"env": "prod"}})) == ["loose01", "web01", "web02"]  # values: =~
    assert _names(graph_vms(SUB, {"tags": {"tier": "*"}})) == ["web01"]
    assert _names(graph_vms(SUB, {"tags": {"env": None}, "resourceGroups": ["RG-DB"]})) == ["db01"]
    assert _names(graph_vms(SUB, {"tags": {"env": "prod", "tier": "web"}})) == ["web01"]
    assert graph_vms(SUB, {"tags": {"missing": "*"}}) == []
    assert _names(graph_vms(OTHER_SUB, {"tags": {"env": "prod"}})) == ["far01"]
    queries = emulator.admin("GET", "/admin/resource-graph")["queries"]
    assert [q["subscriptions"] for q in queries] == [[SUB]] * 5 + [[OTHER_SUB]]


def test_paging_follows_skip_tokens_to_the_last_page(emulator: Emulator) -> None:
    for n in range(7):
        emulator.admin("PUT", "/admin/vms", json={"id": _vm(f"many{n:02d}", "rg-many"), "tags": {"fleet": "x"}})
    emulator.admin("PUT", "/admin/resource-graph", json={"maxPageSize": 3})
    assert _names(graph_vms(SUB, {"resourceGroups": ["rg-many"]})) == [f"many{n:02d}" for n in range(7)]
    pages = emulator.admin("GET", "/admin/resource-graph")["queries"]
    assert [q["offset"] for q in pages] == [0, 3, 6]
    first = clients.resource_graph_client().resources(
        QueryRequest(
            subscriptions=[SUB],
            query=resource_graph_query({"resourceGroups": ["rg-many"]}),
            options=QueryRequestOptions(top=1000, result_format="objectArray"),
        )
    )
    assert (first.total_records, first.count, first.result_truncated, len(first.data)) == (7, 3, "false", 3)
    assert first.skip_token


def test_a_query_the_emulator_does_not_answer_is_a_400_naming_it(emulator: Emulator) -> None:
    with pytest.raises(HttpResponseError) as raised:
        clients.resource_graph_client().resources(
            QueryRequest(subscriptions=[SUB], query="Resources | where name contains 'web' | project id")
        )
    assert raised.value.status_code == 400
    response: Any = raised.value.response
    body = response.json()
    assert body["error"]["code"] == "BadRequest"
    assert [d["code"] for d in body["error"]["details"]] == ["InvalidQuery", "UnsupportedQuery"]


def test_throttled_queries_wait_for_the_quota_and_then_give_up(emulator: Emulator) -> None:
    emulator.admin("PUT", "/admin/resource-graph", json={"throttleNext": 2, "resetsAfterSeconds": 1})
    began = time.monotonic()
    assert _names(graph_vms(SUB, {"tags": {"tier": "web"}})) == ["web01"]
    assert time.monotonic() - began >= 2.0  # waited the quota's reset twice
    assert [q.get("throttled", False) for q in emulator.admin("GET", "/admin/resource-graph")["queries"]] == [
        True,
        True,
        False,
    ]
    emulator.admin("PUT", "/admin/resource-graph", json={"throttleNext": 10})
    with pytest.raises(HttpResponseError) as raised:
        graph_vms(SUB, {"tags": {"tier": "web"}})
    assert raised.value.status_code == 429
    throttled: Any = raised.value.response
    assert throttled.headers["x-ms-user-quota-resets-after"] == "00:00:01"


def test_vms_added_retagged_protected_and_unprotected_between_reads(emulator: Emulator) -> None:
    vault = VaultId.parse(vault_path())
    assert set(vault_items(vault)) == {_vm("web01").lower(), _vm("web02").lower(), _vm("db01", "rg-db").lower()}
    assert vault_items(vault)[_vm("web02").lower()] == "weekly"
    emulator.admin("PUT", "/admin/vms", json={"id": _vm("new01"), "tags": {"env": "prod"}})
    emulator.admin("PUT", "/admin/vms", json={"id": _vm("web02"), "tags": {"env": "retired"}})
    emulator.admin("DELETE", "/admin/vms", json={"id": _vm("loose01")})
    assert _names(graph_vms(SUB, {"tags": {"env": "prod"}})) == ["new01", "web01"]
    emulator.admin("POST", "/admin/vms/protect", json={"id": _vm("new01"), "vaultId": vault_path(), "policy": "daily"})
    emulator.admin("POST", "/admin/vms/unprotect", json={"id": _vm("web01"), "vaultId": vault_path()})
    items = vault_items(vault)
    assert _vm("new01").lower() in items and _vm("web01").lower() not in items
    assert items[_vm("new01").lower()] == "daily"


def test_the_emulator_parses_exactly_what_the_app_writes_and_refuses_the_rest() -> None:
    # Pure: the emulator's parser against the app's own query builder (quotes and backslashes).
    query = resource_graph_query({"resourceGroups": ["rg-(a)"], "tags": {"o'k": "a\\b", "any": "*"}})
    parsed = parse_query(query)
    assert (parsed.groups, parsed.has_tags, parsed.tag_values) == (("rg-(a)",), ("any",), (("o'k", "a\\b"),))
    lines = query.split("\n")
    for bad in (
        "\n".join([lines[0], lines[2], lines[1], *lines[3:]]),  # out of order
        "\n".join(lines[:-1]),  # no order by
        query.replace("microsoft.compute/virtualmachines", "microsoft.network/networkinterfaces"),
        query + "\n| limit 5",
    ):
        with pytest.raises(GraphError) as raised:
            parse_query(bad)
        assert raised.value.status == 400 and raised.value.body["error"]["details"][0]["code"] == "InvalidQuery"
