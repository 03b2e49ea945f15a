"""The fast orchestrator tier's driver: devhost (manual clock) hosting tests/orchestrators/app,
whose orchestrators are the app's own and whose activities answer from a script.

Time skips like a time-skipping test server: once devhost is idle (nothing ready, nothing
running), the manual clock jumps to the next scheduled message (a durable timer, a retry's
delay), so no test waits on real time and none skips a step that was due first."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from backup_chain.polling import PollPlan
from devhost.store import Store
from localclock.clock import Clock
from tests.support.activity_script import ENV_DIR, LEASE_WAITS_ENV, ActivityScript, mentions
from tests.support.devhost_harness import DevHostProcess

APP_DIR = Path(__file__).resolve().parents[1] / "orchestrators" / "app"
REPO_ROOT = Path(__file__).resolve().parents[2]
TERMINAL = ("Completed", "Failed", "Terminated")
SETTLE_SECONDS = 20.0
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
PREFIX = "BackupChain."
# The protection lease's wait bound in the tier's app (orchestrators/protection.py waits 240 times).
LEASE_MAX_WAITS = 4
# The poll plan chain_run gives a VM with the default 5-15 min snapshot window.
PLAN = dict(PollPlan.for_minutes(5, 15).__dict__)


def vault_id(name: str) -> str:
    return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-backup/providers/Microsoft.RecoveryServices/vaults/{name}"


def vm_id(name: str) -> str:
    return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/{name}"


VAULT_ID = vault_id("v1")


def status_input(status: dict[str, Any]) -> Any:
    """An instance status's input (devhost, as Azure, returns an orchestration's input as JSON text)."""
    value = status.get("input")
    return json.loads(value) if isinstance(value, str) else value


def custom(status: dict[str, Any], key: str) -> Any:
    """One field of an instance status's custom status (None when it has none)."""
    return (status.get("customStatus") or {}).get(key)


def finished(status: dict[str, Any]) -> bool:
    return status.get("runtimeStatus") in TERMINAL


@dataclass
class OrchestratorTier:
    host: DevHostProcess
    script: ActivityScript
    store: Store  # devhost's task hub, read to see when it is idle and what is due next

    @classmethod
    def start(cls, base: Path, clock_start: datetime) -> OrchestratorTier:
        script = ActivityScript(base / "script")
        host = DevHostProcess(
            APP_DIR,
            base / "state" / "state.db",
            base / "marks",
            env={
                ENV_DIR: str(script.directory),
                LEASE_WAITS_ENV: str(LEASE_MAX_WAITS),
                "PYTHONPATH": str(REPO_ROOT),
            },
            clock_start=clock_start,
        )
        host.start()
        return cls(host, script, Store(host.state))

    def stop(self) -> None:
        self.store.close()
        self.host.stop(kill=True)

    # --- time -----------------------------------------------------------------------------------
    def now(self) -> datetime:
        return Clock.manual(self.host.state.parent / "clock").now()

    def at(self, seconds: float) -> str:
        """ISO time ``seconds`` from the clock's now (negative: in the past)."""
        return iso(self.now() + timedelta(seconds=seconds))

    def settle(self) -> None:
        """Wait until devhost has nothing ready and nothing running: its task hub shows no ready
        message and no activity (read directly, cheaply, while work goes on), then its own status
        agrees (nothing in flight between two of its transactions)."""
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            ready, activities = self.store.backlog(self.now().timestamp())
            if (
                ready == 0
                and activities == 0
                and self.host.call("GET", "/admin/host/status", key="master").json()["idle"]
            ):
                return
            assert time.monotonic() < deadline, f"devhost did not settle in {SETTLE_SECONDS} s"
            time.sleep(0.005)

    def jump(self) -> float:
        """Move the clock to the next scheduled message; returns the seconds jumped."""
        due = self.store.next_visible_at()
        assert due is not None, "nothing is scheduled: the orchestration waits for something the test must send"
        seconds = max(0.0, due - self.now().timestamp())
        self.host.advance(seconds)
        return seconds

    # --- orchestrations -------------------------------------------------------------------------
    def begin(self, name: str, instance_id: str, payload: Any) -> None:
        response = self.host.call("POST", f"/api/orchestrators/{name}/{instance_id}", data=json.dumps(payload))
        assert response.status_code == 202, response.text

    def drive(
        self, instance_id: str, until: Callable[[dict[str, Any]], bool] = finished, max_jumps: int = 300
    ) -> dict[str, Any]:
        """Settle, check ``until`` on the instance's status, jump the clock; repeat."""
        for _ in range(max_jumps):
            self.settle()
            status = self.host.status(instance_id)
            if status and until(status):
                return status
            self.jump()
        raise AssertionError(f"{instance_id} did not get there in {max_jumps} clock jumps: {status}")

    def run(self, name: str, instance_id: str, payload: Any) -> dict[str, Any]:
        """Start ``name`` and drive it to its end; returns its final status."""
        self.begin(name, instance_id, payload)
        return self.drive(instance_id)

    def timers(self, instance_id: str) -> list[datetime]:
        """When each durable timer the instance created fires (its retry delays included)."""
        return [moment(str(e["FireAt"])) for e in self.host.history(instance_id) if e["EventType"] == "TimerCreated"]

    def input_of(self, instance_id: str) -> Any:
        """The input of the instance's current execution."""
        return status_input(self.host.status(instance_id))

    def started_at(self, instance_id: str) -> datetime:
        """When the instance started (its first history event), on the virtual clock."""
        first = self.host.history(instance_id)[0]
        return moment(str(first["Timestamp"]))

    def signal(self, entity: str, key: str, operation: str, data: Any) -> None:
        response = self.host.mgmt("POST", f"entities/{entity}/{key}", params={"op": operation}, json=data)
        assert response.status_code == 202, response.text

    def terminate(self, instance_id: str) -> None:
        """End an instance a test leaves running (cancelling a run stops watching, not the VMs')."""
        response = self.host.mgmt("POST", f"instances/{instance_id}/terminate", params={"reason": "test over"})
        assert response.status_code in (202, 410), response.text

    def raise_event(self, instance_id: str, name: str, data: Any) -> None:
        response = self.host.mgmt("POST", f"instances/{instance_id}/raiseEvent/{name}", json=data)
        assert response.status_code == 202, response.text

    # --- what the scripted activities saw -------------------------------------------------------
    def published(self, token: str) -> list[dict[str, Any]]:
        """Every event the orchestrations asked to publish that mentions ``token``, in order."""
        events = [e for request in self.script.requests("publish_events", token) for e in request["events"]]
        return [e for e in events if mentions(e, token)]

    def types(self, token: str) -> list[str]:
        return [str(e["type"]).removeprefix(PREFIX) for e in self.published(token)]

    def unscripted(self, token: str) -> list[dict[str, Any]]:
        """Calls mentioning ``token`` that failed for want of a scripted answer."""
        return [c for c in self.script.calls(when=token) if c["answer"] is None]


def moment(text: str) -> datetime:
    """An ISO time as the orchestrators and devhost write it (``Z``, any precision)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
