"""Reads a run's timeline from the local stack and writes it: the run (``GET …/runs/{runId}``), the
ids of the events it published (``GET …/runs/{runId}/events``), those events as the downstream topic
accepted them (Event Grid emulator ``/admin/events``) and their deliveries to the downstream
listener (``/admin/deliveries``). The model and the drawing are pure (``demo/timeline.py``,
``demo/timeline_render.py``)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from dateutil.parser import isoparse

from demo.stack import DOWNSTREAM_LISTENER, DOWNSTREAM_TOPIC, Stack
from demo.timeline import TERMINAL_STATUSES, Delivery, RunTimeline, TimelineError, build_timeline
from demo.timeline_render import SUFFIXES, render


class CollectError(RuntimeError):
    """The stack did not answer what a timeline needs."""


def _get(stack: Stack, path: str) -> dict[str, Any]:
    response = stack.api("GET", path)
    if response.status_code != 200:
        raise CollectError(f"GET /api/{path} answered {response.status_code}: {response.text[:300]}")
    return dict(response.json())


def listener_deliveries(stack: Stack) -> dict[str, Delivery]:
    """Per event id, the emulator's record of its delivery to the downstream listener."""
    answer = stack.admin("eventgrid", "GET", "/admin/deliveries", params={"subscription": DOWNSTREAM_LISTENER})
    if not any(s.get("name") == DOWNSTREAM_LISTENER for s in answer.get("subscriptions") or []):
        raise CollectError(f"the Event Grid emulator has no downstream subscription {DOWNSTREAM_LISTENER!r}")
    found: dict[str, Delivery] = {}
    for delivery in answer.get("deliveries") or []:
        history = delivery.get("history") or []
        # Delivered: the last attempt is the one the subscriber acknowledged.
        at = isoparse(history[-1]["time"]) if delivery.get("state") == "Delivered" and history else None
        for event_id in delivery.get("eventIds") or []:
            found[str(event_id)] = Delivery(str(delivery.get("state")), at)
    return found


def collect(stack: Stack, chain: str, run_id: str) -> RunTimeline:
    run = _get(stack, f"chains/{chain}/runs/{run_id}")
    listed = _get(stack, f"chains/{chain}/runs/{run_id}/events").get("events") or []
    records = stack.admin("eventgrid", "GET", "/admin/events", params={"topic": DOWNSTREAM_TOPIC})
    accepted = {str(r["event"].get("id")): r["event"] for r in records.get("events") or []}
    # Events the run kept (the topic has not taken them yet) are not in the topic's log: the
    # timeline then falls back to the run's own record of the VM.
    events = [accepted[str(e.get("id"))] for e in listed if str(e.get("id")) in accepted]
    return build_timeline(run, events, listener_deliveries(stack))


def settle_deliveries(stack: Stack, timeout: float) -> None:
    """Wait (at most ``timeout`` wall seconds) until no delivery to the listener is still pending,
    so the picture shows when downstream heard rather than 'pending'; a delivery still pending
    after that is drawn as such."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(d.state != "Pending" for d in listener_deliveries(stack).values()):
            return
        time.sleep(0.2)


def write(timeline: RunTimeline, path: Path) -> None:
    """Replace ``path`` whole (a file beside it renamed over it): ./dev serve redraws a picture while
    a delivery is pending, and a browser or a reader must never see half of one."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(render(timeline, path.suffix.lower()), encoding="utf-8")
    os.replace(partial, path)


def _stable(err: Exception) -> str:
    """The error's text without object addresses, so the same problem reads the same each time."""
    return re.sub(r" object at 0x[0-9a-fA-F]+", "", str(err))


class RunPictures:
    """``./dev serve --timeline DIR``: draws every run that has ended to ``DIR/<chain>.<runId>.svg``
    and ``.html``. Looks at each chain's newest runs (``GET …/runs?top=``) every few seconds; a
    picture is redrawn while a snapshot's delivery to downstream is still pending, then left alone."""

    LOOK_EVERY = 2.0  # wall seconds
    NEWEST = 50  # runs per chain looked at

    def __init__(self, stack: Stack, chains: list[str], directory: Path, say: Callable[[str], None]) -> None:
        self.stack, self.chains, self.directory, self.say = stack, chains, directory, say
        self.done: set[tuple[str, str]] = set()
        self.written: set[tuple[str, str]] = set()
        self.told: dict[tuple[str, str], str] = {}
        self.next_look = 0.0

    def look(self) -> None:
        if time.monotonic() < self.next_look:
            return
        self.next_look = time.monotonic() + self.LOOK_EVERY
        for chain in self.chains:
            # Pictures are a side job of the served stack: a devhost that is slow, restarting or
            # answering garbage is said (once) and looked at again, never the end of ./dev serve.
            try:
                response = self.stack.api("GET", f"chains/{chain}/runs?top={self.NEWEST}")
                body = response.json() if response.status_code == 200 else None
            except requests.RequestException as err:  # requests' JSONDecodeError included
                self._tell((chain, ""), f"listing the runs of {chain} failed: {_stable(err)}")
                continue
            if not isinstance(body, dict):
                self._tell((chain, ""), f"listing the runs of {chain} answered {response.status_code}")
                continue
            for run in body.get("runs") or []:
                key = (chain, str(run.get("runId")))
                if run.get("runtimeStatus") in TERMINAL_STATUSES and key not in self.done:
                    self._draw(*key)

    def _draw(self, chain: str, run_id: str) -> None:
        key = (chain, run_id)
        try:
            timeline = collect(self.stack, chain, run_id)
        except (CollectError, TimelineError, requests.RequestException) as err:
            self._tell(key, f"run {run_id} of chain {chain} cannot be drawn: {err}")
            return
        paths = [self.directory / f"{chain}.{run_id}{suffix}" for suffix in SUFFIXES]
        try:
            for path in paths:
                write(timeline, path)
        except OSError as err:
            self._tell(key, f"run {run_id} of chain {chain}: cannot write {err.filename}: {err.strerror}")
            return
        if key not in self.written:
            self.written.add(key)
            self.say(f"timeline: run {run_id} of chain {chain} ({timeline.outcome}) drawn to {paths[0]} and .html")
        if all(vm.heard is None or vm.heard.state != "Pending" for vm in timeline.vms):
            self.done.add(key)

    def _tell(self, key: tuple[str, str], message: str) -> None:
        if self.told.get(key) != message:  # once per distinct problem, not every look
            self.told[key] = message
            self.say(f"timeline: {message}")
