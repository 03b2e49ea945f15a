"""The baseline for ``bench.chain_bench``: what hand-written polling scripts do (docs/domain.md),
one script per VM — trigger an on-demand backup, then GET the job every 60 s
until *Take Snapshot* is ``Completed`` (tell downstream at once) and on until the job ends.

It is a plain poller with the real ``RecoveryServicesBackupClient`` and ``EventGridPublisherClient``
against the emulators, sleeping in virtual time (real seconds = virtual seconds / scale) on the
shared clock. To put the same pressure on the vault as the chain, it runs at most ``max_parallel``
scripts at once and staggers the first wave like the chain does; only the polling differs.
Every ARM request (each attempt, retries included) is counted here, by the emulator's own
operation names, so the chain's share of the emulator's counts is the rest."""

from __future__ import annotations

import heapq
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlparse

from emulators.credential import StaticTokenCredential
from emulators.recoveryservices.arm_routes import ROUTES
from localclock.clock import Clock

TERMINAL = {"completed", "completedwithwarnings", "failed", "cancelled"}
EVENT_TYPE = "Baseline.SnapshotCompleted"


def operation_of(method: str, url: str) -> str:
    """The emulator's name for an ARM request (same routing table), for per-operation counts."""
    path = urlparse(url).path
    for route_method, pattern, operation, _ in ROUTES:
        if route_method == method and pattern.match(path):
            return operation
    return "Unknown"


@dataclass
class VmScript:
    """One VM's script and what it observed."""

    vault: str
    vault_rg: str
    vm: str
    vm_id: str
    vm_rg: str
    index: int
    job_id: str | None = None
    triggered_at: float | None = None
    snapshot_seen_at: float | None = None  # virtual time the script saw Take Snapshot Completed
    ended_at: float | None = None
    job_status: str | None = None
    gets_to_snapshot: int = 0  # job GETs up to and including the one that saw the snapshot done
    gets: int = 0
    error: str | None = None


@dataclass(order=True)
class _Due:
    at: float
    seq: int
    script: VmScript = field(compare=False)
    step: str = field(compare=False)


class ScriptPoller:
    def __init__(
        self,
        *,
        clock: Clock,
        arm_url: str,
        ca_bundle: str,
        subscription: str,
        topic_endpoint: str,
        topic_key: str,
        scripts: list[VmScript],
        interval_s: float = 60.0,
        max_parallel: int = 10,
        stagger_s: float = 2.0,
        retain_days: int = 30,
        workers: int = 16,
    ):
        self.clock = clock
        self.arm_url = arm_url
        self.ca = ca_bundle
        self.subscription = subscription
        self.topic_endpoint = topic_endpoint
        self.topic_key = topic_key
        self.scripts = scripts
        self.interval = interval_s
        self.max_parallel = max_parallel
        self.stagger = stagger_s
        self.retain_days = retain_days
        self.workers = workers
        self.requests: Counter[str] = Counter()
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self._heap: list[_Due] = []
        self._seq = 0
        self._waiting = list(scripts[max_parallel:])
        self._running = 0
        self._cond = threading.Condition()
        self._local = threading.local()
        self._threads: list[threading.Thread] = []
        self._stop = False

    # --- clients, one per worker thread (as one script process would have its own) ---------------
    def _count(self, request: Any) -> None:
        op = operation_of(request.http_request.method, request.http_request.url)
        with self._cond:
            self.requests[op] += 1

    def _backup_client(self) -> Any:
        client = getattr(self._local, "backup", None)
        if client is None:
            from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient

            client = RecoveryServicesBackupClient(
                StaticTokenCredential(),
                self.subscription,
                base_url=self.arm_url,
                connection_verify=self.ca,
                raw_request_hook=self._count,
            )
            self._local.backup = client
        return client

    def _publisher(self) -> Any:
        client = getattr(self._local, "publisher", None)
        if client is None:
            from azure.core.credentials import AzureKeyCredential
            from azure.eventgrid import EventGridPublisherClient

            # The publisher's transport takes the emulator's CA from REQUESTS_CA_BUNDLE (set by start()).
            client = EventGridPublisherClient(self.topic_endpoint, AzureKeyCredential(self.topic_key))
            self._local.publisher = client
        return client

    # --- scheduling on virtual time --------------------------------------------------------------
    def _push(self, at: float, script: VmScript, step: str) -> None:
        self._seq += 1
        heapq.heappush(self._heap, _Due(at, self._seq, script, step))
        self._cond.notify()

    def start(self) -> None:
        os.environ["REQUESTS_CA_BUNDLE"] = self.ca
        now = self.clock.timestamp()
        self.started_at = now
        with self._cond:
            for i, script in enumerate(self.scripts[: self.max_parallel]):
                self._running += 1
                self._push(now + self.stagger * i, script, "trigger")
        for i in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"script-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def done(self) -> bool:
        with self._cond:
            return self._running == 0 and not self._waiting

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)

    def _next(self) -> _Due | None:
        with self._cond:
            while not self._stop:
                if self._heap:
                    wait = (self._heap[0].at - self.clock.timestamp()) / self.clock.scale
                    if wait <= 0:
                        return heapq.heappop(self._heap)
                    self._cond.wait(min(wait, 1.0))
                else:
                    self._cond.wait(1.0)
            return None

    def _work(self) -> None:
        while True:
            due = self._next()
            if due is None:
                return
            script = due.script
            try:
                follow = self._trigger(script) if due.step == "trigger" else self._poll(script)
            except Exception as err:  # a script that breaks stops; the benchmark reports it
                script.error = f"{type(err).__name__}: {err}"[:300]
                follow = False
            now = self.clock.timestamp()
            with self._cond:
                if follow:
                    # Start-Sleep 60 after each GET returns, as a script loop does.
                    self._push(now + self.interval, script, "poll")
                    continue
                script.ended_at = now
                self._running -= 1
                if self._waiting:
                    self._running += 1
                    self._push(now, self._waiting.pop(0), "trigger")
                elif self._running == 0:
                    self.finished_at = now

    # --- the script's two steps ------------------------------------------------------------------
    def _trigger(self, s: VmScript) -> bool:
        from azure.mgmt.recoveryservicesbackup.models import BackupRequestResource, IaasVMBackupRequest

        client = self._backup_client()
        container = f"iaasvmcontainer;iaasvmcontainerv2;{s.vm_rg};{s.vm}"
        item = f"vm;iaasvmcontainerv2;{s.vm_rg};{s.vm}"
        expiry = datetime.fromtimestamp(self.clock.timestamp(), tz=timezone.utc) + timedelta(days=self.retain_days)
        body = BackupRequestResource(properties=IaasVMBackupRequest(recovery_point_expiry_time_in_utc=expiry))
        s.triggered_at = self.clock.timestamp()
        headers = client.backups.trigger(
            s.vault,
            s.vault_rg,
            "Azure",
            container,
            item,
            body,
            cls=lambda response, _body, _headers: dict(response.http_response.headers),
        )
        url = headers.get("Azure-AsyncOperation") or headers.get("Location") or ""
        operation = url.split("/operationsStatus/", 1)[-1].split("/operationResults/", 1)[-1].split("?", 1)[0]
        for _ in range(30):
            status = client.protected_item_operation_statuses.get(
                s.vault, s.vault_rg, "Azure", container, item, operation
            )
            if status.status != "InProgress":
                break
            time.sleep(2.0 / self.clock.scale)
        if status.status != "Succeeded" or status.properties is None or not status.properties.job_id:
            s.error = f"trigger: operation {status.status} {getattr(status.error, 'code', '')}"
            return False
        s.job_id = status.properties.job_id
        return True

    def _poll(self, s: VmScript) -> bool:
        assert s.job_id is not None
        job = self._backup_client().job_details.get(s.vault, s.vault_rg, s.job_id)
        s.gets += 1
        props = job.properties
        tasks = getattr(getattr(props, "extended_info", None), "tasks_list", None) or []
        snapshot = next((t.status for t in tasks if (t.task_id or "").lower() == "take snapshot"), None)
        status = str(props.status or "")
        if s.snapshot_seen_at is None:
            s.gets_to_snapshot += 1
            if (snapshot or "").lower() == "completed":
                s.snapshot_seen_at = self.clock.timestamp()
                self._notify(s, job)
        s.job_status = status
        return status.lower() not in TERMINAL

    def _notify(self, s: VmScript, job: Any) -> None:
        """Start the downstream work: here, publish the same kind of event the chain does."""
        from azure.core.messaging import CloudEvent

        seen = datetime.fromtimestamp(self.clock.timestamp(), tz=timezone.utc)
        event = CloudEvent(
            source=f"/baseline/{s.vault}",
            type=EVENT_TYPE,
            subject=s.vm_id,
            time=seen,
            data={"vmId": s.vm_id, "jobId": job.name},
            id=f"baseline-{s.vm}",
        )
        self._publisher().send([event])
