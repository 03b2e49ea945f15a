"""``backup-chain preflight`` against the Recovery Services emulator (a real HTTPS subprocess, the
real SDK clients in the CLI's own process): a missing vault, a VM not protected, a policy that
schedules no weekly backup, a role action the app's identity lacks — each reported by name — and
an all-good configuration passing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

from backup_chain_cli.azure_access import Permission, allowed
from backup_chain_cli.preflight import PROTECTION_ACTIONS, READ_AND_TRIGGER_ACTIONS
from emulators.recoveryservices.scenario import ScenarioError, parse
from tests.integration.rs_support import RG, SUB, TOKEN, VAULT, Emulator, scenario, start_emulator, vm_entry

REPO_ROOT = Path(__file__).resolve().parents[2]
APP = "aaaaaaaa-0000-0000-0000-000000000001"  # the app's managed identity
WIDE = "aaaaaaaa-0000-0000-0000-000000000002"  # a principal holding Backup Contributor on the subscription
OPERATOR = "aaaaaaaa-0000-0000-0000-000000000003"  # the signed-in caller (Reader only)
APP_ROLE = "bbbbbbbb-0000-0000-0000-000000000001"
VAULT_ID = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.RecoveryServices/vaults/{VAULT}"
MISSING_VAULT_ID = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.RecoveryServices/vaults/vault-gone"
WRITE = PROTECTION_ACTIONS[0]


def vm_id(name: str) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/{name}"


def _scenario() -> dict[str, Any]:
    policies: list[dict[str, Any]] = [
        {"name": "weekly", "frequency": "Weekly", "days": ["Saturday"], "time": "02:00", "timeZone": "UTC"},
        # a zone name outside the app's CLDR map: when it runs cannot be known (GC: PolicyUnreadable)
        {
            "name": "odd-zone",
            "frequency": "Daily",
            "time": "02:00",
            "timeZone": "Mars Standard Time",
            "timeZoneIana": "UTC",
        },
    ]
    vms = [
        vm_entry("good01", "weekly"),
        vm_entry("stopped01", "weekly", protected=False),
        vm_entry("nopolicy01", None),
        vm_entry("oddzone01", "odd-zone"),
    ]
    authorization = {
        "callerPrincipalId": OPERATOR,
        "roleDefinitions": [
            {"name": APP_ROLE, "roleName": "BackupChain app", "actions": list(READ_AND_TRIGGER_ACTIONS)}
        ],
        "roleAssignments": [
            {
                "principalId": APP,
                "roleDefinitionId": f"/subscriptions/{SUB}/providers/Microsoft.Authorization/"
                f"roleDefinitions/{APP_ROLE}",
                "scope": f"/subscriptions/{SUB}/resourceGroups/{RG}",
            },
            {"principalId": WIDE, "roleName": "Backup Contributor", "scope": f"/subscriptions/{SUB}"},
            {"principalId": OPERATOR, "roleName": "Reader", "scope": f"/subscriptions/{SUB}"},
            # below the vault's scope: grants nothing on the vault
            {"principalId": APP, "roleName": "Backup Contributor", "scope": f"{VAULT_ID}/backupPolicies/weekly"},
        ],
    }
    return scenario(vms, policies, authorization=authorization)


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    yield from start_emulator(tmp_path_factory.mktemp("preflight"), _scenario())


def config(targets: list[tuple[str, list[str]]], gc: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "chains": [{"name": "c", "targets": [{"vaultId": v, "vms": [vm_id(n) for n in vms]} for v, vms in targets]}]
    }
    if gc is not None:
        body["gc"] = gc
    return body


def preflight(emu: Emulator, tmp_path: Path, body: dict[str, Any], *args: str) -> tuple[int, dict[str, Any], str]:
    path = tmp_path / "chains.json"
    path.write_text(json.dumps(body))
    env = {k: v for k, v in os.environ.items() if k not in ("APP_PRINCIPAL_ID", "REQUESTS_CA_BUNDLE")}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "backup_chain_cli",
            "--json",
            "preflight",
            str(path),
            "--arm-endpoint",
            emu.url,
            "--local-token",
            TOKEN,
            "--ca-bundle",
            emu.ca,
            *args,
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in out.stderr, out.stderr
    return out.returncode, json.loads(out.stdout) if out.stdout.strip() else {}, out.stderr


def failed(result: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {(c["check"], c["subject"]): c["detail"] for c in result["checks"] if not c["ok"]}


def test_an_all_good_configuration_passes(emu: Emulator, tmp_path: Path) -> None:
    code, result, err = preflight(emu, tmp_path, config([(VAULT_ID, ["good01"])]), "--principal-id", APP)
    assert code == 0, result
    assert result["ok"] is True and result["rolesOf"] == APP
    checks = {(c["check"], c["subject"]) for c in result["checks"]}
    assert checks == {
        ("vault", VAULT_ID),
        ("role", VAULT_ID),
        ("protection", vm_id("good01")),
        ("policy", vm_id("good01")),
    }
    assert f"VM {vm_id('good01')}" in err  # progress per VM on stderr, JSON alone on stdout
    assert {c["subject"]: c["detail"] for c in result["checks"] if c["check"] == "vault"} == {
        VAULT_ID: "exists in japaneast"
    }


def test_each_failure_is_reported_by_name(emu: Emulator, tmp_path: Path) -> None:
    body = config(
        [(VAULT_ID, ["good01", "stopped01", "nopolicy01", "oddzone01", "ghost01"]), (MISSING_VAULT_ID, ["elsewhere01"])]
    )
    code, result, _ = preflight(emu, tmp_path, body, "--principal-id", APP)
    assert code == 1 and result["ok"] is False
    found = failed(result)
    assert (
        "ResourceNotFound" in found[("vault", MISSING_VAULT_ID)]
        and "1 VM(s) not checked" in found[("vault", MISSING_VAULT_ID)]
    )
    assert found[("protection", vm_id("ghost01"))].startswith(f"not protected in {VAULT}: ResourceNotFound")
    assert "ProtectionStopped" in found[("protection", vm_id("stopped01"))]
    assert "no weekly backup is scheduled" in found[("policy", vm_id("nopolicy01"))]
    assert "'Mars Standard Time' unknown" in found[("policy", vm_id("oddzone01"))]
    assert set(found) == {
        ("vault", MISSING_VAULT_ID),
        ("protection", vm_id("ghost01")),
        ("protection", vm_id("stopped01")),
        ("protection", vm_id("nopolicy01")),
        ("policy", vm_id("nopolicy01")),
        ("policy", vm_id("oddzone01")),
    }


def test_a_role_action_the_gc_mode_needs_is_reported_missing(emu: Emulator, tmp_path: Path) -> None:
    weekend = {"mode": "weekend-window", "policy": "weekly"}
    code, result, _ = preflight(emu, tmp_path, config([(VAULT_ID, ["good01"])], weekend), "--principal-id", APP)
    assert code == 1
    # the assignment beneath the vault (on one of its policies) does not count at the vault
    assert failed(result) == {("role", WRITE): f"not held on {VAULT}"}
    # Backup Contributor on the subscription holds it through its wildcard (protectionContainers/*)
    code, result, _ = preflight(emu, tmp_path, config([(VAULT_ID, ["good01"])], weekend), "--principal-id", WIDE)
    assert code == 0, failed(result)
    assert ("policy", VAULT_ID) in {(c["check"], c["subject"]) for c in result["checks"]}  # gc.policy read


def test_weekend_window_names_a_missing_gc_policy(emu: Emulator, tmp_path: Path) -> None:
    weekend = {"mode": "weekend-window", "policy": "nightly"}
    code, result, _ = preflight(emu, tmp_path, config([(VAULT_ID, ["stopped01"])], weekend), "--principal-id", WIDE)
    assert code == 1
    assert failed(result) == {
        ("policy", VAULT_ID): f"gc.policy 'nightly' cannot be read in {VAULT}: "
        f"ResourceNotFound: The Resource '{VAULT_ID}/backupPolicies/nightly' was not found."
    }


def test_without_a_principal_the_callers_own_permissions_are_checked(emu: Emulator, tmp_path: Path) -> None:
    code, result, err = preflight(emu, tmp_path, config([(VAULT_ID, ["good01"])]))
    assert code == 1 and result["rolesOf"] is None
    assert "the signed-in caller" in err
    missing = {subject for check, subject in failed(result) if check == "role"}
    # Reader's */read covers every read; the trigger is an action it lacks
    assert missing == {READ_AND_TRIGGER_ACTIONS[0]}


def test_bad_input_is_refused_with_one_line(emu: Emulator, tmp_path: Path) -> None:
    code, result, err = preflight(emu, tmp_path, {"chains": []}, "--principal-id", APP)
    assert code == 1 and "the configuration is invalid" in err
    assert result["problems"] == [
        {"field": "chains", "message": "List should have at least 1 item after validation, not 0"}
    ]
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(config([(VAULT_ID, ["good01"])])))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "backup_chain_cli",
            "preflight",
            str(path),
            "--arm-endpoint",
            "https://management.azure.com",
            "--local-token",
            "x",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2 and "only allowed with a loopback --arm-endpoint" in out.stderr
    assert "Traceback" not in out.stderr
    code, _, err = preflight(emu, tmp_path, config([(VAULT_ID, ["good01"])]), "--principal-id", "")
    assert code == 2 and "--principal-id: is empty" in err
    # An object id is a GUID: a quote would change the role-assignment $filter sent to ARM.
    code, _, err = preflight(emu, tmp_path, config([(VAULT_ID, ["good01"])]), "--principal-id", "x' or 1 eq 1")
    assert code == 2 and '--principal-id: "x\' or 1 eq 1" is not an object id (a GUID)' in err
    # TLS not trusted: one line naming the endpoint and how to trust it, no per-resource findings
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "backup_chain_cli",
            "preflight",
            str(path),
            "--arm-endpoint",
            emu.url,
            "--local-token",
            TOKEN,
            "--principal-id",
            APP,
        ],
        cwd=REPO_ROOT,
        env={k: v for k, v in os.environ.items() if k != "REQUESTS_CA_BUNDLE"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2 and f"cannot reach ARM at {emu.url}" in out.stderr and "--ca-bundle" in out.stderr
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("error: cannot reach ARM")  # after the progress lines
    code, _, err = preflight(emu, tmp_path, config([(VAULT_ID, ["good01"])]), "--ca-bundle", str(tmp_path / "no.pem"))
    assert code == 2 and "no.pem: no such file" in err


def test_wildcards_and_not_actions() -> None:
    backup = READ_AND_TRIGGER_ACTIONS[0]
    assert allowed([Permission(("Microsoft.RecoveryServices/*",))], backup)
    assert allowed([Permission(("microsoft.recoveryservices/vaults/*/action",))], backup)  # case-insensitive
    assert not allowed([Permission(("*",), ("Microsoft.RecoveryServices/Vaults/backupFabrics/*",))], backup)
    # a notAction removes from its own role only: another role still grants it
    assert allowed([Permission(("*",), ("Microsoft.RecoveryServices/*",)), Permission((backup,))], backup)
    assert not allowed([Permission(("*/read",))], backup)


def test_the_actions_checked_are_the_app_roles() -> None:
    role = REPO_ROOT / "infra" / "modules" / "vault-role.bicep"
    variables: Any = dict(BicepParser().parse(file_path=role))["variables"]
    assert list(READ_AND_TRIGGER_ACTIONS) == variables["readAndTriggerActions"]["value"]
    assert list(PROTECTION_ACTIONS) == variables["protectionActions"]["value"]


@pytest.mark.parametrize(
    ("section", "named"),
    [
        (
            {"roleAssignments": [{"principalID": APP, "roleName": "Reader", "scope": "/subscriptions/x"}]},
            "authorization.roleAssignments[0].principalID: extra inputs are not permitted",
        ),
        (
            {"roleAssignments": [{"principalId": APP, "roleName": "Owner", "scope": f"/subscriptions/{SUB}"}]},
            "authorization.roleAssignments[0]: no role definition 'Owner'",
        ),
        (
            {"roleAssignments": [{"principalId": APP, "scope": f"/subscriptions/{SUB}"}]},
            "authorization.roleAssignments[0]: give exactly one of roleDefinitionId and roleName",
        ),
        (
            {"roleDefinitions": [{"name": "app-role", "roleName": "x"}]},
            "authorization.roleDefinitions[0].name: must be a GUID",
        ),
        (
            {"roleAssignments": [{"principalId": APP, "roleName": "Reader", "scope": "rg-backup"}]},
            "authorization.roleAssignments[0].scope: must start with /subscriptions/",
        ),
    ],
)
def test_the_scenario_authorization_section_is_strict(section: dict[str, Any], named: str) -> None:
    with pytest.raises(ScenarioError) as raised:
        parse(scenario([], [], authorization=section))
    assert named in str(raised.value)


def test_the_emulator_answers_the_authorization_sdk_at_vault_and_resource_group_scope(emu: Emulator) -> None:
    """azure-mgmt-authorization's own calls (2022-04-01), as preflight makes them and beyond."""
    from azure.core.exceptions import ResourceNotFoundError
    from azure.mgmt.authorization import AuthorizationManagementClient

    from emulators.credential import StaticTokenCredential

    client = AuthorizationManagementClient(
        StaticTokenCredential(TOKEN), SUB, base_url=emu.url, connection_verify=emu.ca
    )
    rg_scope = f"/subscriptions/{SUB}/resourceGroups/{RG}"
    at_or_above = list(client.role_assignments.list_for_scope(rg_scope, filter="atScope()"))
    assert {(a.principal_id, a.scope) for a in at_or_above} == {
        (APP, rg_scope),
        (WIDE, f"/subscriptions/{SUB}"),
        (OPERATOR, f"/subscriptions/{SUB}"),
    }
    # without atScope(): the assignment below the scope too
    assert len(list(client.role_assignments.list_for_scope(rg_scope))) == 4
    mine = list(client.role_assignments.list_for_scope(VAULT_ID, filter=f"principalId eq '{APP}'"))
    assert sorted(a.scope for a in mine) == sorted([rg_scope, f"{VAULT_ID}/backupPolicies/weekly"])
    definition = client.role_definitions.get_by_id(mine[0].role_definition_id)
    assert definition.role_name in ("BackupChain app", "Backup Contributor")
    reader = client.role_definitions.get_by_id(
        "/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7"
    )
    assert reader.role_name == "Reader" and reader.permissions[0].actions == ["*/read"]
    with pytest.raises(ResourceNotFoundError, match="RoleDefinitionDoesNotExist"):
        client.role_definitions.get_by_id(
            f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{WIDE}"
        )
    # the caller's permissions (OPERATOR: Reader on the subscription) on the resource group and the vault
    assert [p.actions for p in client.permissions.list_for_resource_group(RG)] == [["*/read"]]
    on_vault = client.permissions.list_for_resource(RG, "Microsoft.RecoveryServices", "", "vaults", VAULT)
    assert [p.actions for p in on_vault] == [["*/read"]]


def test_a_resource_group_a_target_selects_needs_vm_read(emu: Emulator, tmp_path: Path) -> None:
    # Resource Graph leaves out what the app cannot read: a selection would silently find nothing.
    body = {"chains": [{"name": "c", "targets": [{"vaultId": VAULT_ID, "select": {"resourceGroups": ["rg-app", RG]}}]}]}
    code, result, err = preflight(emu, tmp_path, body, "--principal-id", APP)
    assert code == 1 and "resource group" in err
    app_rg = f"/subscriptions/{SUB}/resourceGroups/rg-app"
    assert failed(result) == {
        ("role", app_rg): "Microsoft.Compute/virtualMachines/read not held: Resource Graph would leave its VMs "
        "out of every selection (deploy with vmReaderResourceGroupIds)",
        ("role", f"/subscriptions/{SUB}/resourceGroups/{RG}"): "Microsoft.Compute/virtualMachines/read not held: "
        "Resource Graph would leave its VMs out of every selection (deploy with vmReaderResourceGroupIds)",
    }
    code, result, _ = preflight(emu, tmp_path, body)  # the caller holds Reader on the subscription
    assert ("role", app_rg) not in failed(result)
    assert ("role", app_rg) in {(c["check"], c["subject"]) for c in result["checks"] if c["ok"]}
