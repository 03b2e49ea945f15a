"""``--clock-start`` on the command line of devhost and of the Event Grid emulator (the Recovery
Services emulator's is used by every integration test through ``rs_support.start_emulator``)."""

from __future__ import annotations

import json
from pathlib import Path

import requests

from devhost.procs import start_service
from localclock.clock import parse_clock_start
from tests.calendar.instants import utc

SAMPLE_APP = Path(__file__).resolve().parents[1] / "devhost" / "apps" / "sample"
START = "2027-12-31T23:50:00+01:00"  # an offset other than Z: the clock works in UTC
EXPECTED = "2027-12-31T22:50:00Z"
FRESH = {"DEVHOST_CLOCK_MODE": "real"}  # no clock to join: the flag makes a new one


def test_devhost_manual_clock_starts_where_asked(tmp_path: Path) -> None:
    args = ["devhost", "start", "--app-dir", str(SAMPLE_APP), "--port", "0", "--state", str(tmp_path / "s.db")]
    service = start_service("devhost", [*args, "--manual-clock", "--clock-start", START], log_dir=tmp_path, env=FRESH)
    try:
        key = service.info["keys"]["master"]
        clock = requests.get(f"{service.url}/admin/clock", headers={"x-functions-key": key}, timeout=30).json()
        assert (clock["now"], clock["mode"]) == (EXPECTED, "manual")
    finally:
        service.stop()


def test_eventgrid_emulator_scaled_clock_starts_where_asked(tmp_path: Path) -> None:
    (tmp_path / "eg.json").write_text(json.dumps({"topics": [{"name": "cal"}], "subscriptions": []}))
    args = ["emulators.eventgrid", "--port", "0", "--config", str(tmp_path / "eg.json"), "--state-dir", str(tmp_path)]
    service = start_service(
        "eventgrid", [*args, "--time-scale", "60", "--clock-start", START], log_dir=tmp_path, env=FRESH
    )
    try:
        clock = requests.get(f"{service.url}/admin/clock", verify=str(service.info["ca"]), timeout=30).json()
        elapsed = parse_clock_start(clock["now"]).timestamp() - utc(2027, 12, 31, 22, 50).timestamp()
        assert clock["mode"] == "scaled" and 0 <= elapsed < 600  # x60: under 10 s since it started
    finally:
        service.stop()
