"""Endpoint fault injection: 429 with Retry-After, 500/503, latency, dropped connections, at rates set
globally or per operation (the spec's operationId, e.g. ``Backups_Trigger``); changeable at runtime.

Permanent errors: ``errors: {operationId: {"code": "AuthorizationFailed" | "ResourceNotFound",
"vms": [names]}}`` answers every matching request (of those VMs' protected items, or all when
``vms`` is absent) with Azure's error until cleared with ``{operationId: null}``. An ARM outage
longer than the app's retries is ``operations: {operationId: {"rate503": 1}}``."""

from __future__ import annotations

import asyncio
import random
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from emulators.recoveryservices import errors

KNOWN = ("rate429", "rate5xx", "rate503", "dropRate", "latencyMs", "retryAfterSeconds", "fail429Next", "fail5xxNext")


PERMANENT_CODES = ("AuthorizationFailed", "ResourceNotFound")
# The RBAC action a request needs, for AuthorizationFailed's message (operationId → action).
_ITEMS = "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems"
ACTIONS = {
    "ProtectedItems_CreateOrUpdate": f"{_ITEMS}/write",
    "ProtectedItems_Get": f"{_ITEMS}/read",
    "Backups_Trigger": f"{_ITEMS}/backup/action",
}
CLIENT_OBJECT_ID = "00000000-0000-0000-0000-00000000c0de"  # the emulator's stand-in caller


class FaultConfigError(ValueError):
    pass


@dataclass
class FaultConfig:
    global_: dict[str, float] = field(default_factory=dict)
    operations: dict[str, dict[str, float]] = field(default_factory=dict)
    errors: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> FaultConfig:
        config = cls()
        config.update(raw)
        return config

    def update(self, raw: dict[str, Any]) -> None:
        for key in KNOWN:
            if key in raw:
                self.global_[key] = float(raw[key])
        for op, values in (raw.get("operations") or {}).items():
            target = self.operations.setdefault(op, {})
            for key in KNOWN:
                if key in values:
                    target[key] = float(values[key])
        for op, spec in (raw.get("errors") or {}).items():
            if spec is None:
                self.errors.pop(op, None)
                continue
            if not isinstance(spec, dict) or spec.get("code") not in PERMANENT_CODES:
                raise FaultConfigError(f"errors.{op}: code must be one of {', '.join(PERMANENT_CODES)}")
            vms = spec.get("vms")
            if vms is not None and not (isinstance(vms, list) and all(isinstance(v, str) for v in vms)):
                raise FaultConfigError(f"errors.{op}.vms: must be a list of VM names")
            self.errors[op] = {"code": spec["code"], "vms": [v.lower() for v in vms] if vms is not None else None}

    def to_json(self) -> dict[str, Any]:
        return {**self.global_, "operations": self.operations, "errors": self.errors}

    def permanent(self, operation: str, path: str) -> str | None:
        """The permanent error code for this request, if one is set."""
        spec = self.errors.get(operation)
        if spec is None:
            return None
        if spec["vms"] is None:
            return str(spec["code"])
        match = re.search(r"/protecteditems/[^/]*;([^/;]+)(?:/|$)", path.lower())
        return str(spec["code"]) if match and match.group(1) in spec["vms"] else None

    def value(self, operation: str, key: str, default: float = 0.0) -> float:
        per_op = self.operations.get(operation, {})
        return per_op.get(key, self.global_.get(key, default))


class FaultInjector:
    def __init__(self, config: FaultConfig, seed: int):
        self.config = config
        self._rng = random.Random(f"faults|{seed}")
        self.injected: dict[str, int] = {}

    def _count(self, kind: str) -> None:
        self.injected[kind] = self.injected.get(kind, 0) + 1

    def _take(self, operation: str, key: str) -> bool:
        """Deterministic bursts: ``fail429Next: N`` fails the next N requests (per operation or global)."""
        for bucket in (self.config.operations.get(operation), self.config.global_):
            if bucket and bucket.get(key, 0) >= 1:
                bucket[key] -= 1
                return True
        return False

    async def apply(self, request: web.Request, operation: str) -> None:
        """Delay and/or raise an injected failure for this request (ArmError), or drop it."""
        cfg = self.config
        code = cfg.permanent(operation, request.path)
        if code is not None:
            self._count(code)
            raise permanent_error(code, operation, request.path)
        latency = cfg.value(operation, "latencyMs")
        if latency > 0:
            await asyncio.sleep(latency / 1000.0)
        roll = self._rng.random
        if roll() < cfg.value(operation, "dropRate"):
            self._count("drop")
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        if self._take(operation, "fail429Next") or roll() < cfg.value(operation, "rate429"):
            self._count("429")
            after = int(cfg.value(operation, "retryAfterSeconds", 1.0))
            raise errors.ArmError(
                429,
                errors.THROTTLED,
                f"Number of requests for subscription exceeded the limit. Please try again after '{after}' seconds.",
                {"Retry-After": str(after)},
            )
        if self._take(operation, "fail5xxNext") or roll() < cfg.value(operation, "rate5xx"):
            self._count("500")
            raise errors.ArmError(500, *errors.INTERNAL)
        if roll() < cfg.value(operation, "rate503"):
            self._count("503")
            raise errors.ArmError(503, *errors.UNAVAILABLE, {"Retry-After": "1"})


def permanent_error(code: str, operation: str, path: str) -> errors.ArmError:
    if code == "ResourceNotFound":
        return errors.not_found(path)
    # Status, code and text as ARM answers a caller lacking the RBAC action (403; shown verbatim in
    # Azure/Azure-Landing-Zones issue #3668).
    action = ACTIONS.get(operation, "Microsoft.RecoveryServices/vaults/read")
    return errors.ArmError(
        403,
        "AuthorizationFailed",
        f"The client '{CLIENT_OBJECT_ID}' with object id '{CLIENT_OBJECT_ID}' does not have authorization to "
        f"perform action '{action}' over scope '{path}' or the scope is invalid. If access was recently granted, "
        "please refresh your credentials.",
    )
