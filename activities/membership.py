"""``resolve_members``: one target's members at run start (backup_chain/membership.py decides;
this reads Azure): the VMs Resource Graph finds for its resource groups and tags, one paged query
in the vault's subscription, and the vault's protected VM items."""

from __future__ import annotations

import logging
import time
from typing import Any

import azure.durable_functions as df

from activities.azure_errors import TransientAzureError
from activities.backup import final_error
from activities.clients import backup_client, resource_graph_client
from backup_chain.errors import AzureFailure
from backup_chain.membership import resolve_target, resource_graph_query
from backup_chain.messages import ResolveMembersRequest, ResolveMembersResult
from backup_chain.resource_ids import VaultId, policy_name

bp = df.Blueprint()
log = logging.getLogger("backup_chain")
PAGE = 1000  # Resource Graph's largest $top
THROTTLED_WAITS = 3  # waits for Resource Graph's quota to reset before the orchestrator's retry takes over
MAX_QUOTA_WAIT = 60.0  # seconds; a longer reset is left to the orchestrator's durable retry
ITEMS_FILTER = "backupManagementType eq 'AzureIaasVM' and itemType eq 'VM'"


class IncompleteAnswer(Exception):
    """Azure answered, but not all of it: the run must not go on with part of the target."""

    def __init__(self, failure: AzureFailure):
        super().__init__(failure.message)
        self.failure = failure


def quota_resets_after(headers: Any) -> float | None:
    """Seconds in ``x-ms-user-quota-resets-after`` (hh:mm:ss), None when absent or malformed
    (learn.microsoft.com/azure/governance/resource-graph/concepts/guidance-for-throttled-requests)."""
    parts = str(headers.get("x-ms-user-quota-resets-after") or "").split(":")
    if len(parts) != 3 or not all(p.replace(".", "", 1).isdigit() for p in parts):
        return None
    return int(parts[0]) * 3600 + int(parts[1]) * 60 + float(parts[2])


def _query_page(request: Any) -> Any:
    """One page; a 429 waits until the user's quota resets (at most THROTTLED_WAITS times)."""
    from azure.core.exceptions import HttpResponseError

    for attempt in range(THROTTLED_WAITS + 1):
        try:
            return resource_graph_client().resources(request)
        except HttpResponseError as err:
            headers = getattr(err.response, "headers", None) or {}
            wait = quota_resets_after(headers) if err.status_code == 429 else None
            if wait is None or wait > MAX_QUOTA_WAIT or attempt == THROTTLED_WAITS:
                raise
            log.warning("Resource Graph throttled the membership query; waiting %.1f s for its quota", wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


def graph_vms(subscription: str, select: dict[str, Any]) -> list[str]:
    """Every VM id the target's Resource Graph query returns, all pages."""
    from azure.mgmt.resourcegraph.models import QueryRequest, QueryRequestOptions

    query = resource_graph_query(select)
    found: list[str] = []
    skip_token: str | None = None
    while True:
        # resultFormat objectArray: ``data`` is a list of row objects (ResourcesBasicQuery.json,
        # azure-rest-api-specs specification/resourcegraph 2021-03-01).
        options = QueryRequestOptions(top=PAGE, skip_token=skip_token, result_format="objectArray")
        page = _query_page(QueryRequest(subscriptions=[subscription], query=query, options=options))
        rows = page.data
        if not isinstance(rows, list) or any(not isinstance(r, dict) or not r.get("id") for r in rows):
            raise TransientAzureError("ResourceGraphBadAnswer: the membership query's data is not rows with an id")
        if str(page.result_truncated).lower() == "true" and not page.skip_token:
            raise IncompleteAnswer(
                AzureFailure(
                    "final",
                    "ResourceGraphResultTruncated",
                    f"Resource Graph truncated the membership query in subscription {subscription} without a "
                    "skip token; the target's VMs cannot be listed completely",
                )
            )
        found += [str(r["id"]) for r in rows]
        skip_token = page.skip_token
        if not skip_token:
            return found


def vault_items(vault: VaultId) -> dict[str, str | None]:
    """VM id (lower case) → policy name of every VM item in the vault, whatever its protection
    state (a VM whose protection GC stopped between backups is still the vault's)."""
    client = backup_client(vault.subscription)
    items: dict[str, str | None] = {}
    for item in client.backup_protected_items.list(vault.name, vault.resource_group, filter=ITEMS_FILTER):
        props = item.as_dict().get("properties") or {}
        vm = props.get("virtualMachineId") or props.get("sourceResourceId")
        if vm:
            items[str(vm).lower()] = policy_name(props.get("policyId")) or props.get("policyName")
    return items


@bp.activity_trigger(input_name="request")
def resolve_members(request: ResolveMembersRequest) -> ResolveMembersResult:
    target = request["target"]
    vault = VaultId.parse(target["vaultId"])
    select = target.get("select") or {}
    try:
        found = graph_vms(vault.subscription, select) if select.get("resourceGroups") or select.get("tags") else None
        items = vault_items(vault) if select else None
    except IncompleteAnswer as err:
        return {"ok": False, "error": err.failure.to_dict()}
    except Exception as err:
        return {"ok": False, "error": final_error(err)}
    resolved = resolve_target(target, found, items)
    return {"ok": True, "vaultId": target["vaultId"], **resolved}  # type: ignore[typeddict-item]
