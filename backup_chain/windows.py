"""Upstream windows: when a chain's NCRONTAB ``window`` opens next (a pure function)."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any


def next_window(expression: str, after: datetime) -> datetime:
    """The first window opening strictly after ``after`` (UTC)."""
    from croniter import croniter  # imported here, off the app's cold start (bench/cold_start_bench.py)

    moment: datetime = croniter(expression, after.astimezone(timezone.utc), second_at_beginning=True).get_next(datetime)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def config_fingerprint(data: Any) -> str:
    """Identifies a chain's configuration, so a scheduler running an outdated one is replaced."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
