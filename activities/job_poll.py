"""``poll_jobs``: read a vault's due backup jobs in one batch (the job poller's reads) and, for
each watch that is over, publish SnapshotCompleted right away (snapshot watches) and tell the
waiting backup orchestration with an external event."""

from __future__ import annotations

import asyncio
import logging

import azure.durable_functions as df

from activities.azure_errors import from_exception
from activities.backup import read_job
from activities.events import kept, send_events
from backup_chain.delivery import outbox_key
from backup_chain.events import iso, parse_time, snapshot_completed_event
from backup_chain.jobs import JobView
from backup_chain.messages import CloudEvent, PollRequest, PollResult, Watch, WatchOutcome
from backup_chain.resource_ids import VaultId
from backup_chain.snapshot_history import plausible_seconds

bp = df.Blueprint()
log = logging.getLogger("backup_chain")
CONCURRENT_READS = 16  # below the client's connection pool
WAITING = (df.OrchestrationRuntimeStatus.Running, df.OrchestrationRuntimeStatus.Pending)


def _read(vault: VaultId, job_id: str) -> WatchOutcome:
    """The job, or its failure as data (transient ones too: the board reschedules the read)."""
    try:
        return {"ok": True, "job": read_job(vault, job_id)}
    except Exception as err:
        return {"ok": False, "error": from_exception(err).to_dict()}


def _publish(events: list[CloudEvent]) -> bool:
    try:
        send_events(events)
    except Exception as err:
        # The waiting backups publish it themselves (same event ids) when told it was not announced.
        log.warning("publishing %d SnapshotCompleted events failed: %s", len(events), err)
        return False
    return True


def _notice(watch: Watch, read: WatchOutcome) -> WatchOutcome | None:
    """What the waiter is told, or None while its watch goes on (including transient errors,
    which the next scheduled read retries)."""
    if not read["ok"]:
        return None if read["error"]["kind"] == "transient" else {"ok": False, "error": read["error"]}
    job = JobView.from_dict(read["job"])
    if not job.reached(watch["until"]):
        return None
    return {"ok": True, "job": read["job"], "announced": False}


def _observed_at(at: str, job: JobView) -> str:
    """The event's time: the poller's round time (activities have no orchestration clock), but
    never before the completion Azure reports, since the read that saw it came after both."""
    end, stamped = parse_time(job.snapshot_end), parse_time(at)
    if end is None or stamped is None or end <= stamped:
        return at
    return iso(end)


def _snapshot_seconds(watch: Watch, at: str, job: JobView) -> float | None:
    """Seconds from the job's start (the watch's ``anchor``) to Take Snapshot's completion, for
    the board to learn: the task's ``endTime`` (AzureIaaSVMJobTaskDetails, bms.json; a task still
    in progress has none, GetJobDetails.json), else the read that saw it completed."""
    if watch["until"] != "snapshot" or not job.snapshot_done:
        return None
    end = parse_time(job.snapshot_end) or parse_time(at)
    seconds = end.timestamp() - float(watch["anchor"]) if end is not None else None
    return seconds if plausible_seconds(seconds) else None


@bp.activity_trigger(input_name="request")
@bp.durable_client_input(client_name="client")
async def poll_jobs(request: PollRequest, client: df.DurableOrchestrationClient) -> PollResult:
    """Input: ``vaultId``, ``at`` (the poller's time, stamped on events) and ``watches`` (board
    entries). Output: ``finished`` watch keys, the number of ``read`` calls made and the snapshot
    durations ``learned`` from finished snapshot watches."""
    vault = VaultId.parse(request["vaultId"])
    gate = asyncio.Semaphore(CONCURRENT_READS)

    async def waiting(watch: Watch) -> bool:
        status = await client.get_status(watch["owner"])
        return bool(status) and status.runtime_status in WAITING

    async def read(watch: Watch) -> WatchOutcome:
        async with gate:
            return await asyncio.to_thread(_read, vault, watch["jobId"])

    # Long (transfer, wait-out) watches of a backup that was cancelled or terminated would go on
    # reading for hours: drop them unread. Snapshot watches end soon and are checked when they end.
    taken: list[Watch] = request["watches"]
    long_ones = [w for w in taken if w["until"] != "snapshot"]
    alive = await asyncio.gather(*(waiting(w) for w in long_ones))
    orphans = {w["key"] for w, ok in zip(long_ones, alive, strict=True) if not ok}
    watches = [w for w in taken if w["key"] not in orphans]
    reads = await asyncio.gather(*(read(w) for w in watches))
    notices = [(w, _notice(w, r)) for w, r in zip(watches, reads, strict=True)]
    ended = [(w, n) for w, n in notices if n is not None]
    # Only a backup still waiting is told (and announced downstream): a cancelled run stays quiet.
    snapshots = [w for w, _ in ended if w["until"] == "snapshot"]
    told = await asyncio.gather(*(waiting(w) for w in snapshots))
    quiet = {w["key"] for w, ok in zip(snapshots, told, strict=True) if not ok}
    finished = [(w, n) for w, n in ended if w["key"] not in quiet]
    announce = [
        (n, snapshot_completed_event(spec, job, _observed_at(request["at"], job)))
        for w, n in finished
        if (spec := w["announce"]) and n["ok"] and (job := JobView.from_dict(n["job"])).snapshot_done
    ]
    # A run whose outbox keeps events (the topic failed earlier) gets its SnapshotCompleted from
    # the backup itself, queued behind them: sending it here would overtake its BackupTriggered.
    keys = {outbox_key(event) for _notice_, event in announce}
    held = {key for key in keys if await kept(client, key)}
    announce = [(n, event) for n, event in announce if outbox_key(event) not in held]
    events: list[CloudEvent] = [event for _notice_, event in announce]
    published: bool = bool(events) and await asyncio.to_thread(_publish, events)
    for notice, _event in announce:
        notice["announced"] = published
    for watch, notice in finished:
        try:
            await client.raise_event(watch["owner"], watch["event"], notice)
        except Exception as err:  # the waiter just ended: nothing to tell
            log.info("watch %s: could not tell %s (%s)", watch["key"], watch["owner"], err)
    done = sorted(orphans | quiet | {w["key"] for w, _ in finished})
    learned = {
        w["key"]: seconds
        for w, n in ended
        if n["ok"] and (seconds := _snapshot_seconds(w, request["at"], JobView.from_dict(n["job"]))) is not None
    }
    return {"finished": done, "read": len(watches), "learned": learned}
