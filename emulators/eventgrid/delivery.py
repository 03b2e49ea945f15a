"""Push delivery of accepted events to webhook subscriptions, as Azure Event Grid does it.

Sources (Azure docs, delivery-and-retry / webhook-event-delivery / message-headers):
- Success is 200, 201, 202, 203 or 204; anything else (or no answer within 30 s) is a failure.
- Webhook failures not retried: 400, 401, 403, 413 -> dead-lettered at once (dropped when the
  subscription has no dead-letter destination).
- Other failures are retried after 10 s, 30 s, 1 min, 5 min, 10 min, 30 min, 1 h, 3 h, 6 h, then
  every 12 h, until ``maxDeliveryAttempts`` (default 30) or ``eventTimeToLiveInMinutes`` (default
  1440) is reached -> dead-letter reason ``MaxDeliveryAttemptsExceeded`` / ``TimeToLiveExceeded``.
  Azure adds a small random jitter; the emulator is deterministic.
- Before the first delivery the endpoint must pass the validation handshake: Event Grid schema ->
  POST of a ``Microsoft.EventGrid.SubscriptionValidationEvent`` with ``aeg-event-type:
  SubscriptionValidation``, answered by 200 + ``{"validationResponse": code}`` (202 does not
  count), or a GET on ``validationUrl``; CloudEvents -> ``OPTIONS`` with ``WebHook-Request-Origin:
  eventgrid.azure.net`` answered by ``WebHook-Allowed-Origin: eventgrid.azure.net`` (or ``*``).
- Headers: ``aeg-event-type: Notification``, ``aeg-subscription-name``, ``aeg-delivery-count``,
  ``aeg-metadata-version``, ``aeg-data-version`` (Event Grid schema only), ``aeg-output-event-id``.
- Batching: ``maxEventsPerBatch`` / ``preferredBatchSizeInKilobytes``; Event Grid schema is always
  delivered as a JSON array; CloudEvents one per request as ``application/cloudevents+json``, or as
  ``application/cloudevents-batch+json`` arrays when batching is on.

Deliveries run in background tasks (bounded concurrency); publishing only enqueues. Retry due
times are on the shared clock: with a manual clock a retry runs once the clock is advanced past it.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import logging
import os
import secrets
import ssl
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp

from emulators.eventgrid.config import CLOUD_EVENT_SCHEMA, EmulatorConfig, Subscription, Topic
from emulators.eventgrid.eventlog import JsonlFile, dead_letter_file
from emulators.eventgrid.filters import matches
from localclock.clock import Clock, iso

log = logging.getLogger("emulators.eventgrid.delivery")

RETRY_SCHEDULE_SECONDS = (10, 30, 60, 300, 600, 1800, 3600, 10800, 21600)
RETRY_AFTER_SCHEDULE_SECONDS = 43200
NON_RETRIABLE_WEBHOOK_STATUSES = frozenset({400, 401, 403, 413})
SUCCESS_STATUSES = frozenset({200, 201, 202, 203, 204})
RESPONSE_TIMEOUT_SECONDS = 30.0
ORIGIN = "eventgrid.azure.net"
VALIDATION_EVENT_TYPE = "Microsoft.EventGrid.SubscriptionValidationEvent"
CLIENT_ERROR_REASON = "Undeliverable due to client error"

OUTCOME_NAMES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    408: "TimedOut",
    413: "RequestEntityTooLarge",
    429: "Busy",
    503: "Busy",
}


def retry_delay(attempts_made: int) -> int:
    """Seconds to wait after the ``attempts_made``-th failed attempt (1-based)."""
    if attempts_made <= len(RETRY_SCHEDULE_SECONDS):
        return RETRY_SCHEDULE_SECONDS[attempts_made - 1]
    return RETRY_AFTER_SCHEDULE_SECONDS


def _now_iso(ts: float) -> str:
    return iso(datetime.fromtimestamp(ts, tz=timezone.utc))


@dataclass
class Delivery:
    id: str
    topic: Topic
    subscription: Subscription
    events: list[dict[str, Any]]
    publish_time: float
    due: float
    attempts: int = 0
    state: str = "Pending"  # Pending | Delivered | DeadLettered | Dropped
    last_outcome: str | None = None
    last_status: int | None = None
    last_attempt_time: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def expires(self) -> float:
        return self.publish_time + self.subscription.retry_policy.event_time_to_live_in_minutes * 60

    def summary(self) -> dict[str, Any]:
        schema = self.subscription.delivery_schema
        return {
            "deliveryId": self.id,
            "topic": self.topic.name,
            "subscription": self.subscription.name,
            "eventIds": [e.get("id") for e in self.events],
            "schema": schema,
            "state": self.state,
            "attempts": self.attempts,
            "lastOutcome": self.last_outcome,
            "lastHttpStatusCode": self.last_status,
            "publishTime": _now_iso(self.publish_time),
            "nextAttemptAt": _now_iso(self.due) if self.state == "Pending" else None,
            "history": list(self.history),
        }


@dataclass
class SubscriptionState:
    status: str = "Pending"  # Pending | AwaitingManualAction | Succeeded | Failed
    validation_code: str | None = None
    validation_token: str | None = None
    last_error: str | None = None
    handshakes: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def describe(self) -> dict[str, Any]:
        return {"validation": self.status, "handshakes": self.handshakes, "lastError": self.last_error}


class Dispatcher:
    def __init__(
        self,
        config: EmulatorConfig,
        clock: Clock,
        state_dir: Any,
        *,
        base_url: str = "",
        concurrency: int = 16,
        webhook_ssl: ssl.SSLContext | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.state_dir = state_dir
        self.base_url = base_url
        self._semaphore = asyncio.Semaphore(concurrency)
        self._webhook_ssl = webhook_ssl
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._deliveries: dict[str, Delivery] = {}
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self.subscription_states: dict[str, SubscriptionState] = {}
        self.dead_letters: list[dict[str, Any]] = []
        self.dropped: list[dict[str, Any]] = []
        self._reset_states()
        self._restore()

    # --- lifecycle ------------------------------------------------------------------------
    def _reset_states(self) -> None:
        self.subscription_states = {self._key(s): SubscriptionState() for s in self.config.subscriptions}

    @property
    def _journal(self) -> Path:
        return Path(self.state_dir) / "pending-deliveries.json"

    def _persist(self) -> None:
        """Write the pending deliveries to the state dir (atomically), so an emulator stopped or
        SIGKILLed and started again goes on delivering what it accepted, as Event Grid does."""
        pending = [
            {
                "id": d.id,
                "topic": d.topic.name,
                "subscription": d.subscription.name,
                "events": d.events,
                "publishTime": d.publish_time,
                "due": d.due,
                "attempts": d.attempts,
                "history": d.history,
            }
            for d in self._deliveries.values()
            if d.state == "Pending"
        ]
        path = self._journal
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(pending))
        os.replace(tmp, path)

    def _restore(self) -> None:
        if not self._journal.exists():
            return
        for item in json.loads(self._journal.read_text() or "[]"):
            topic = self.config.topic(item["topic"])
            subs = [s for s in self.config.subscriptions_for(item["topic"]) if s.name == item["subscription"]]
            if topic is None or not subs:
                continue  # the config no longer has it
            delivery = Delivery(
                item["id"],
                topic,
                subs[0],
                item["events"],
                float(item["publishTime"]),
                float(item["due"]),
                int(item["attempts"]),
            )
            delivery.history = list(item.get("history") or [])
            self._deliveries[delivery.id] = delivery
            heapq.heappush(self._heap, (delivery.due, next(self._seq), delivery.id))

    @staticmethod
    def _key(sub: Subscription) -> str:
        return f"{sub.topic.lower()}/{sub.name.lower()}"

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=RESPONSE_TIMEOUT_SECONDS))
        self._loop_task = asyncio.create_task(self._run(), name="eventgrid-dispatcher")

    async def stop(self) -> None:
        if self._loop_task:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        await self._cancel_in_flight()
        if self._session:
            await self._session.close()

    async def _cancel_in_flight(self) -> None:
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._in_flight.clear()

    async def reset(self) -> None:
        await self._cancel_in_flight()
        self._heap.clear()
        self._deliveries.clear()
        self.dead_letters.clear()
        self.dropped.clear()
        self._reset_states()
        for sub in self.config.subscriptions:
            if sub.dead_letter:
                dead_letter_file(self.state_dir, sub.dead_letter).truncate()
        self._persist()

    # --- publishing side ------------------------------------------------------------------
    def submit(self, topic: Topic, events: list[dict[str, Any]]) -> int:
        """Queue deliveries of freshly accepted ``events`` to every matching subscription."""
        now = self.clock.timestamp()
        created = 0
        for sub in self.config.subscriptions_for(topic.name):
            matched = [e for e in events if matches(sub.filter, e, topic.input_schema)]
            for batch in _batches(matched, sub.max_events_per_batch, sub.preferred_batch_size_in_kilobytes):
                delivery = Delivery(uuid.uuid4().hex, topic, sub, batch, publish_time=now, due=now)
                self._deliveries[delivery.id] = delivery
                heapq.heappush(self._heap, (delivery.due, next(self._seq), delivery.id))
                created += 1
        if created:
            self._persist()  # before the publisher hears 200
            self._wake.set()
        return created

    # --- scheduling -----------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            self._start_due()
            timeout = 0.2
            if self._heap and self.clock.mode != "manual":
                delay = self.clock.real_delay(self._heap[0][0] - self.clock.timestamp())
                timeout = min(1.0, delay if delay is not None else 1.0)
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(timeout, 0.01))

    def _start_due(self) -> list[asyncio.Task[None]]:
        now = self.clock.timestamp()
        started: list[asyncio.Task[None]] = []
        while self._heap and self._heap[0][0] <= now:
            _, _, delivery_id = heapq.heappop(self._heap)
            delivery = self._deliveries.get(delivery_id)
            if delivery is None or delivery.state != "Pending" or delivery_id in self._in_flight:
                continue
            task = asyncio.create_task(self._attempt(delivery), name=f"eventgrid-delivery-{delivery_id}")
            self._in_flight[delivery_id] = task
            task.add_done_callback(self._forget_task)
            started.append(task)
        return started

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        for key, value in list(self._in_flight.items()):
            if value is task:
                del self._in_flight[key]

    async def run_due(self, timeout: float = RESPONSE_TIMEOUT_SECONDS + 5) -> None:
        """Start every delivery that is due now and wait (bounded) for those attempts to finish.
        Called after a manual clock advance so due retries happen right away."""
        tasks = self._start_due() + list(self._in_flight.values())
        if tasks:
            await asyncio.wait(set(tasks), timeout=timeout)
        self._wake.set()

    def _schedule(self, delivery: Delivery, due: float) -> None:
        delivery.due = due
        heapq.heappush(self._heap, (due, next(self._seq), delivery.id))
        self._wake.set()

    # --- one attempt ----------------------------------------------------------------------
    async def _attempt(self, delivery: Delivery) -> None:
        async with self._semaphore:
            try:
                await self._attempt_locked(delivery)
            finally:
                self._persist()

    async def _attempt_locked(self, delivery: Delivery) -> None:
        sub = delivery.subscription
        now = self.clock.timestamp()
        if now >= delivery.expires:
            self._finish_failed(delivery, "TimeToLiveExceeded")
            return
        state = self.subscription_states[self._key(sub)]
        status: int | None
        if state.status != "Succeeded":
            ok = await self._handshake(delivery.topic, sub, state)
            if not ok:
                outcome, status = "SubscriptionValidationFailed", None
                self._record(delivery, status, outcome, now)
                self._after_failure(delivery, status)
                return
        status, outcome = await self._post(delivery)
        self._record(delivery, status, outcome, now)
        if status in SUCCESS_STATUSES:
            delivery.state = "Delivered"
            return
        self._after_failure(delivery, status)

    def _record(self, delivery: Delivery, status: int | None, outcome: str, when: float) -> None:
        delivery.attempts += 1
        delivery.last_status = status
        delivery.last_outcome = outcome
        delivery.last_attempt_time = when
        delivery.history.append(
            {
                "attempt": delivery.attempts,
                "time": _now_iso(when),
                "httpStatusCode": status,
                "outcome": outcome,
            }
        )

    def _after_failure(self, delivery: Delivery, status: int | None) -> None:
        policy = delivery.subscription.retry_policy
        if status in NON_RETRIABLE_WEBHOOK_STATUSES:
            self._finish_failed(delivery, CLIENT_ERROR_REASON)
        elif delivery.attempts >= policy.max_delivery_attempts:
            self._finish_failed(delivery, "MaxDeliveryAttemptsExceeded")
        else:
            now = self.clock.timestamp()
            self._schedule(delivery, min(now + retry_delay(delivery.attempts), delivery.expires))

    def _finish_failed(self, delivery: Delivery, reason: str) -> None:
        sub = delivery.subscription
        records = [_dead_letter_record(e, delivery, reason) for e in delivery.events]
        if sub.dead_letter:
            delivery.state = "DeadLettered"
            dead_letter_file(self.state_dir, sub.dead_letter).append(records)
            self.dead_letters.extend(
                {
                    "topic": delivery.topic.name,
                    "subscription": sub.name,
                    "deliveryId": delivery.id,
                    "event": r,
                }
                for r in records
            )
        else:
            delivery.state = "Dropped"
            self.dropped.extend(
                {
                    "topic": delivery.topic.name,
                    "subscription": sub.name,
                    "deliveryId": delivery.id,
                    "event": r,
                }
                for r in records
            )

    # --- HTTP -----------------------------------------------------------------------------
    def _ssl_for(self, url: str) -> ssl.SSLContext | bool:
        return self._webhook_ssl if url.startswith("https") and self._webhook_ssl else True

    async def _post(self, delivery: Delivery) -> tuple[int | None, str]:
        sub = delivery.subscription
        cloud = sub.delivery_schema == CLOUD_EVENT_SCHEMA
        first = delivery.events[0]
        headers = {
            "aeg-event-type": "Notification",
            "aeg-subscription-name": sub.name.upper(),
            "aeg-delivery-count": str(delivery.attempts),
            "aeg-output-event-id": str(first.get("id", "")),
        }
        if cloud:
            headers["aeg-metadata-version"] = str(first.get("specversion", "1.0"))
            headers["Origin"] = ORIGIN
            if sub.max_events_per_batch > 1:
                headers["Content-Type"] = "application/cloudevents-batch+json; charset=utf-8"
                body: Any = delivery.events
            else:
                headers["Content-Type"] = "application/cloudevents+json; charset=utf-8"
                body = first
        else:
            headers["aeg-metadata-version"] = str(first.get("metadataVersion", "1"))
            headers["aeg-data-version"] = str(first.get("dataVersion", ""))
            headers["Content-Type"] = "application/json; charset=utf-8"
            body = delivery.events
        assert self._session is not None
        try:
            async with self._session.post(
                sub.endpoint_url,
                data=json.dumps(body).encode(),
                headers=headers,
                ssl=self._ssl_for(sub.endpoint_url),
            ) as response:
                await response.read()
                status = response.status
        except asyncio.TimeoutError:
            return None, "TimedOut"
        except aiohttp.ClientError as err:
            log.info("delivery to %s failed: %s", sub.endpoint_url, err)
            return None, "GenericError"
        if status in SUCCESS_STATUSES:
            return status, "Success"
        return status, OUTCOME_NAMES.get(status, "GenericError")

    async def _handshake(self, topic: Topic, sub: Subscription, state: SubscriptionState) -> bool:
        async with state.lock:
            if state.status == "Succeeded":
                return True
            if state.status == "AwaitingManualAction":
                return False
            state.handshakes += 1
            try:
                if sub.delivery_schema == CLOUD_EVENT_SCHEMA:
                    ok, error = await self._cloudevents_handshake(sub)
                else:
                    ok, error = await self._eventgrid_handshake(topic, sub, state)
            except asyncio.TimeoutError:
                ok, error = False, "the endpoint did not answer within 30 seconds"
            except aiohttp.ClientError as err:
                ok, error = False, f"request failed: {err}"
            if ok:
                state.status, state.last_error = "Succeeded", None
            elif state.status != "AwaitingManualAction":
                state.status, state.last_error = "Failed", error
            else:
                state.last_error = error
            return ok

    async def _cloudevents_handshake(self, sub: Subscription) -> tuple[bool, str | None]:
        assert self._session is not None
        async with self._session.options(
            sub.endpoint_url, headers={"WebHook-Request-Origin": ORIGIN}, ssl=self._ssl_for(sub.endpoint_url)
        ) as response:
            await response.read()
            allowed = response.headers.get("WebHook-Allowed-Origin", "")
            if response.status in SUCCESS_STATUSES and allowed.strip() in (ORIGIN, "*"):
                return True, None
            return False, f"OPTIONS answered {response.status} with WebHook-Allowed-Origin={allowed!r}"

    def validation_url(self, sub: Subscription, code: str, token: str) -> str:
        return (
            f"{self.base_url}/eventsubscriptions/{sub.name}/validate?id={code}"
            f"&t={iso(self.clock.now())}&apiVersion=2018-05-01-preview&token={token}"
        )

    async def _eventgrid_handshake(
        self, topic: Topic, sub: Subscription, state: SubscriptionState
    ) -> tuple[bool, str | None]:
        assert self._session is not None
        code = str(uuid.uuid4()).upper()
        token = secrets.token_urlsafe(16)
        state.validation_code, state.validation_token = code, token
        event: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "topic": topic.resource_id,
            "subject": "",
            "data": {"validationCode": code, "validationUrl": self.validation_url(sub, code, token)},
            "eventType": VALIDATION_EVENT_TYPE,
            "eventTime": iso(self.clock.now()),
            "metadataVersion": "1",
            "dataVersion": "1",
        }
        headers = {
            "aeg-event-type": "SubscriptionValidation",
            "aeg-subscription-name": sub.name.upper(),
            "aeg-delivery-count": "0",
            "aeg-metadata-version": "1",
            "aeg-data-version": "1",
            "aeg-output-event-id": str(event["id"]),
            "Content-Type": "application/json; charset=utf-8",
        }
        async with self._session.post(
            sub.endpoint_url,
            data=json.dumps([event]).encode(),
            headers=headers,
            ssl=self._ssl_for(sub.endpoint_url),
        ) as response:
            text = await response.text()
            if response.status != 200:
                return False, f"validation POST answered {response.status}"
        try:
            answer = json.loads(text) if text.strip() else None
        except json.JSONDecodeError:
            answer = None
        if isinstance(answer, dict) and "validationResponse" in answer:
            if str(answer["validationResponse"]).lower() == code.lower():
                return True, None
            return False, "validationResponse did not match the validationCode"
        state.status = "AwaitingManualAction"
        return False, "200 without validationResponse: waiting for a GET on validationUrl"

    def manual_validate(self, subscription_name: str, code: str, token: str) -> bool:
        """A GET on the validationUrl: completes an ``AwaitingManualAction`` handshake."""
        for sub in self.config.subscriptions:
            if sub.name.lower() != subscription_name.lower():
                continue
            state = self.subscription_states[self._key(sub)]
            if (
                state.validation_code
                and state.validation_token
                and secrets.compare_digest(code.lower(), state.validation_code.lower())
                and secrets.compare_digest(token, state.validation_token)
            ):
                state.status, state.last_error = "Succeeded", None
                return True
        return False

    # --- admin views ----------------------------------------------------------------------
    def deliveries(self, subscription: str | None = None) -> list[dict[str, Any]]:
        return [
            d.summary()
            for d in self._deliveries.values()
            if subscription is None or d.subscription.name.lower() == subscription.lower()
        ]

    def subscriptions(self) -> list[dict[str, Any]]:
        result = []
        for sub in self.config.subscriptions:
            mine = [d for d in self._deliveries.values() if d.subscription is sub]
            counts: dict[str, int] = {}
            for d in mine:
                counts[d.state] = counts.get(d.state, 0) + 1
            result.append(
                {
                    "name": sub.name,
                    "topic": sub.topic,
                    "endpointUrl": sub.endpoint_url,
                    "deliverySchema": sub.delivery_schema,
                    "attempts": sum(d.attempts for d in mine),
                    "deliveries": counts,
                    **self.subscription_states[self._key(sub)].describe(),
                }
            )
        return result


def _batches(events: list[dict[str, Any]], max_events: int, preferred_kb: int) -> list[list[dict[str, Any]]]:
    batches: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 0
    limit = preferred_kb * 1024
    for event in events:
        event_size = len(json.dumps(event))
        if current and (len(current) >= max_events or size + event_size > limit):
            batches.append(current)
            current, size = [], 0
        current.append(event)
        size += event_size
    if current:
        batches.append(current)
    return batches


def _dead_letter_record(event: dict[str, Any], delivery: Delivery, reason: str) -> dict[str, Any]:
    fields = {
        "deadLetterReason": reason,
        "deliveryAttempts": delivery.attempts,
        "lastDeliveryOutcome": delivery.last_outcome,
        "lastHttpStatusCode": delivery.last_status,
        "publishTime": _now_iso(delivery.publish_time),
        "lastDeliveryAttemptTime": _now_iso(delivery.last_attempt_time) if delivery.last_attempt_time else None,
    }
    if delivery.subscription.delivery_schema == CLOUD_EVENT_SCHEMA:
        fields = {k.lower(): v for k, v in fields.items()}
    return {**event, **fields}


__all__ = ["Delivery", "Dispatcher", "JsonlFile", "retry_delay"]
