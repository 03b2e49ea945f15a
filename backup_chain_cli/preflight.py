"""``backup-chain preflight CONFIG``: the configuration against Azure, with the real SDKs and the
operator's credential. Each configured vault exists; each VM is protected in its vault (not
protection-stopped, unless weekend-window GC stops it on purpose) with a policy that schedules at
least a weekly backup (read as GC reads it: backup_chain.gc.PolicySchedule); the app's identity
holds on each vault the actions its GC mode needs (infra/modules/vault-role.bicep), and may read the
VMs of each resource group a target selects (Resource Graph leaves out what it cannot read)."""

from __future__ import annotations

import argparse
import os
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from backup_chain.config import ChainConfig
from backup_chain.gc import PolicySchedule, protection_on
from backup_chain.resource_ids import VaultId, VmId, policy_name
from backup_chain.timezones import known
from backup_chain_cli import azure_access
from backup_chain_cli.config_file import load, problems_data, show_problems
from backup_chain_cli.output import EXIT_OK, EXIT_PROBLEM, CliError, Output

FABRIC = "Azure"  # IaaS VM items live in the vault's only fabric
_ITEMS = "Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems/"
# The app's vault role (infra/modules/vault-role.bicep readAndTriggerActions / protectionActions;
# tests/cli/test_preflight.py checks they agree).
READ_AND_TRIGGER_ACTIONS = (
    _ITEMS + "backup/action",
    _ITEMS + "operationsStatus/read",
    _ITEMS + "operationResults/read",
    _ITEMS + "read",
    _ITEMS + "recoveryPoints/read",
    "Microsoft.RecoveryServices/Vaults/backupProtectedItems/read",
    "Microsoft.RecoveryServices/Vaults/backupJobs/read",
    "Microsoft.RecoveryServices/Vaults/backupPolicies/read",
    "Microsoft.RecoveryServices/Vaults/backupOperations/read",
    "Microsoft.RecoveryServices/Vaults/backupOperationResults/read",
)
PROTECTION_ACTIONS = (_ITEMS + "write",)
# Resource Graph answers only the resources its caller can read (infra/modules/vm-reader-access.bicep).
VM_READ_ACTION = "Microsoft.Compute/virtualMachines/read"


@dataclass(frozen=True)
class Check:
    check: str  # vault | protection | policy | role
    subject: str  # the vault id, VM id or action checked
    ok: bool
    detail: str


def required_actions(config: ChainConfig) -> tuple[str, ...]:
    """What the app calls on a vault; stopping and resuming protection (protectedItems/write) only
    in weekend-window mode or with gc.remediate."""
    gc = config.gc
    if gc is not None and (gc.mode == "weekend-window" or gc.remediate):
        return READ_AND_TRIGGER_ACTIONS + PROTECTION_ACTIONS
    return READ_AND_TRIGGER_ACTIONS


def _azure_error(err: Exception) -> str:
    """``code: message`` of an ARM error answer (HttpResponseError), else the exception's text."""
    error = getattr(err, "error", None)
    code = getattr(error, "code", None)
    message = getattr(error, "message", None) or getattr(err, "message", None) or str(err)
    status = getattr(err, "status_code", None)
    return f"{code or status or type(err).__name__}: {str(message).splitlines()[0]}"


def _unreachable(err: Exception, endpoint: str) -> CliError | None:
    """An error that is no finding about one resource but stops the whole preflight: no sign-in,
    no connection, TLS not trusted."""
    from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError

    if isinstance(err, ClientAuthenticationError):
        return CliError(f"cannot sign in to Azure ({str(err).splitlines()[0]}); run az login or set a credential")
    if isinstance(err, ServiceRequestError):
        return CliError(
            f"cannot reach ARM at {endpoint} ({str(err).splitlines()[0]}); check --arm-endpoint and TLS trust "
            "(--ca-bundle or REQUESTS_CA_BUNDLE)"
        )
    return None


class Preflight:
    def __init__(self, config: ChainConfig, arm: azure_access.Arm, principal: str | None, output: Output):
        self.config = config
        self.arm = arm
        self.principal = principal
        self.output = output
        self.results: list[Check] = []
        self._clients: dict[tuple[str, str], Any] = {}
        self._gc_covered = {vm.lower() for _, vm in config.gc_targets()}
        self._gc_vaults = {vault.lower() for vault, _ in config.gc_targets()} | {
            str(target["vaultId"]).lower() for target in config.gc_selections()
        }
        self._policies: dict[tuple[str, str], tuple[bool, str]] = {}  # (vault, policy) -> its verdict, read once

    def _client(self, kind: str, subscription: str) -> Any:
        key = (kind, subscription.lower())
        if key not in self._clients:
            factory = {"backup": self.arm.backup, "vaults": self.arm.vaults, "authorization": self.arm.authorization}
            self._clients[key] = factory[kind](subscription)
        return self._clients[key]

    def _call(self, fn: Callable[[], Any]) -> tuple[Any, str | None]:
        """``fn()``'s answer, or the ARM error it met (an unreachable ARM stops everything)."""
        from azure.core.exceptions import AzureError

        try:
            return fn(), None
        except AzureError as err:
            stop = _unreachable(err, self.arm.endpoint)
            if stop is not None:
                raise stop from None
            return None, _azure_error(err)

    def add(self, check: str, subject: str, ok: bool, detail: str) -> None:
        self.results.append(Check(check, subject, ok, detail))

    def run(self) -> list[Check]:
        vms_by_vault: dict[str, list[str]] = {}
        for chain in self.config.chains:
            for vault, vm in chain.vm_ids():
                vms_by_vault.setdefault(vault.lower(), []).append(vm)
        for vault_id in self.config.vault_ids():
            vms = vms_by_vault.get(vault_id.lower(), [])  # a vault whose targets only select: no listed VM
            self.output.progress(f"vault {vault_id} ({len(vms)} VM(s))")
            if self._vault(vault_id, len(vms)):
                self._roles(vault_id)
                self._gc_policy(vault_id)
                for vm in vms:
                    self.output.progress(f"  VM {vm}")
                    self._vm(vault_id, vm)
        for group in self._selected_groups():
            self.output.progress(f"resource group {group}")
            self._graph_reader(group)
        return self.results

    def _selected_groups(self) -> list[str]:
        """Each resource group a target's ``select.resourceGroups`` names, in its vault's
        subscription (the query's scope), once."""
        groups: dict[str, str] = {}
        for chain in self.config.chains:
            for target in chain.targets:
                subscription = VaultId.parse(target.vaultId).subscription
                for name in (target.select.resourceGroups if target.select else None) or []:
                    scope = f"/subscriptions/{subscription}/resourceGroups/{name}"
                    groups.setdefault(scope.lower(), scope)
        return list(groups.values())

    def _graph_reader(self, scope: str) -> None:
        subscription, group = scope.split("/")[2], scope.split("/")[4]
        client = self._client("authorization", subscription)
        if self.principal:
            permissions, error = self._call(
                lambda: azure_access.principal_permissions(client, scope, str(self.principal))
            )
        else:
            permissions, error = self._call(
                lambda: [
                    azure_access.Permission(tuple(p.actions or ()), tuple(p.not_actions or ()))
                    for p in client.permissions.list_for_resource_group(group)
                ]
            )
        if error is not None:
            self.add("role", scope, False, f"cannot read the role assignments: {error}")
        elif azure_access.allowed(permissions, VM_READ_ACTION):
            self.add("role", scope, True, "may read its VMs (Resource Graph selections)")
        else:
            self.add(
                "role",
                scope,
                False,
                f"{VM_READ_ACTION} not held: Resource Graph would leave its VMs out of every selection "
                "(deploy with vmReaderResourceGroupIds)",
            )

    def _vault(self, vault_id: str, vm_count: int) -> bool:
        vault = VaultId.parse(vault_id)
        client = self._client("vaults", vault.subscription)
        found, error = self._call(lambda: client.vaults.get(vault.resource_group, vault.name))
        if error is not None:
            self.add("vault", vault_id, False, f"{error} ({vm_count} VM(s) not checked)")
            return False
        self.add("vault", vault_id, True, f"exists in {found.location}")
        return True

    def _weekend_window(self, vm: str) -> bool:
        """A VM whose protection weekend-window GC stops between backups (with or without enforce)."""
        gc = self.config.gc
        return gc is not None and gc.mode == "weekend-window" and vm.lower() in self._gc_covered

    def _vm(self, vault_id: str, vm_id: str) -> None:
        vault, vm = VaultId.parse(vault_id), VmId.parse(vm_id)
        client = self._client("backup", vault.subscription)
        item, error = self._call(
            lambda: client.protected_items.get(
                vault.name, vault.resource_group, FABRIC, vm.container_name, vm.protected_item_name
            ).as_dict()
        )
        if error is not None:
            self.add("protection", vm_id, False, f"not protected in {vault.name}: {error}")
            return
        props = item.get("properties") or {}
        state = props.get("protectionState")
        policy = policy_name(props.get("policyId"))
        if self._weekend_window(vm_id):
            # weekend-window GC keeps protection stopped between windows; the gc.policy row covers its schedule
            self.add("protection", vm_id, True, f"protected in {vault.name} ({state}; weekend-window GC resumes it)")
            return
        if protection_on(state):
            self.add("protection", vm_id, True, f"{state} in {vault.name}")
        else:
            self.add(
                "protection",
                vm_id,
                False,
                f"protection is {state} in {vault.name}: no scheduled backup runs (GC starves)",
            )
        if not policy:
            self.add("policy", vm_id, False, "the protected item has no backup policy: no weekly backup is scheduled")
            return
        self._policy(vault_id, policy, vm_id)

    def _gc_policy(self, vault_id: str) -> None:
        """weekend-window: the policy protection resumes with (gc.policy) must exist in each vault of
        a covered VM and schedule the weekly backup GC waits for."""
        gc = self.config.gc
        if gc is None or not gc.policy or vault_id.lower() not in self._gc_vaults:
            return
        if gc.mode == "weekend-window" or gc.remediate:
            self._policy(vault_id, gc.policy, vault_id, what="gc.policy ")

    def _policy(self, vault_id: str, name: str, subject: str, what: str = "") -> None:
        key = (vault_id.lower(), name.lower())
        if key not in self._policies:
            self._policies[key] = self._read_policy(vault_id, name)
        ok, detail = self._policies[key]
        self.add("policy", subject, ok, f"{what}{name!r}{detail}")

    def _read_policy(self, vault_id: str, name: str) -> tuple[bool, str]:
        vault = VaultId.parse(vault_id)
        client = self._client("backup", vault.subscription)
        policy, error = self._call(
            lambda: client.protection_policies.get(vault.name, vault.resource_group, name).as_dict()
        )
        if error is not None:
            return False, f" cannot be read in {vault.name}: {error}"
        schedule = PolicySchedule.from_policy(policy)
        if not known(schedule.time_zone):
            return False, f": time zone {schedule.time_zone!r} unknown to the app"
        if not schedule.weekly_or_better:
            return False, f" schedules no weekly backup ({schedule.frequency})"
        runs = ", ".join(schedule.days) + " " if schedule.days else ""
        return True, f": {schedule.frequency} {runs}{'/'.join(schedule.times)} {schedule.time_zone}"

    def _roles(self, vault_id: str) -> None:
        vault = VaultId.parse(vault_id)
        client = self._client("authorization", vault.subscription)
        if self.principal:
            permissions, error = self._call(
                lambda: azure_access.principal_permissions(client, vault_id, str(self.principal))
            )
        else:
            permissions, error = self._call(
                lambda: azure_access.caller_permissions(
                    client, vault.resource_group, "Microsoft.RecoveryServices", "vaults", vault.name
                )
            )
        if error is not None:
            self.add("role", vault_id, False, f"cannot read the role assignments: {error}")
            return
        missing = [a for a in required_actions(self.config) if not azure_access.allowed(permissions, a)]
        for action in missing:
            self.add("role", action, False, f"not held on {vault.name}")
        if not missing:
            self.add("role", vault_id, True, f"holds the {len(required_actions(self.config))} actions the app needs")


def run_preflight(args: argparse.Namespace, output: Output) -> int:
    config, problems = load(Path(args.config))
    if config is None:
        show_problems(output, args.config, problems)
        output.data({"config": args.config, "problems": problems_data(problems)})
        output.error("the configuration is invalid (backup-chain validate); fix it before a preflight")
        return EXIT_PROBLEM
    ca_bundle = args.ca_bundle
    if ca_bundle and not Path(ca_bundle).is_file():
        raise CliError(f"--ca-bundle {ca_bundle}: no such file")
    try:
        credential = azure_access.credential(args.arm_endpoint, args.local_token)
    except ValueError as err:
        raise CliError(str(err)) from None
    principal = args.principal_id
    from_env = azure_access.env_principal()
    if principal is None and from_env:
        try:
            principal = _principal_id(from_env)
        except argparse.ArgumentTypeError as err:
            raise CliError(f"APP_PRINCIPAL_ID {err}") from None
    who = f"app identity {principal}" if principal else "the signed-in caller (no --principal-id or APP_PRINCIPAL_ID)"
    output.progress(f"checking {args.config} against {args.arm_endpoint}; roles of {who}")
    arm = azure_access.Arm(args.arm_endpoint, credential, ca_bundle)
    results = Preflight(config, arm, principal, output).run()
    failed = [r for r in results if not r.ok]
    output.table(
        f"preflight of {args.config} (roles of {who})",
        ("check", "subject", "result", "detail"),
        [(r.check, r.subject, "ok" if r.ok else "FAILED", r.detail) for r in results],
    )
    output.text(f"{len(failed)} of {len(results)} check(s) failed" if failed else f"all {len(results)} checks passed")
    output.data({"config": args.config, "rolesOf": principal, "ok": not failed, "checks": [asdict(r) for r in results]})
    return EXIT_PROBLEM if failed else EXIT_OK


def _principal_id(value: str) -> str:
    """An object id given but empty (an unset ``$APP_PRINCIPAL_ID`` in a hook) is an error, not a
    silent switch to checking the caller's own permissions."""
    if not value.strip():
        raise argparse.ArgumentTypeError("is empty; give the app identity's object id (azd output APP_PRINCIPAL_ID)")
    try:  # an object id is a GUID; anything else would change the role-assignment $filter
        return str(uuid.UUID(value.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an object id (a GUID)") from None


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "preflight",
        help="check a configuration against Azure: vaults, protection, weekly policies, the app's role",
        description="Check a chain configuration against Azure with your credential. Exit 0: all checks passed; "
        "1: a check failed (each named in the table).",
    )
    parser.add_argument("config", metavar="CONFIG", help="the chain configuration file")
    parser.add_argument(
        "--principal-id",
        type=_principal_id,
        help="object id of the app's managed identity whose roles to check (default: $APP_PRINCIPAL_ID, an azd "
        "output; without either, your own permissions are checked)",
    )
    parser.add_argument(
        "--arm-endpoint",
        default=os.environ.get("ARM_ENDPOINT") or azure_access.DEFAULT_ARM_ENDPOINT,
        help="ARM endpoint (default: $ARM_ENDPOINT or %(default)s); a local emulator's URL for the local stack",
    )
    parser.add_argument(
        "--local-token",
        help="a fixed bearer token for a local emulator (only with a loopback --arm-endpoint)",
    )
    parser.add_argument("--ca-bundle", metavar="FILE", help="CA certificates to trust (default: REQUESTS_CA_BUNDLE)")
    parser.set_defaults(run=run_preflight)
