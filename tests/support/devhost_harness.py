"""Run devhost as a real subprocess for tests and talk to it over real HTTP."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import requests

from devhost.procs import Service, start_service, wait_until
from localclock.clock import ENV_FILE, ENV_MODE, Clock

__all__ = ["CLOCK_START", "DevHostProcess", "wait_until"]
CLOCK_START = datetime(2027, 1, 4, 3, 0, tzinfo=timezone.utc)  # a Monday, as in chain_stack.DEFAULT_START
TERMINAL = ("Completed", "Failed", "Terminated")


@dataclass
class DevHostProcess:
    app_dir: Path
    state: Path
    marks_dir: Path
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    clock_start: datetime = CLOCK_START
    program: list[str] = field(default_factory=list)  # an installed `devhost` command instead of `python -m devhost`
    service: Service | None = None
    info: dict[str, Any] = field(default_factory=dict)
    session: requests.Session = field(default_factory=requests.Session)

    def start(self) -> DevHostProcess:
        self.marks_dir.mkdir(parents=True, exist_ok=True)
        # The shared clock file is created at a fixed instant (kept across restarts), so no test's
        # timers depend on the day it runs on.
        Clock.manual(self.state.parent / "clock", start=self.clock_start)
        env = {
            "SAMPLE_MARKS_DIR": str(self.marks_dir),
            ENV_MODE: "manual",
            ENV_FILE: str(self.state.parent / "clock"),
            **self.env,
        }
        args = ["start", "--app-dir", str(self.app_dir), "--port", "0", "--state", str(self.state)]
        args += ["--manual-clock", *self.extra_args]
        if not self.program:
            args.insert(0, "devhost")
        self.service = start_service("devhost", args, log_dir=self.state.parent, env=env, program=self.program)
        self.info = self.service.info
        return self

    def stop(self, *, kill: bool = False) -> None:
        if self.service is not None:
            self.service.stop(kill=kill)
            self.service = None

    def restart(self, *, kill: bool = True) -> None:
        self.stop(kill=kill)
        self.start()

    @property
    def url(self) -> str:
        return str(self.info["url"])

    @property
    def key(self) -> str:
        return str(self.info["keys"]["function"])

    def log(self) -> str:
        return (self.state.parent / "devhost.log").read_text(errors="replace")

    # --- HTTP ---------------------------------------------------------------------------------
    def call(self, method: str, path: str, *, key: str | None = "function", **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if key is not None:
            headers["x-functions-key"] = self.info["keys"][key]
        return self.session.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def mgmt(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.call(
            method, "/runtime/webhooks/durabletask/" + path.lstrip("/"), key="durabletask_extension", **kwargs
        )

    def client(self, op: str, instance_id: str, body: Any = None) -> Any:
        """Run one real DurableOrchestrationClient operation inside the app (client_ops route)."""
        response = self.call("POST", f"/api/clientops/{op}/{instance_id}", data=json.dumps(body))
        assert response.status_code == 200, response.text
        return response.json()

    def start_orchestration(self, name: str, instance_id: str, payload: Any = None) -> requests.Response:
        return self.call("POST", f"/api/orchestrators/{name}/{instance_id}", data=json.dumps(payload))

    def status(self, instance_id: str, **query: str) -> dict[str, Any]:
        response = self.mgmt("GET", f"instances/{instance_id}", params=query)
        return (response.json() if response.content else None) or {}

    def wait_status(
        self, instance_id: str, statuses: tuple[str, ...] = TERMINAL, timeout: float = 20.0
    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            body = self.status(instance_id)
            return body if body and body.get("runtimeStatus") in statuses else None

        return wait_until(check, timeout, f"{instance_id} to reach {statuses}")

    def history(self, instance_id: str) -> list[dict[str, Any]]:
        body = self.status(instance_id, showHistory="true", showHistoryOutput="true")
        return list(body.get("historyEvents") or [])

    def wait_timers(self, instance_id: str, count: int, timeout: float = 20.0) -> None:
        """Wait until ``instance_id`` has created ``count`` durable timers (before advancing time)."""

        def created() -> bool:
            return sum(e["EventType"] == "TimerCreated" for e in self.history(instance_id)) >= count

        wait_until(created, timeout, f"{count} timer(s) in {instance_id}")

    def advance(self, seconds: float) -> None:
        response = self.call("POST", "/admin/clock/advance", key="master", params={"seconds": str(seconds)})
        assert response.status_code == 200, response.text

    def read_marks(self, name: str) -> list[Any]:
        path = self.marks_dir / f"{name}.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
