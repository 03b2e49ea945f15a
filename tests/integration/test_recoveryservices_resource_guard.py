"""Resource Guard (multi-user authorization) on the Recovery Services emulator, through the real SDK
client: a guarded vault refuses stop protection (retain data) without the guard's operation request
and changes nothing; with the request, or where the guard excludes the operation, the stop goes
through. The scenario key is validated, naming the bad field."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError

from emulators.recoveryservices import resource_guard
from emulators.recoveryservices.errors import RESOURCE_GUARD_CODE
from emulators.recoveryservices.scenario import ScenarioError
from tests.integration.rs_support import (
    RG,
    SUB,
    Emulator,
    container,
    far_policies,
    item,
    scenario,
    start_emulator,
    utcnow,
    vm_entry,
    vm_resource_id,
)

GUARDED, EXCLUDING = "vault1", "vault-excl"
GUARD_ID = f"/subscriptions/{SUB}/resourceGroups/rg-sec/providers/Microsoft.DataProtection/resourceGuards"


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    policies = far_policies(utcnow())
    body = scenario([vm_entry("g01", "weekly"), vm_entry("g02", "weekly")], policies)
    body["vaults"][0]["resourceGuard"] = True
    body["vaults"].append(
        {
            "resourceGroup": RG,
            "name": EXCLUDING,
            "policies": policies,
            "vms": [vm_entry("x01", "weekly")],
            "resourceGuard": {"name": "guard-sec", "excludedOperations": [resource_guard.MODIFY_PROTECTION]},
        }
    )
    yield from start_emulator(tmp_path_factory.mktemp("rs-guard"), body)


def stop(client: Any, vault: str, vm: str, **extra: Any) -> Any:
    props = {
        "protectedItemType": "Microsoft.Compute/virtualMachines",
        "protectionState": "ProtectionStopped",
        "sourceResourceId": vm_resource_id(vm),
        **extra,
    }
    poller = client.protected_items.begin_create_or_update(
        vault, RG, "Azure", container(vm), item(vm), {"properties": props}
    )
    return poller.result()


def state(client: Any, vault: str, vm: str) -> str:
    return str(client.protected_items.get(vault, RG, "Azure", container(vm), item(vm)).properties["protectionState"])


def test_a_guarded_vault_refuses_stop_protection_and_changes_nothing(emu: Emulator) -> None:
    client = emu.client()
    before = state(client, GUARDED, "g01")
    assert before in ("Protected", "IRPending")
    with pytest.raises(HttpResponseError) as refused:
        stop(client, GUARDED, "g01")
    assert refused.value.status_code == 403
    assert refused.value.error is not None and refused.value.error.code == RESOURCE_GUARD_CODE
    assert "Resource Guard 'resource-guard'" in str(refused.value.error.message)
    assert state(client, GUARDED, "g01") == before
    # A request for another guard does not authorize it either.
    with pytest.raises(HttpResponseError):
        stop(client, GUARDED, "g01", resourceGuardOperationRequests=[f"{GUARD_ID}/other/updateProtectedItemRequests/x"])
    assert state(client, GUARDED, "g01") == before


def test_the_guards_operation_request_authorizes_the_stop(emu: Emulator) -> None:
    client = emu.client()
    request = f"{GUARD_ID}/resource-guard/updateProtectedItemRequests/default"
    stopped = stop(client, GUARDED, "g02", resourceGuardOperationRequests=[request])
    assert stopped.properties["protectionState"] == "ProtectionStopped"
    assert state(client, GUARDED, "g02") == "ProtectionStopped"


def test_an_excluded_operation_is_not_guarded(emu: Emulator) -> None:
    client = emu.client()
    assert stop(client, EXCLUDING, "x01").properties["protectionState"] == "ProtectionStopped"


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ("yes", "resourceGuard must be true or an object"),
        ({"name": "g", "excluded": []}, "unknown key 'excluded'"),
        ({"name": "bad name"}, "resourceGuard.name"),
        ({"excludedOperations": "all"}, "resourceGuard.excludedOperations must be a list"),
        ({"excludedOperations": ["stopProtection"]}, "unknown operation 'stopProtection'"),
        (
            {"excludedOperations": ["Microsoft.RecoveryServices/vaults/backupconfig/write"]},
            "is mandatory and cannot be excluded",
        ),
    ],
)
def test_a_malformed_guard_names_the_key(raw: Any, names: str) -> None:
    with pytest.raises(ScenarioError, match=names):
        resource_guard.parse(raw)


def test_guard_values() -> None:
    assert resource_guard.parse(None) is None and resource_guard.parse(False) is None
    assert resource_guard.parse(True) == resource_guard.ResourceGuard("resource-guard")
    guard = resource_guard.parse({"name": "g1", "excludedOperations": [resource_guard.MODIFY_PROTECTION]})
    assert guard is not None and not guard.guards(resource_guard.MODIFY_PROTECTION)
