"""One notion of "now" shared by devhost and the emulators.

Three modes, chosen by environment variables so child processes share one clock:

- ``real``:   wall-clock UTC.
- ``scaled``: virtual time runs ``DEVHOST_TIME_SCALE`` times faster than real time from a common
  anchor (``DEVHOST_CLOCK_ANCHOR_REAL``, a real epoch second, mapped to
  ``DEVHOST_CLOCK_ANCHOR_VIRTUAL``), so every process computes the same virtual time.
- ``manual``: virtual time only moves when someone advances it. The current virtual time lives in
  a small file (``DEVHOST_CLOCK_FILE``) so that an advance through any process's
  ``POST /admin/clock/advance?seconds=N`` moves every process at once.

Where virtual time starts is chosen, not taken from the wall clock, whenever a run must not depend
on the day it happens to run on: ``--clock-start ISO`` (devhost and both emulators) or
``DEVHOST_CLOCK_START`` (ISO 8601 with an offset, e.g. ``2027-01-04T03:00:00Z``) in the environment.
Without either, a new scaled or manual clock starts at the wall clock's now. The start only applies
to a new clock: a process joining a clock already in its environment, or a manual clock whose file
already exists (a restart), keeps that clock's time.
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

ENV_MODE = "DEVHOST_CLOCK_MODE"
ENV_SCALE = "DEVHOST_TIME_SCALE"
ENV_ANCHOR_REAL = "DEVHOST_CLOCK_ANCHOR_REAL"
ENV_ANCHOR_VIRTUAL = "DEVHOST_CLOCK_ANCHOR_VIRTUAL"
ENV_FILE = "DEVHOST_CLOCK_FILE"
ENV_START = "DEVHOST_CLOCK_START"

MODES = ("real", "scaled", "manual")


class ClockError(ValueError):
    """A clock was configured or used in a way its mode does not allow."""


def _utc(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        raise ClockError(f"naive datetime {dt!r}: the clock works in UTC-aware datetimes only")
    return dt.astimezone(timezone.utc)


@dataclass
class Clock:
    """Gives the current (possibly virtual) UTC time. Build with the ``real``/``scaled``/
    ``manual`` constructors or :meth:`from_env`."""

    mode: str = "real"
    scale: float = 1.0
    anchor_real: float = 0.0
    anchor_virtual: float = 0.0
    file: Path | None = None

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def real(cls) -> Clock:
        return cls(mode="real")

    @classmethod
    def scaled(cls, scale: float, start: datetime | None = None) -> Clock:
        if not scale > 0:
            raise ClockError(f"time scale must be > 0, got {scale}")
        now_real = time.time()
        start_virtual = _utc(start).timestamp() if start else now_real
        return cls(mode="scaled", scale=scale, anchor_real=now_real, anchor_virtual=start_virtual)

    @classmethod
    def manual(cls, file: Path, start: datetime | None = None) -> Clock:
        """A manual clock backed by ``file``; created at ``start`` (default: now) if missing."""
        file = Path(file)
        file.parent.mkdir(parents=True, exist_ok=True)
        clock = cls(mode="manual", file=file)
        if not file.exists():
            clock._write((_utc(start) if start else datetime.now(timezone.utc)).timestamp())
        return clock

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Clock:
        env = dict(os.environ if env is None else env)
        mode = env.get(ENV_MODE, "real")
        if mode not in MODES:
            raise ClockError(f"{ENV_MODE}={mode!r}: expected one of {', '.join(MODES)}")
        if mode == "real":
            return cls.real()
        if mode == "scaled":
            try:
                scale = float(env[ENV_SCALE])
                anchor_real = float(env[ENV_ANCHOR_REAL])
                anchor_virtual = float(env[ENV_ANCHOR_VIRTUAL])
            except KeyError as missing:
                raise ClockError(f"scaled clock needs {missing.args[0]} in the environment") from None
            except ValueError as bad:
                raise ClockError(f"scaled clock settings must be numbers: {bad}") from None
            if not scale > 0:
                raise ClockError(f"{ENV_SCALE} must be > 0, got {scale}")
            return cls("scaled", scale, anchor_real, anchor_virtual)
        path = env.get(ENV_FILE)
        if not path:
            raise ClockError(f"manual clock needs {ENV_FILE} (the shared clock file) in the environment")
        return cls.manual(Path(path))

    def to_env(self) -> dict[str, str]:
        """Environment variables that make :meth:`from_env` in another process give this clock."""
        env = {ENV_MODE: self.mode}
        if self.mode == "scaled":
            env |= {
                ENV_SCALE: repr(self.scale),
                ENV_ANCHOR_REAL: repr(self.anchor_real),
                ENV_ANCHOR_VIRTUAL: repr(self.anchor_virtual),
            }
        elif self.mode == "manual":
            env[ENV_FILE] = str(self.file)
        return env

    # --- reading ------------------------------------------------------------------------------
    def timestamp(self) -> float:
        """Current virtual time as POSIX seconds."""
        if self.mode == "real":
            return time.time()
        if self.mode == "scaled":
            return self.anchor_virtual + (time.time() - self.anchor_real) * self.scale
        return self._read()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp(), tz=timezone.utc)

    def real_delay(self, virtual_seconds: float) -> float | None:
        """Real seconds until ``virtual_seconds`` of virtual time pass, or None when only an
        advance can make them pass (manual mode)."""
        if self.mode == "manual":
            return None
        return max(0.0, virtual_seconds) / (self.scale if self.mode == "scaled" else 1.0)

    # --- manual mode --------------------------------------------------------------------------
    def advance(self, seconds: float) -> datetime:
        """Move a manual clock forward by ``seconds`` (>= 0) and return the new time."""
        if self.mode != "manual":
            raise ClockError(f"only a manual clock can be advanced; this one is {self.mode!r}")
        if not seconds >= 0:
            raise ClockError(f"seconds must be >= 0, got {seconds}")
        assert self.file is not None
        with open(self.file, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            new = float(handle.read().strip()) + seconds
            handle.seek(0)
            handle.truncate()
            handle.write(repr(new))
            handle.flush()
            os.fsync(handle.fileno())
        return datetime.fromtimestamp(new, tz=timezone.utc)

    def _read(self) -> float:
        assert self.file is not None
        with open(self.file) as handle:
            fcntl.flock(handle, fcntl.LOCK_SH)
            return float(handle.read().strip())

    def _write(self, value: float) -> None:
        assert self.file is not None
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(repr(value))
        os.replace(tmp, self.file)


def parse_advance_seconds(raw: str | None) -> float:
    """Validate the ``seconds`` query value of ``POST /admin/clock/advance``."""
    if raw is None:
        raise ClockError("query parameter 'seconds' is required")
    try:
        seconds = float(raw)
    except ValueError:
        raise ClockError(f"query parameter 'seconds' must be a number, got {raw!r}") from None
    if not 0 <= seconds <= 10 * 365 * 86400:
        raise ClockError(f"query parameter 'seconds' must be between 0 and 10 years, got {raw!r}")
    return seconds


def iso(dt: datetime) -> str:
    """UTC ISO 8601 with a Z suffix, as Azure writes times."""
    return _utc(dt).isoformat().replace("+00:00", "Z")


__all__ = ["Clock", "ClockError", "clock_from_options", "iso", "parse_advance_seconds", "parse_clock_start"]


CLOCK_START_MIN = datetime(1970, 1, 1, tzinfo=timezone.utc)
CLOCK_START_MAX = datetime(9000, 1, 1, tzinfo=timezone.utc)


def parse_clock_start(text: str) -> datetime:
    """``--clock-start`` / ``DEVHOST_CLOCK_START``: an ISO 8601 instant with an offset (``Z`` or
    ``+01:00``); a naive time is refused because it would mean a different instant per machine."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ClockError(f"clock start {text!r} is not an ISO 8601 date-time") from None
    if value.tzinfo is None:
        raise ClockError(f"clock start {text!r} has no UTC offset (write e.g. 2027-01-04T03:00:00Z)")
    # Epoch timestamps, timers and schedules weeks ahead must stay representable: a start at
    # 0001-01-01T00:00+01:00 or 9999-12-31 overflowed here or at the first timer.
    if not CLOCK_START_MIN <= value < CLOCK_START_MAX:
        raise ClockError(
            f"clock start {text!r} is out of range; choose an instant from {iso(CLOCK_START_MIN)} "
            f"to before {iso(CLOCK_START_MAX)}"
        )
    return value.astimezone(timezone.utc)


def clock_from_options(
    *, time_scale: float | None, manual: bool, state_dir: Path, start: datetime | None = None
) -> Clock:
    """The clock a process should use given its ``--time-scale``/``--manual-clock``/``--clock-start``
    flags.

    An explicit flag wins; a manual or scaled clock already in the environment (set by the process
    that launched this one) is joined rather than replaced, so that all processes share one time.
    A new clock starts at ``start``, else at ``DEVHOST_CLOCK_START``, else at the wall clock's now.
    """
    inherited = os.environ.get(ENV_MODE, "real")
    if start is not None and not manual and time_scale is None and inherited == "real":
        raise ClockError("--clock-start needs --manual-clock or --time-scale: the real clock starts at now")
    if start is None and os.environ.get(ENV_START):
        start = parse_clock_start(os.environ[ENV_START])
        if not manual and time_scale is None and inherited == "real":  # it would be ignored, silently
            raise ClockError(f"{ENV_START} needs --manual-clock or --time-scale: the real clock starts at now")
    if manual:
        if inherited == "manual":
            return Clock.from_env()
        return Clock.manual(Path(state_dir) / "clock", start=start)
    if time_scale is not None:
        if inherited == "scaled" and float(os.environ.get(ENV_SCALE, "0")) == time_scale:
            return Clock.from_env()
        return Clock.scaled(time_scale, start=start)
    return Clock.from_env()
