"""ARM authorization answers (Microsoft.Authorization 2022-04-01) from the optional scenario section
``authorization``, so a preflight can ask who may do what on a vault::

    "authorization": {
      "callerPrincipalId": "<object id the emulator's bearer token stands for>",
      "roleDefinitions": [{"name": "<guid>", "roleName": "BackupChain app",
                           "actions": ["Microsoft.RecoveryServices/Vaults/backupJobs/read"], "notActions": []}],
      "roleAssignments": [{"principalId": "<object id>", "roleName": "Backup Operator" | "roleDefinitionId": "<id>",
                           "scope": "/subscriptions/<sub>/resourceGroups/<rg>"}]
    }

Shapes as in azure-rest-api-specs authorization stable/2022-04-01 (RoleAssignments_ListForScope.json,
GetRoleDefinitionById.json; Permissions_ListForResource answers ``{"value": [Permission]}``).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from emulators.recoveryservices import errors

KEY = "authorization"
API_VERSIONS = ("2022-04-01", "2015-07-01")
_DEFINITIONS = "/providers/Microsoft.Authorization/roleDefinitions/"
_RS = "Microsoft.RecoveryServices/Vaults/"
_ITEMS = _RS + "backupFabrics/protectionContainers/protectedItems/"


@dataclass(frozen=True)
class RoleDefinition:
    name: str  # the guid
    role_name: str
    role_type: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...] = ()


# The built-in roles the scenarios name, with the Microsoft.RecoveryServices actions of their real
# definitions the app's calls need (learn.microsoft.com/azure/role-based-access-control/built-in-roles:
# Reader, Backup Operator, Backup Contributor; ids are the built-in role ids, the same in every tenant).
BUILT_IN = (
    RoleDefinition("acdd72a7-3385-48ef-bd42-f606fba81ae7", "Reader", "BuiltInRole", ("*/read",)),
    RoleDefinition(
        "00c29273-979b-4161-815c-10b084fb9324",
        "Backup Operator",
        "BuiltInRole",
        (
            "Microsoft.Authorization/*/read",
            _ITEMS + "backup/action",
            _ITEMS + "operationResults/read",
            _ITEMS + "operationsStatus/read",
            _ITEMS + "read",
            _ITEMS + "recoveryPoints/read",
            _ITEMS + "write",
            _RS + "backupJobs/read",
            _RS + "backupOperationResults/read",
            _RS + "backupOperations/read",
            _RS + "backupPolicies/read",
            _RS + "backupProtectedItems/read",
            _RS + "read",
        ),
    ),
    RoleDefinition(
        "5e467623-bb1f-42f4-a55d-6e525e11384b",
        "Backup Contributor",
        "BuiltInRole",
        (
            "Microsoft.Authorization/*/read",
            _RS + "backupFabrics/protectionContainers/*",
            _RS + "backupJobs/*",
            _RS + "backupOperationResults/*",
            _RS + "backupOperations/*",
            _RS + "backupPolicies/*",
            _RS + "backupProtectedItems/*",
            _RS + "read",
        ),
    ),
)


@dataclass(frozen=True)
class Assignment:
    name: str
    principal_id: str
    definition: RoleDefinition
    scope: str


@dataclass(frozen=True)
class Authorization:
    caller_principal_id: str | None
    definitions: tuple[RoleDefinition, ...]
    assignments: tuple[Assignment, ...]


def _problem(where: str, message: str) -> ValueError:
    return ValueError(f"{KEY}.{where}: {message}")


def parse(raw: dict[str, Any] | None) -> Authorization:
    """The section, its keys already typed by scenario_schema; checks the references."""
    raw = raw or {}
    definitions = list(BUILT_IN)
    for index, entry in enumerate(raw.get("roleDefinitions") or []):
        name = str(entry["name"])
        try:
            uuid.UUID(name)
        except ValueError:
            raise _problem(f"roleDefinitions[{index}].name", f"must be a GUID, got {name!r}") from None
        definitions.append(
            RoleDefinition(
                name.lower(),
                str(entry["roleName"]),
                "CustomRole",
                tuple(entry.get("actions") or ()),
                tuple(entry.get("notActions") or ()),
            )
        )
    by_key = {d.name.lower(): d for d in definitions} | {d.role_name.lower(): d for d in definitions}
    assignments = []
    for index, entry in enumerate(raw.get("roleAssignments") or []):
        ref = entry.get("roleDefinitionId") or entry.get("roleName")
        if not ref or bool(entry.get("roleDefinitionId")) == bool(entry.get("roleName")):
            raise _problem(f"roleAssignments[{index}]", "give exactly one of roleDefinitionId and roleName")
        definition = by_key.get(str(ref).rstrip("/").rsplit("/", 1)[-1].lower())
        if definition is None:
            raise _problem(f"roleAssignments[{index}]", f"no role definition {ref!r} (built-in or in roleDefinitions)")
        scope = "/" + str(entry["scope"]).strip("/")
        if not scope.lower().startswith("/subscriptions/"):
            raise _problem(f"roleAssignments[{index}].scope", f"must start with /subscriptions/, got {scope!r}")
        name = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{scope}|{entry['principalId']}|{definition.name}"))
        assignments.append(Assignment(name, str(entry["principalId"]), definition, scope))
    return Authorization(raw.get("callerPrincipalId"), tuple(definitions), tuple(assignments))


def _applies(assigned_scope: str, scope: str) -> bool:
    """An assignment at a scope applies there and to everything beneath it."""
    a, s = assigned_scope.lower().rstrip("/"), scope.lower().rstrip("/")
    return s == a or s.startswith(a + "/")


def _definition_id(definition: RoleDefinition, subscription: str) -> str:
    return f"/subscriptions/{subscription}{_DEFINITIONS}{definition.name}"


def role_assignment(assignment: Assignment, subscription: str) -> dict[str, Any]:
    return {
        "properties": {
            "roleDefinitionId": _definition_id(assignment.definition, subscription),
            "principalId": assignment.principal_id,
            "principalType": "ServicePrincipal",
            "scope": assignment.scope,
        },
        "id": f"{assignment.scope}/providers/Microsoft.Authorization/roleAssignments/{assignment.name}",
        "type": "Microsoft.Authorization/roleAssignments",
        "name": assignment.name,
    }


def role_definition(definition: RoleDefinition, subscription: str) -> dict[str, Any]:
    return {
        "properties": {
            "roleName": definition.role_name,
            "type": definition.role_type,
            "description": definition.role_name,
            "assignableScopes": ["/"] if definition.role_type == "BuiltInRole" else [f"/subscriptions/{subscription}"],
            "permissions": [
                {
                    "actions": list(definition.actions),
                    "notActions": list(definition.not_actions),
                    "dataActions": [],
                    "notDataActions": [],
                }
            ],
        },
        "id": _definition_id(definition, subscription),
        "type": "Microsoft.Authorization/roleDefinitions",
        "name": definition.name,
    }


_PRINCIPAL = re.compile(r"^\s*(?:principalId\s+eq\s+'?([^')\s]+)'?|assignedTo\('([^']+)'\))\s*$", re.IGNORECASE)


def list_assignments(auth: Authorization, scope: str, flt: str | None, subscription: str) -> list[dict[str, Any]]:
    """RoleAssignments_ListForScope: at, above or below ``scope``; ``atScope()`` keeps those at or
    above it; ``principalId eq '{id}'`` / ``assignedTo('{id}')`` one principal's."""
    principal = None
    at_scope = False
    if flt:
        if flt.strip().lower() == "atscope()":
            at_scope = True
        elif match := _PRINCIPAL.match(flt):
            principal = (match[1] or match[2]).lower()
        else:
            raise errors.bad_request(f"The filter '{flt}' is not supported.", "UnsupportedQuery")
    out = []
    for assignment in auth.assignments:
        if principal is not None and assignment.principal_id.lower() != principal:
            continue
        above = _applies(assignment.scope, scope)
        if not above and (at_scope or not _applies(scope, assignment.scope)):
            continue
        out.append(role_assignment(assignment, subscription))
    return out


def get_definition(auth: Authorization, definition_id: str, subscription: str) -> dict[str, Any]:
    name = definition_id.rstrip("/").rsplit("/", 1)[-1].lower()
    for definition in auth.definitions:
        if definition.name == name:
            return role_definition(definition, subscription)
    raise errors.ArmError(
        404, "RoleDefinitionDoesNotExist", f"The specified role definition with ID '{name}' does not exist."
    )


def caller_permissions(auth: Authorization, scope: str) -> list[dict[str, Any]]:
    """Permissions_ListForResource / _ListForResourceGroup: the caller's, one entry per role
    assignment that applies at ``scope``."""
    if auth.caller_principal_id is None:
        return []
    return [
        {
            "actions": list(a.definition.actions),
            "notActions": list(a.definition.not_actions),
            "dataActions": [],
            "notDataActions": [],
        }
        for a in auth.assignments
        if a.principal_id.lower() == auth.caller_principal_id.lower() and _applies(a.scope, scope)
    ]
