"""Endpoint fault injection: 429 with Retry-After, 500/503, latency, dropped connections, at rates set
globally or per operation (the spec's operationId, e.g. ``Backups_Trigger``); changeable at runtime."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from emulators.recoveryservices import errors

KNOWN = ("rate429", "rate5xx", "rate503", "dropRate", "latencyMs", "retryAfterSeconds", "fail429Next", "fail5xxNext")


@dataclass
class FaultConfig:
    global_: dict[str, float] = field(default_factory=dict)
    operations: dict[str, dict[str, float]] = field(default_factory=dict)

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

    def to_json(self) -> dict[str, Any]:
        return {**self.global_, "operations": self.operations}

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
