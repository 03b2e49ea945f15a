"""The operator's way into Azure for ``preflight``: a credential, the real SDK clients, and what a
principal may do at a scope (ARM role assignments and role definitions, wildcards included)."""

from __future__ import annotations

import fnmatch
import logging
import os
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

DEFAULT_ARM_ENDPOINT = "https://management.azure.com"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class LocalTokenCredential:
    """A fixed bearer token for a local emulator; built only for a loopback ARM endpoint (the rule
    of the app's own local credential), so a made-up token never goes to Azure."""

    def __init__(self, token: str):
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo(self._token, int(time.time()) + 3600)

    def close(self) -> None:
        return None


def is_loopback(url: str) -> bool:
    return (urlparse(url).hostname or "") in _LOOPBACK


def credential(arm_endpoint: str, local_token: str | None) -> Any:
    """``local_token`` for a loopback emulator only; otherwise the operator's own login
    (azure-identity DefaultAzureCredential: environment, managed identity, Azure CLI, ...)."""
    if local_token is not None:
        if not is_loopback(arm_endpoint):
            raise ValueError(
                f"--local-token is only allowed with a loopback --arm-endpoint (got {arm_endpoint}); "
                "against Azure, sign in (az login) and leave --local-token out"
            )
        return LocalTokenCredential(local_token)
    from azure.identity import DefaultAzureCredential

    # Each credential it tries logs a warning; the one-line sign-in error says what each said.
    logging.getLogger("azure.identity").setLevel(logging.CRITICAL)
    return DefaultAzureCredential()


@dataclass(frozen=True)
class Arm:
    """Where and how to call ARM: endpoint, credential, TLS trust (None: the system's, or
    ``REQUESTS_CA_BUNDLE`` which requests honours)."""

    endpoint: str
    credential: Any
    ca_bundle: str | None = None

    def _kwargs(self) -> dict[str, Any]:
        # Token audience: the ARM endpoint in any cloud; the local emulator accepts Azure's.
        audience = DEFAULT_ARM_ENDPOINT if is_loopback(self.endpoint) else self.endpoint.rstrip("/")
        kwargs: dict[str, Any] = {"base_url": self.endpoint, "credential_scopes": [f"{audience}/.default"]}
        if self.ca_bundle:
            kwargs["connection_verify"] = self.ca_bundle
        return kwargs

    def backup(self, subscription: str) -> Any:
        from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient

        return RecoveryServicesBackupClient(self.credential, subscription, **self._kwargs())

    def vaults(self, subscription: str) -> Any:
        from azure.mgmt.recoveryservices import RecoveryServicesClient

        return RecoveryServicesClient(self.credential, subscription, **self._kwargs())

    def authorization(self, subscription: str) -> Any:
        from azure.mgmt.authorization import AuthorizationManagementClient

        return AuthorizationManagementClient(self.credential, subscription, **self._kwargs())


@dataclass(frozen=True)
class Permission:
    """One role's ``actions`` less its ``notActions`` (ARM: a notAction removes only from the
    actions of its own role definition)."""

    actions: tuple[str, ...]
    not_actions: tuple[str, ...] = ()

    def allows(self, action: str) -> bool:
        return any(_matches(p, action) for p in self.actions) and not any(_matches(p, action) for p in self.not_actions)


def _matches(pattern: str, action: str) -> bool:
    """ARM operation strings compare case-insensitively; ``*`` matches any characters, slashes
    included (``Microsoft.RecoveryServices/*``, ``*/read``)."""
    return fnmatch.fnmatchcase(action.lower(), pattern.lower().replace("[", "[[]"))


def allowed(permissions: list[Permission], action: str) -> bool:
    return any(p.allows(action) for p in permissions)


def _applies(assigned_scope: str, scope: str) -> bool:
    a, s = assigned_scope.lower().rstrip("/"), scope.lower().rstrip("/")
    return s == a or s.startswith(a + "/")


def principal_permissions(client: Any, scope: str, principal_id: str) -> list[Permission]:
    """What ``principal_id`` holds at ``scope``: its role assignments there or above (listed with
    ``principalId eq`` — at, above or below the scope — and kept when their scope contains
    ``scope``), each role definition's permissions. azure-rest-api-specs authorization
    stable/2022-04-01 authorization-RoleAssignmentsCalls.json (RoleAssignments_ListForScope
    $filter) and authorization-RoleDefinitionsCalls.json (RoleDefinitions_GetById). Deny
    assignments and group membership are not resolved."""
    definitions: dict[str, list[Permission]] = {}
    out: list[Permission] = []
    for assignment in client.role_assignments.list_for_scope(scope, filter=f"principalId eq '{principal_id}'"):
        if not _applies(assignment.scope or "", scope):
            continue
        definition_id = assignment.role_definition_id
        if definition_id.lower() not in definitions:
            definition = client.role_definitions.get_by_id(definition_id)
            definitions[definition_id.lower()] = [
                Permission(tuple(p.actions or ()), tuple(p.not_actions or ())) for p in definition.permissions or ()
            ]
        out += definitions[definition_id.lower()]
    return out


def caller_permissions(
    client: Any, resource_group: str, namespace: str, resource_type: str, name: str
) -> list[Permission]:
    """The signed-in caller's permissions on a resource (Permissions_ListForResource: ARM's
    permissions API answers for the caller only)."""
    return [
        Permission(tuple(p.actions or ()), tuple(p.not_actions or ()))
        for p in client.permissions.list_for_resource(resource_group, namespace, "", resource_type, name)
    ]


def env_principal() -> str | None:
    """The app's identity as azd leaves it (infra/main.bicep output APP_PRINCIPAL_ID)."""
    return os.environ.get("APP_PRINCIPAL_ID") or None
