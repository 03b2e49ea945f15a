"""``job_poller``: one eternal poller per vault. Each round it takes from the vault's
``job_watch`` board the reads due at its next wake (within the vault's read budget), sleeps until
then, and reads them all in one ``poll_jobs`` activity, which tells each waiting backup (and
downstream, for snapshots) at once. Taking ahead keeps the path from the due time to downstream
at one timer and one activity. A snapshot beacon (``triggers/beacon.py``) wakes a sleeping poller
with the ``hint`` event: it takes the reads due now (the hinted watch first) at once, then looks at
the board every tick until the execution ends, so later beacons need no wake (docs/beacon.md)."""

from __future__ import annotations

from datetime import datetime, timezone

import azure.durable_functions as df

from activities.job_poll import poll_jobs
from backup_chain.job_watch import POLLER_WAKE_EVENT, WAKELESS_TICK_SECONDS
from backup_chain.messages import PollerInput, PollRequest, PollResult, WatchTake, WatchTaken
from entities.job_watch import watch_entity
from orchestrators.common import iso, now

bp = df.Blueprint()
# Continue as new after this many rounds: every episode replays the whole execution (the SDK
# parses each event), so a short one keeps each round's replay short (10 rounds: ~60 events).
ROUNDS_PER_EXECUTION = 10
IDLE_SECONDS = 60.0  # with nothing due, look at the board again this often (new watches)


@bp.orchestration_trigger(context_name="context")
def job_poller(context: df.DurableOrchestrationContext):
    """Input: ``vaultId``, ``readsPerMinute`` (this vault's share), ``tickSeconds``,
    ``fingerprint`` (of this input; a changed configuration restarts the poller), and, carried
    across continue-as-new, ``reads`` so far, the watch keys ``finished`` in the last round and
    the snapshot durations ``learned`` from them (the board keeps them per VM)."""
    spec: PollerInput = context.get_input()
    entity = watch_entity(spec["vaultId"])
    per_minute, tick = float(spec["readsPerMinute"]), float(spec["tickSeconds"])
    reads = int(spec.get("reads", 0))
    finished: list[str] = list(spec.get("finished") or [])
    learned: dict[str, float] = dict(spec.get("learned") or {})
    wake = now(context).timestamp()
    context.set_custom_status({"phase": "starting", "vaultId": spec["vaultId"], "fingerprint": spec.get("fingerprint")})
    # One wake task per execution: the SDK completes every later waiter of the same name at once
    # from a second event that came while it was busy, so a new waiter would spin reads at one
    # instant. Once it fired, the rest of the execution looks at the board every tick instead (a
    # tick up to WAKELESS_TICK_SECONDS; a longer one continues as new at once), and says so
    # (``woken`` in the custom status) so the trigger raises no wake that nobody awaits (each costs
    # a replay); its hint signal reaches the board, which the next take applies.
    woken = context.wait_for_external_event(POLLER_WAKE_EVENT)
    woke = False
    for round_ in range(ROUNDS_PER_EXECUTION):
        # Finished watches go in the same operation as the next take, so they can never be read
        # (and announced) again, whatever order the entity sees other messages in.
        current = now(context).timestamp()
        take: WatchTake = {
            "at": wake,
            "now": current,
            "readsPerMinute": per_minute,
            "done": finished,
            "learned": learned,
        }
        taken: WatchTaken = yield context.call_entity(entity, "take", take)
        finished, learned = [], {}
        if taken.get("readNow"):
            wake = current  # a hint landed since this wake was planned: read now, not at the wake
        if wake > current and woke:
            yield context.create_timer(datetime.fromtimestamp(wake, timezone.utc))
        elif wake > current:
            timer = context.create_timer(datetime.fromtimestamp(wake, timezone.utc))
            winner = yield context.task_any([timer, woken])
            if winner is woken:
                # A beacon: hint the board from here, so the hint is in before the take (the
                # trigger's own signal may reach the entity later), then take what is due now (the
                # hinted watch first) and read it with what was taken for the planned wake.
                hint, woke = woken.result, True
                wake = now(context).timestamp()  # the next wake follows from this round, not the planned one
                if isinstance(hint, dict) and "vmId" in hint:
                    yield context.call_entity(entity, "hint", hint)
                at_once: WatchTaken = yield context.call_entity(
                    entity, "take", {"at": wake, "readsPerMinute": per_minute, "done": []}
                )
                first = {w["key"] for w in at_once["watches"]}  # a hinted watch may be in both: read it once
                planned = [w for w in taken["watches"] if w["key"] not in first]
                taken = {**at_once, "watches": at_once["watches"] + planned}
        if taken["watches"]:
            try:
                request: PollRequest = {
                    "vaultId": spec["vaultId"],
                    "at": iso(now(context)),
                    "watches": taken["watches"],
                }
                result: PollResult = yield context.call_activity(poll_jobs, request)
            except Exception:
                # The reads are rescheduled on the board already; the next round tries again.
                result = {"finished": [], "read": 0}
            reads += int(result.get("read", 0))
            finished = list(result["finished"])
            learned = dict(result.get("learned") or {})  # a result recorded before learning has none
        current = now(context).timestamp()
        next_wake = taken["nextWake"]
        wake = current + IDLE_SECONDS if next_wake is None else min(current + IDLE_SECONDS, max(next_wake, wake + tick))
        wakeless = woke and tick <= WAKELESS_TICK_SECONDS  # else it continues as new to listen again
        if round_ == 0 or wakeless:
            # A wake event raised while the last execution continued as new is dropped with it, and
            # the trigger's own hint signal may have reached the board after this first take; once
            # woken, no waiter is left and beacons raise none: look again a tick later rather than
            # sleep through a beacon until the planned wake.
            wake = min(wake, current + tick)
        wake = max(wake, current)
        context.set_custom_status(
            {
                "phase": "polling",
                "vaultId": spec["vaultId"],
                "watching": taken["watching"],
                "reads": reads,
                "at": iso(now(context)),
                "wake": iso(datetime.fromtimestamp(wake, timezone.utc)),
                "woken": wakeless,
                "fingerprint": spec.get("fingerprint"),
            }
        )
        if woke and not wakeless:
            break
    context.continue_as_new({**spec, "reads": reads, "finished": finished, "learned": learned})
    return None
