"""The local stack: Recovery Services and Event Grid emulators plus devhost running the app, all
on one shared clock. Used by the main job, the end-to-end tests and the benchmarks."""

from __future__ import annotations

import json
import secrets
import socket
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import requests

from demo.args import signals_held
from devhost.procs import Service, start_service, wait_until
from localclock.clock import Clock

REPO = Path(__file__).resolve().parent.parent
SUBSCRIPTION = "00000000-0000-0000-0000-0000000000aa"
UPSTREAM_TOPIC = "upstream"
BEACON_TOPIC = "beacon"  # the Linux post-scripts' snapshot beacons (docs/beacon.md)
DOWNSTREAM_TOPIC = "downstream"
DOWNSTREAM_LISTENER = "downstream-listener"  # subscription of the optional downstream webhook


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def vm_id(name: str, resource_group: str = "rg-app") -> str:
    return (
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{resource_group}/providers/Microsoft.Compute/virtualMachines/"
        + name
    )


def vault_id(name: str, resource_group: str = "rg-backup") -> str:
    return (
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{resource_group}/providers/Microsoft.RecoveryServices/vaults/"
        + name
    )


@dataclass
class Stack:
    base: Path
    clock: Clock
    keys: dict[str, str]
    services: dict[str, Service] = field(default_factory=dict)
    session: requests.Session = field(default_factory=requests.Session)
    devhost_port: int = 0
    eventgrid_port: int = 0
    devhost_env: dict[str, str] = field(default_factory=dict)

    # --- lifecycle ----------------------------------------------------------------------------
    @classmethod
    def start(
        cls,
        base: Path,
        scenario: dict[str, Any],
        chains: dict[str, Any],
        *,
        time_scale: float | None = None,
        extra_env: dict[str, str] | None = None,
        clock_start: datetime | None = None,
        downstream_webhook: str | None = None,
    ) -> Stack:
        """Start emulators and devhost on one clock: scaled when ``time_scale`` is given, else
        manual. The clock starts at ``clock_start`` (default: now; a manual clock whose file
        already exists in ``base`` keeps its time). The processes join this clock through the
        environment, so the start is set once here. ``downstream_webhook``: a loopback URL the
        downstream topic delivers to (subscription ``DOWNSTREAM_LISTENER``, demo/listener.py)."""
        base.mkdir(parents=True, exist_ok=True)
        clock = (
            Clock.scaled(time_scale, start=clock_start)
            if time_scale
            else Clock.manual(base / "clock", start=clock_start)
        )
        clock_flag = ["--time-scale", str(time_scale)] if time_scale else ["--manual-clock"]
        keys = {
            "masterKey": secrets.token_urlsafe(24),
            "function": secrets.token_urlsafe(24),
            "eventgrid_extension": secrets.token_urlsafe(24),
            "durabletask_extension": secrets.token_urlsafe(24),
        }
        stack = cls(base, clock, keys)
        stack.devhost_port = free_port()
        stack.eventgrid_port = free_port()  # known before the RS emulator starts: its beacons go there
        try:
            stack._start_emulators(scenario, clock_flag, downstream_webhook)
            stack._start_devhost(chains, clock_flag, extra_env or {})
        except BaseException:
            with signals_held():
                stack.stop()
            raise
        return stack

    def _start_emulators(self, scenario: dict[str, Any], clock_flag: list[str], downstream_webhook: str | None) -> None:
        # The RS emulator sends post-script beacons to the Event Grid emulator (started next, on a
        # port chosen already; its CA is read when the first beacon is sent).
        env = {
            **self.clock.to_env(),
            "EVENTGRID_EMULATOR_URL": f"https://127.0.0.1:{self.eventgrid_port}",
            "EVENTGRID_EMULATOR_CA": str(self.base / "eg" / "ca.pem"),
        }
        (self.base / "scenario.json").write_text(json.dumps(scenario))
        self.services["recoveryservices"] = start_service(
            "recoveryservices",
            [
                "emulators.recoveryservices",
                "--port",
                "0",
                "--scenario",
                str(self.base / "scenario.json"),
                "--state-dir",
                str(self.base / "rs"),
                *clock_flag,
            ],
            log_dir=self.base,
            env=env,
            cwd=REPO,
        )
        webhook = (
            f"http://127.0.0.1:{self.devhost_port}/runtime/webhooks/eventgrid"
            f"?functionName=upstream_event&code={self.keys['eventgrid_extension']}"
        )
        eg_config: dict[str, list[dict[str, Any]]] = {
            "topics": [
                {"name": DOWNSTREAM_TOPIC, "inputSchema": "CloudEventSchemaV1_0"},
                {"name": UPSTREAM_TOPIC, "inputSchema": "CloudEventSchemaV1_0"},
                {"name": BEACON_TOPIC, "inputSchema": "CloudEventSchemaV1_0", "disableLocalAuth": True},
            ],
            "subscriptions": [
                {
                    "name": "upstream-to-app",
                    "topic": UPSTREAM_TOPIC,
                    "endpointUrl": webhook,
                    "deliverySchema": "CloudEventSchemaV1_0",
                    "retryPolicy": {"maxDeliveryAttempts": 30},
                },
                {
                    "name": "beacon-to-app",
                    "topic": BEACON_TOPIC,
                    "endpointUrl": webhook.replace("functionName=upstream_event", "functionName=beacon_event"),
                    "deliverySchema": "CloudEventSchemaV1_0",
                    "retryPolicy": {"maxDeliveryAttempts": 30},
                },
            ],
        }
        if downstream_webhook is not None:
            eg_config["subscriptions"].append(
                {
                    "name": DOWNSTREAM_LISTENER,
                    "topic": DOWNSTREAM_TOPIC,
                    "endpointUrl": downstream_webhook,
                    "deliverySchema": "CloudEventSchemaV1_0",
                }
            )
        (self.base / "eventgrid.json").write_text(json.dumps(eg_config))
        self.start_eventgrid(clock_flag)
        bundle = self.base / "ca-bundle.pem"
        bundle.write_text(
            Path(self.services["recoveryservices"].info["ca"]).read_text()
            + Path(self.services["eventgrid"].info["ca"]).read_text()
        )

    def _start_devhost(self, chains: dict[str, Any], clock_flag: list[str], extra_env: dict[str, str]) -> None:
        state = self.base / "devhost"
        state.mkdir(parents=True, exist_ok=True)
        (state / "keys.json").write_text(
            json.dumps(
                {
                    "masterKey": self.keys["masterKey"],
                    "functionKeys": {"default": self.keys["function"]},
                    "systemKeys": {
                        "eventgrid_extension": self.keys["eventgrid_extension"],
                        "durabletask_extension": self.keys["durabletask_extension"],
                    },
                }
            )
        )
        (self.base / "chains.json").write_text(json.dumps(chains))
        self.devhost_env = {
            **self.clock.to_env(),
            "ARM_ENDPOINT": self.services["recoveryservices"].url,
            "DOWNSTREAM_TOPIC_ENDPOINT": self.topic(DOWNSTREAM_TOPIC)["endpoint"],
            "BACKUPCHAIN_CREDENTIAL": "local",
            "BACKUPCHAIN_CONFIG": str(self.base / "chains.json"),
            "REQUESTS_CA_BUNDLE": str(self.base / "ca-bundle.pem"),
            # Events name their schema on this app's own route (as WEBSITE_HOSTNAME does in Azure).
            "EVENT_SCHEMA_BASE_URL": f"http://127.0.0.1:{self.devhost_port}/api/schemas/events",
            "APP_RESOURCE_ID": "/subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/rg-app/"
            "providers/Microsoft.Web/sites/backup-chain-local",
            **extra_env,
        }
        self.start_devhost(clock_flag)

    def start_devhost(self, clock_flag: list[str] | None = None) -> None:
        flag = clock_flag or (
            ["--manual-clock"] if self.clock.mode == "manual" else ["--time-scale", str(self.clock.scale)]
        )
        self.services["devhost"] = start_service(
            "devhost",
            [
                "devhost",
                "start",
                "--app-dir",
                str(REPO),
                "--port",
                str(self.devhost_port),
                "--state",
                str(self.base / "devhost" / "state.db"),
                "--settings",
                str(self.base / "none.json"),
                *flag,
            ],
            log_dir=self.base,
            env=self.devhost_env,
            cwd=REPO,
        )

    def start_eventgrid(self, clock_flag: list[str] | None = None) -> None:
        """Start the Event Grid emulator; a restart keeps its port (the app's topic endpoint),
        its CA, and what its topics accepted (state dir)."""
        flag = clock_flag or (
            ["--manual-clock"] if self.clock.mode == "manual" else ["--time-scale", str(self.clock.scale)]
        )
        self.services["eventgrid"] = start_service(
            "eventgrid",
            [
                "emulators.eventgrid",
                "--port",
                str(self.eventgrid_port),
                "--config",
                str(self.base / "eventgrid.json"),
                "--state-dir",
                str(self.base / "eg"),
                *flag,
            ],
            log_dir=self.base,
            env=self.clock.to_env(),
            cwd=REPO,
        )
        self.eventgrid_port = urlparse(self.services["eventgrid"].url).port or 0

    def kill_eventgrid(self, *, kill: bool = True) -> None:
        """Stop the Event Grid emulator (SIGKILL by default): its endpoints become unreachable."""
        self.services.pop("eventgrid").stop(kill=kill)

    def kill_devhost(self) -> None:
        self.services.pop("devhost").stop(kill=True)

    def stop(self) -> None:
        for name in ("devhost", "eventgrid", "recoveryservices"):
            service = self.services.pop(name, None)
            if service is not None:
                service.stop()

    # --- helpers ------------------------------------------------------------------------------
    @property
    def devhost(self) -> Service:
        return self.services["devhost"]

    def topic(self, name: str) -> dict[str, str]:
        return dict(self.services["eventgrid"].info["topics"][name])

    def _verify(self, service: str) -> str | bool:
        return str(self.services[service].info["ca"]) if service != "devhost" else True

    def admin(self, service: str, method: str, path: str, **kwargs: Any) -> Any:
        svc = self.services[service]
        headers = {"x-functions-key": self.keys["masterKey"]} if service == "devhost" else {}
        response = self.session.request(
            method, svc.url + path, verify=self._verify(service), headers=headers, timeout=60, **kwargs
        )
        response.raise_for_status()
        return response.json() if response.content else None

    def advance(self, seconds: float) -> None:
        """Move the shared manual clock once, then let every process act on the new time."""
        self.admin("devhost", "POST", "/admin/clock/advance", params={"seconds": str(seconds)})
        for service in ("recoveryservices", "eventgrid"):
            if service in self.services:  # the Event Grid emulator may be down on purpose
                self.admin(service, "POST", "/admin/clock/advance", params={"seconds": "0"})

    def api(self, method: str, path: str, body: Any = None, *, key: str | None = "function") -> requests.Response:
        headers = {"x-functions-key": self.keys[key]} if key else {}
        data = json.dumps(body) if body is not None else None
        return self.session.request(
            method, f"{self.devhost.url}/api/{path.lstrip('/')}", data=data, headers=headers, timeout=60
        )

    def downstream(self) -> list[dict[str, Any]]:
        """Every event the downstream topic accepted, oldest first."""
        records = self.admin("eventgrid", "GET", "/admin/events", params={"topic": DOWNSTREAM_TOPIC})
        items = records.get("events", records) if isinstance(records, dict) else records
        return [r.get("event", r) for r in items]

    def publish_upstream(self, event_type: str, subject: str, data: Any, event_id: str | None = None) -> str:
        """Publish an upstream CloudEvent with the real EventGridPublisherClient."""
        from azure.core.credentials import AzureKeyCredential
        from azure.core.messaging import CloudEvent
        from azure.eventgrid import EventGridPublisherClient

        topic = self.topic(UPSTREAM_TOPIC)
        # The event happens at the stack's (virtual) time, as a real publisher's event would on
        # the clock the app runs by; the app's redelivery dedupe is anchored at this time.
        event = CloudEvent(
            source="/upstream/tests",
            type=event_type,
            subject=subject,
            data=data,
            id=event_id or secrets.token_hex(8),
            time=self.clock.now(),
        )
        import os

        previous = os.environ.get("REQUESTS_CA_BUNDLE")
        os.environ["REQUESTS_CA_BUNDLE"] = str(self.base / "ca-bundle.pem")
        try:
            EventGridPublisherClient(topic["endpoint"], AzureKeyCredential(topic["key"])).send([event])
        finally:
            if previous is None:
                os.environ.pop("REQUESTS_CA_BUNDLE", None)
            else:
                os.environ["REQUESTS_CA_BUNDLE"] = previous
        return str(event.id)

    def settle(self, timeout: float = 60.0) -> None:
        """Wait until devhost has nothing ready or running at the current (virtual) time."""
        self.wait(lambda: self.admin("devhost", "GET", "/admin/host/status")["idle"], timeout, "devhost to go idle")

    def run_until(
        self, predicate: Any, *, step: float = 15.0, limit: float = 6 * 3600.0, what: str = "condition"
    ) -> Any:
        """Advance the manual clock ``step`` seconds at a time, letting work settle in between,
        until ``predicate()`` holds; fail after ``limit`` virtual seconds."""
        elapsed = 0.0
        self.settle()
        while True:
            value = predicate()
            if value:
                return value
            if elapsed >= limit:
                raise AssertionError(f"{what} did not happen within {limit} virtual seconds")
            self.advance(step)
            elapsed += step
            self.settle()

    def wait(self, predicate: Any, timeout: float = 60.0, what: str = "condition") -> Any:
        return wait_until(predicate, timeout, what)
