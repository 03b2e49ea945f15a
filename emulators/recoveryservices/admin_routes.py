"""Admin API under /admin/ (not ARM, no bearer): inspect state, request counts, force job
transitions, set faults, ARM throttling limits and figures, reset, and the shared clock routes."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from aiohttp import web

from emulators.recoveryservices import shapes
from emulators.recoveryservices.admin_vms import add_vm_routes
from emulators.recoveryservices.beacons import send_due
from emulators.recoveryservices.faults import FaultConfigError
from emulators.recoveryservices.model import Item, Job
from emulators.recoveryservices.runtime import Runtime
from emulators.recoveryservices.shapes import iso
from emulators.recoveryservices.throttling import ThrottlingConfigError
from localclock.clock_http import add_clock_routes


def _bad_request(message: str) -> web.Response:
    return web.json_response({"error": {"code": "BadRequest", "message": message}}, status=400)


def _item_json(item: Item) -> dict[str, Any]:
    return {
        "vm": item.vm.name,
        "resourceGroup": item.vm.resource_group,
        "vault": item.vault.spec.name,
        "vaultResourceGroup": item.vault.spec.resource_group,
        "containerName": item.container,
        "protectedItemName": item.name,
        "os": item.vm.os,
        "policy": item.policy,
        "protectionState": item.protection_state(),
        "lastBackupStatus": item.last_backup_status,
        "lastBackupTime": iso(item.last_backup_time),
        "activeJobId": item.active_job.id if item.active_job and not item.active_job.done else None,
        "recoveryPoints": len(item.rps),
        "uncollectedSnapshots": item.uncollected_snapshots(),
        "nextScheduledBackup": iso(item.next_sched),
        "nextGc": iso(item.next_gc),
        "faults": dataclasses.asdict(item.vm.faults),
    }


def _job_json(job: Job, now: float) -> dict[str, Any]:
    view = job.view(now)
    snap_done = job.snapshot_completed_at()
    return {
        "id": job.id,
        "vm": job.item.vm.name,
        "userTriggered": job.user_triggered,
        "status": view.status,
        "tasks": {t.task_id: t.status for t in view.tasks},
        "startTime": iso(job.start),
        "endTime": iso(view.end),
        # The true Take Snapshot completion time (benchmarks compute lag from it); None while the
        # snapshot is still running or if it failed.
        "snapshotCompletedAt": iso(snap_done) if snap_done is not None and snap_done <= now else None,
        "plannedSnapshotEnd": iso(job.snap_end),
        "plannedEnd": iso(job.finished_at()),
        "outcome": job.outcome,
        "error": job.error.code if job.error else None,
        "reads": {
            "toSnapshot": job.reads_to_snapshot,
            "afterSnapshot": job.reads_after_snapshot,
            "beforeBeacon": job.reads_before_beacon,
        },
    }


def add_admin_routes(app: web.Application, rt: Runtime) -> None:
    async def state(request: web.Request) -> web.Response:
        now = rt.settle()
        jobs = rt.engine.jobs.values()
        return web.json_response(
            {
                "now": iso(now),
                "clockMode": rt.clock.mode,
                "items": len(rt.engine.items),
                "jobs": len(rt.engine.jobs),
                "jobsInProgress": sum(1 for j in jobs if not j.done),
                "operations": len(rt.engine.operations),
                "pendingEvents": len(rt.engine._heap),
                "stats": rt.engine.stats,
                "faultsInjected": rt.faults.injected,
            }
        )

    def _items(vm: str | None) -> list[Item]:
        if vm:
            return list(rt.engine.by_vm.get(vm.lower(), []))
        return list(rt.engine.items.values())

    async def items(request: web.Request) -> web.Response:
        rt.settle()
        limit = int(request.query.get("limit", "1000"))
        return web.json_response([_item_json(i) for i in _items(request.query.get("vm"))[:limit]])

    async def jobs(request: web.Request) -> web.Response:
        now = rt.settle()
        vm = (request.query.get("vm") or "").lower()
        status = (request.query.get("status") or "").lower()
        limit = int(request.query.get("limit", "1000"))
        out = []
        for job in sorted(rt.engine.jobs.values(), key=lambda j: -j.start):
            if vm and job.item.vm.name.lower() != vm:
                continue
            if status and job.view(now).status.lower() != status:
                continue
            out.append(_job_json(job, now))
            if len(out) >= limit:
                break
        return web.json_response(out)

    def _job(request: web.Request) -> Job:
        job = rt.engine.jobs.get(request.match_info["job"].lower())
        if job is None:
            raise web.HTTPNotFound(
                text=json.dumps({"error": {"code": "NotFound", "message": "no such job"}}),
                content_type="application/json",
            )
        return job

    async def job(request: web.Request) -> web.Response:
        now = rt.settle()
        return web.json_response(_job_json(_job(request), now))

    async def advance_job(request: web.Request) -> web.Response:
        now = rt.settle()
        target = _job(request)
        rt.engine.force_next(target, now)
        return web.json_response(_job_json(target, now))

    async def operations(request: web.Request) -> web.Response:
        """Async operations (newest first) and the Backups_Trigger POSTs each VM received."""
        now = rt.settle()
        ops = sorted(rt.engine.operations.values(), key=lambda o: -o.start)
        return web.json_response(
            {
                "triggerPosts": dict(rt.engine.trigger_posts),
                "operations": [
                    {
                        "id": o.id,
                        "kind": o.kind,
                        "vm": o.item.vm.name if o.item else None,
                        "status": shapes.operation_status(o, now)["status"],
                        "startTime": iso(o.start),
                        "endTime": iso(o.end),
                        "jobId": o.job_id,
                        "error": o.error[0] if o.error else None,
                    }
                    for o in ops
                ],
            }
        )

    async def requests(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "total": sum(rt.requests.values()),
                "byOperation": dict(rt.requests),
                "errors": dict(rt.statuses),
            }
        )

    async def reset_requests(request: web.Request) -> web.Response:
        rt.requests.clear()
        rt.statuses.clear()
        return web.json_response({"total": 0})

    async def get_faults(request: web.Request) -> web.Response:
        return web.json_response(rt.faults.config.to_json())

    async def set_faults(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _bad_request("invalid JSON")
        try:
            rt.faults.config.update(body)
        except FaultConfigError as err:
            return _bad_request(str(err))
        for vm_name, values in (body.get("vms") or {}).items():
            for item in rt.engine.by_vm.get(vm_name.lower(), []):
                current = item.vm.faults
                item.vm = dataclasses.replace(
                    item.vm,
                    faults=dataclasses.replace(
                        current,
                        snapshot_failure_rate=float(values.get("snapshotFailureRate", current.snapshot_failure_rate)),
                        snapshot_error_code=str(values.get("snapshotErrorCode", current.snapshot_error_code)),
                        transfer_failure_rate=float(values.get("transferFailureRate", current.transfer_failure_rate)),
                        vss_writer_failure_rate=float(
                            values.get("vssWriterFailureRate", current.vss_writer_failure_rate)
                        ),
                    ),
                )
        return web.json_response(rt.faults.config.to_json())

    async def get_throttling(request: web.Request) -> web.Response:
        """Limits, and per subscription: requests, throttled, peakPerMinute, minutes, remaining."""
        return web.json_response(rt.throttler.to_json(rt.now()))

    async def set_throttling(request: web.Request) -> web.Response:
        """The scenario's ``throttling`` shape; the fields given replace the current ones."""
        try:
            rt.throttler.configure(await request.json(), rt.now())
        except json.JSONDecodeError:
            return _bad_request("invalid JSON")
        except ThrottlingConfigError as err:
            return _bad_request(str(err))
        return await get_throttling(request)

    async def clear_throttling(request: web.Request) -> web.Response:
        rt.throttler.clear()
        return await get_throttling(request)

    async def reset(request: web.Request) -> web.Response:
        rt.reset()
        return web.json_response({"reset": True, "now": iso(rt.now())})

    async def on_advance() -> None:
        rt.settle()
        if rt.engine.beacons:  # sent before the advance answers, so a test sees them in order
            await send_due(rt.engine)

    app.router.add_get("/admin/state", state)
    app.router.add_get("/admin/items", items)
    app.router.add_get("/admin/jobs", jobs)
    app.router.add_get("/admin/jobs/{job}", job)
    app.router.add_post("/admin/jobs/{job}/advance", advance_job)
    app.router.add_get("/admin/operations", operations)
    app.router.add_get("/admin/requests", requests)
    app.router.add_delete("/admin/requests", reset_requests)
    app.router.add_get("/admin/faults", get_faults)
    app.router.add_post("/admin/faults", set_faults)
    app.router.add_get("/admin/throttling", get_throttling)
    app.router.add_put("/admin/throttling", set_throttling)
    app.router.add_delete("/admin/throttling", clear_throttling)
    app.router.add_post("/admin/reset", reset)
    add_vm_routes(app, rt)
    add_clock_routes(app, rt.clock, on_advance=on_advance)
