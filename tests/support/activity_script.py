"""Scripted stand-ins for the app's activities, shared by a test (which writes the script and
reads the calls) and the test Functions app in tests/orchestrators/app (whose activities answer
from the script).

A script is a list of rules in ``rules.jsonl`` of a directory named by ``ORCH_SCRIPT_DIR``. A rule
answers calls of one activity whose input mentions the rule's ``when`` name (a string in it is the
name, or a resource id ending in it); each test uses names of its own (its VM, job, operation), so
tests sharing a host never answer each other.
The n-th call a rule answers gets its n-th answer, and the last answer repeats after that. An
answer is ``{"return": value}`` or ``{"raise": "Code: message"}`` — raised as the app's own
``TransientAzureError``, as the real activities do for a failure worth retrying. Every call is
logged in ``calls.jsonl`` with the rule that answered it; a call no rule answers is logged with
``rule: None`` and fails, so a test can say which call it did not expect."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_DIR = "ORCH_SCRIPT_DIR"
# Not the script's, but also read by the tier's app: its bound of the protection lease's waits.
LEASE_WAITS_ENV = "ORCH_LEASE_MAX_WAITS"
RULES = "rules.jsonl"
CALLS = "calls.jsonl"
ANSWERED = "answered.json"  # calls answered so far, by rule id (the log is only for reading back)
LOCK = "script.lock"


def ok(value: Any) -> dict[str, Any]:
    """An answer: the activity returns ``value``."""
    return {"return": value}


def fails(code: str, message: str = "scripted failure") -> dict[str, Any]:
    """An answer: the activity raises TransientAzureError("code: message") (retried by the
    orchestrator's retry options; the last attempt's failure ends the task)."""
    return {"raise": f"{code}: {message}"}


class UnscriptedCall(Exception):
    """An activity call no rule of the script answers."""


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    with open(directory / LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def mentions(value: Any, name: str) -> bool:
    """Is ``name`` a string in ``value`` (at any depth), or the last segment of a resource id in it?"""
    if isinstance(value, str):
        return value == name or value.endswith("/" + name)
    if isinstance(value, dict):
        return any(mentions(v, name) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(mentions(v, name) for v in value)
    return False


def _read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _append(path: Path, entry: dict[str, Any]) -> None:
    with open(path, "a") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")


@dataclass
class ActivityScript:
    directory: Path

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_env(cls) -> ActivityScript:
        return cls(Path(os.environ[ENV_DIR]))

    # --- test side ----------------------------------------------------------------------------
    def on(self, activity: str, when: str, *answers: dict[str, Any]) -> None:
        """Answer calls of ``activity`` whose input contains ``when`` with ``answers`` in turn."""
        if not answers:
            raise ValueError("a rule needs at least one answer")
        with _locked(self.directory):
            rule_id = len(_read_lines(self.directory / RULES))
            _append(
                self.directory / RULES, {"id": rule_id, "activity": activity, "when": when, "answers": list(answers)}
            )

    def calls(self, activity: str | None = None, when: str | None = None) -> list[dict[str, Any]]:
        """The logged calls (``activity``, ``request``, ``rule``, ``answer``) mentioning ``when``,
        oldest first."""
        with _locked(self.directory):
            logged = _read_lines(self.directory / CALLS)
        return [
            call
            for call in logged
            if (activity is None or call["activity"] == activity) and (when is None or mentions(call["request"], when))
        ]

    def requests(self, activity: str, when: str) -> list[Any]:
        return [call["request"] for call in self.calls(activity, when)]

    # --- app side -----------------------------------------------------------------------------
    def answer(self, activity: str, request: Any, default: Any = None) -> Any:
        """The scripted answer to this call (raises for a scripted failure); ``default`` (when not
        None) answers a call no rule matches."""
        text = json.dumps(request, sort_keys=True)
        with _locked(self.directory):
            rules = [
                r
                for r in _read_lines(self.directory / RULES)
                if r["activity"] == activity and mentions(request, r["when"])
            ]
            rule = rules[0] if rules else None
            if rule is None:
                answer = None if default is None else ok(default)
            else:
                counts_file = self.directory / ANSWERED
                counts = json.loads(counts_file.read_text()) if counts_file.exists() else {}
                answered = int(counts.get(str(rule["id"]), 0))
                answer = rule["answers"][min(answered, len(rule["answers"]) - 1)]
                counts_file.write_text(json.dumps({**counts, str(rule["id"]): answered + 1}))
            entry = {"activity": activity, "request": request, "rule": None if rule is None else rule["id"]}
            _append(self.directory / CALLS, {**entry, "answer": answer})
        if answer is None:
            raise UnscriptedCall(f"no scripted answer for {activity}({text[:300]})")
        if "raise" in answer:
            from activities.azure_errors import TransientAzureError

            raise TransientAzureError(str(answer["raise"]))
        return answer["return"]
