"""What a refused stop protection (weekend-window close) means for an operator: a GC finding with
the reason and what to do. Protection stays on (garbage collection keeps running, scheduled backups
go on) until someone acts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Multi-user authorization: the vault's Resource Guard protects "modify protection"
# (MicrosoftDocs/azure-docs articles/backup/multi-user-authorization-concept.md). No Microsoft
# source found names the refusal's error code; this is the emulator's stand-in, and the message
# naming the Resource Guard is matched as well.
RESOURCE_GUARD_CODES = frozenset({"UserErrorResourceGuardOperationNotAuthorized"})


@dataclass(frozen=True)
class StopFinding:
    code: str
    reason: str
    recommendations: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"finding": self.code, "reason": self.reason, "recommendations": list(self.recommendations)}


def _resource_guard(code: str | None, message: str | None) -> bool:
    return code in RESOURCE_GUARD_CODES or "resource guard" in (message or "").casefold()


def stop_finding(code: str | None, message: str | None) -> StopFinding:
    """The finding for a stop protection Azure refused with ``code`` / ``message``."""
    if _resource_guard(code, message):
        return StopFinding(
            "resourceGuardBlocksStop",
            "the vault's Resource Guard (multi-user authorization) protects stop protection, and the "
            "app holds no approved guard operation request: protection is still on",
            (
                "Either exclude 'Modify protection' "
                "(Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems/write) "
                "from the Resource Guard's protected operations, or use gc.mode weekly-policy for this vault.",
                "Until then protection stays on and the policy's scheduled backups keep running; stop "
                "protection by hand with the guard owner's approval if it must be off.",
            ),
        )
    return StopFinding(
        "stopRefused",
        f"Azure refused to stop protection ({code}): protection is still on",
        ("Look at Azure's errorCode and message, fix the cause, and stop protection by hand if it must be off.",),
    )
