"""What the routes share: the clock, the engine, fault injection, ARM throttling and request counters."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from emulators.recoveryservices.engine import Engine
from emulators.recoveryservices.faults import FaultConfig, FaultInjector
from emulators.recoveryservices.model import Vault
from emulators.recoveryservices.resource_graph import ResourceGraph
from emulators.recoveryservices.scenario import Scenario, load
from emulators.recoveryservices.throttling import Throttler
from localclock.clock import Clock


class Runtime:
    def __init__(self, scenario_path: Path, clock: Clock):
        self.scenario_path = Path(scenario_path)
        self.clock = clock
        self.requests: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.reset()

    def reset(self) -> None:
        """Reload the scenario at the current clock time; counters, faults and throttling start afresh."""
        self.scenario: Scenario = load(self.scenario_path)
        self.engine = Engine(self.scenario, self.clock.timestamp())
        self.faults = FaultInjector(FaultConfig.from_json(self.scenario.faults), self.scenario.seed)
        self.throttler = Throttler(self.scenario.throttling)
        self.bearer_token = self.scenario.bearer_token
        self.graph = ResourceGraph(page_size=self.scenario.graph_page_size)
        self.async_retry_after = int(self.scenario.faults.get("asyncRetryAfterSeconds", 0))
        self.requests.clear()
        self.statuses.clear()

    def now(self) -> float:
        return self.clock.timestamp()

    def settle(self) -> float:
        now = self.now()
        self.engine.settle(now)
        return now

    def count(self, operation: str) -> None:
        self.requests[operation] += 1

    def count_status(self, operation: str, status: int) -> None:
        self.statuses[f"{operation}:{status}"] += 1

    def policy_counts(self, vault: Vault) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for item in self.engine.vault_items(vault):
            if item.protected and item.policy:
                counts[item.policy.lower()] += 1
        return dict(counts)
