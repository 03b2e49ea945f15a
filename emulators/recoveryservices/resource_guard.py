"""A vault's Resource Guard (multi-user authorization), from the scenario key ``resourceGuard``::

    "resourceGuard": true
    "resourceGuard": {"name": "guard-sec", "excludedOperations": [
        "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems/write"]}

Operation names are the ``vaultCriticalOperation`` strings of Azure's resource guard API
(``vaultCriticalOperationExclusionList``; azure-rest-api-specs dataprotection
ResourceGuardCRUD/PutResourceGuard.json, azure-cli dataprotection ``critical_operation_map``).
MicrosoftDocs/azure-docs articles/backup/multi-user-authorization-concept.md: disabling soft delete
and removing MUA are mandatory (cannot be excluded), the others optional.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_OPS = "Microsoft.RecoveryServices/vaults/"
MODIFY_PROTECTION = _OPS + "backupFabrics/protectionContainers/protectedItems/write"
OPTIONAL_OPERATIONS = frozenset(
    {
        MODIFY_PROTECTION,
        _OPS + "backupFabrics/protectionContainers/protectedItems/delete",
        _OPS + "backupPolicies/write",
        _OPS + "backupSecurityPIN/action",
    }
)
MANDATORY_OPERATIONS = frozenset({_OPS + "backupconfig/write", _OPS + "backupResourceGuardProxies/delete"})
DEFAULT_NAME = "resource-guard"
KEY = "resourceGuard"


@dataclass(frozen=True)
class ResourceGuard:
    name: str
    excluded_operations: frozenset[str] = frozenset()

    def guards(self, operation: str) -> bool:
        return operation not in self.excluded_operations

    def authorizes(self, requests: Any) -> bool:
        """Whether ``properties.resourceGuardOperationRequests`` names this guard's
        ``updateProtectedItemRequests`` (as Az PowerShell's CreateOrUpdateProtectedItem sends it)."""
        pattern = re.compile(
            rf"/providers/Microsoft\.DataProtection/resourceGuards/{re.escape(self.name)}/updateProtectedItemRequests/[^/]+$",
            re.IGNORECASE,
        )
        return isinstance(requests, list) and any(isinstance(r, str) and pattern.search(r) for r in requests)


def parse(raw: Any | None) -> ResourceGuard | None:
    """The vault's guard, or ``None``; a malformed value raises ScenarioError naming the key."""
    from emulators.recoveryservices.scenario import ScenarioError  # scenario imports this module

    if raw is None or raw is False:
        return None
    if raw is True:
        return ResourceGuard(DEFAULT_NAME)
    if not isinstance(raw, dict):
        raise ScenarioError(f"{KEY} must be true or an object, got {raw!r}")
    unknown = sorted(set(raw) - {"name", "excludedOperations"})
    if unknown:
        raise ScenarioError(f"{KEY}: unknown key {unknown[0]!r}")
    name = raw.get("name", DEFAULT_NAME)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", name):
        raise ScenarioError(f"{KEY}.name must be a resource name (letters, digits, '-', '_'), got {name!r}")
    excluded = raw.get("excludedOperations", [])
    if not isinstance(excluded, list) or not all(isinstance(op, str) for op in excluded):
        raise ScenarioError(f"{KEY}.excludedOperations must be a list of operation names, got {excluded!r}")
    for op in excluded:
        if op in MANDATORY_OPERATIONS:
            raise ScenarioError(f"{KEY}.excludedOperations: {op!r} is mandatory and cannot be excluded")
        if op not in OPTIONAL_OPERATIONS:
            raise ScenarioError(
                f"{KEY}.excludedOperations: unknown operation {op!r}; one of {sorted(OPTIONAL_OPERATIONS)}"
            )
    return ResourceGuard(name, frozenset(excluded))
