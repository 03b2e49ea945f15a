"""``./dev serve`` as an operator uses it: the worked example of docs/local-stack.md
(docs/examples/my-chains.json + my-scenario.json) on a manual clock. It starts, every printed URL
answers, a run started with the printed HTTP API commands reaches a VM's snapshot once the printed
clock advance moves time; Ctrl-C stops it cleanly. A bad file stops it before anything starts."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from demo.serve import load_estate, unknown_vms
from devhost.procs import wait_until
from tests.support.processes import alive, stack_children

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "docs" / "examples"
CHAIN = "payroll-nightly"
START = "2027-01-05T01:00:00Z"  # a Tuesday night: the example's weekly policy (Sunday 23:00) is days away


def _env() -> dict[str, str]:
    # As a person starts it: no clock or settings inherited from the test process.
    return {k: v for k, v in os.environ.items() if not k.startswith("DEVHOST_") and k != "REQUESTS_CA_BUNDLE"}


class Served:
    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [str(REPO / "dev"), "serve", *args],
            cwd=REPO,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def value(self, pattern: str) -> str:
        match = re.search(pattern, self.text, re.MULTILINE)
        assert match, f"{pattern!r} not in the banner:\n{self.text}"
        return match.group(1)


def _serve_example() -> Served:
    serve = Served(
        "--config",
        "docs/examples/my-chains.json",
        "--scenario",
        "docs/examples/my-scenario.json",
        "--manual-clock",
        "--clock-start",
        START,
    )
    wait_until(lambda: "Ctrl-C stops everything" in serve.text or serve.process.poll() is not None, 60, "the banner")
    assert serve.process.poll() is None, serve.text
    return serve


@pytest.fixture
def served() -> Iterator[Served]:
    serve = _serve_example()
    try:
        yield serve
    finally:
        if serve.process.poll() is None:
            serve.process.send_signal(signal.SIGINT)
            serve.process.wait(timeout=30)


def test_worked_example_serves_and_a_run_reaches_a_snapshot(served: Served) -> None:
    url = served.value(r"export URL=(\S+) ")
    key = served.value(r"export URL=\S+ KEY=(\S+) ")
    master = served.value(r"MASTER_KEY=(\S+) ")
    ca = served.value(r" CA=(\S+)$")
    rs = served.value(r"Recovery Services emu\s+(\S+)")
    eg = served.value(r"Event Grid emulator\s+(\S+)")
    downstream_log = served.value(r"downstream event log\s+(\S+)")
    assert served.value(r"export BACKUP_CHAIN_URL=(\S+) ") == url
    assert served.value(r"BACKUP_CHAIN_KEY=(\S+)$") == key
    assert f"backup-chain runs list {CHAIN}" in served.text
    # The printed commands use the operator's own chain and VMs.
    assert f'"$URL/api/chains/{CHAIN}/runs"' in served.text
    assert "virtualMachines/payroll-app01" in served.text
    assert '"type": "Contoso.Payroll.BatchFinished", "subject": "/batches/payroll"' in served.text

    master_headers = {"x-functions-key": master}
    headers = {"x-functions-key": key}
    # One shared clock: all three processes show the start instant.
    for base, verify, hdrs in ((url, True, master_headers), (rs, ca, {}), (eg, ca, {})):
        clock = requests.get(f"{base}/admin/clock", verify=verify, headers=hdrs, timeout=10).json()
        assert (clock["mode"], clock["now"]) == ("manual", START), base
    assert requests.get(f"{url}/admin/host/status", headers=master_headers, timeout=10).status_code == 200
    assert requests.get(f"{rs}/admin/jobs", verify=ca, timeout=10).json() == []
    assert requests.get(downstream_log, verify=ca, timeout=10).status_code == 200

    started = requests.post(
        f"{url}/api/chains/{CHAIN}/runs", json={"runId": "r1", "waitForUpstream": True}, headers=headers, timeout=30
    )
    assert started.status_code == 202, started.text
    reported = requests.post(
        f"{url}/api/chains/{CHAIN}/runs/r1/upstream", json={"status": "Succeeded"}, headers=headers, timeout=30
    )
    assert reported.status_code in (200, 202), reported.text

    def idle() -> bool:
        return bool(requests.get(f"{url}/admin/host/status", headers=master_headers, timeout=10).json()["idle"])

    def snapshot_taken() -> dict[str, object] | None:
        run = requests.get(f"{url}/api/chains/{CHAIN}/runs/r1", headers=headers, timeout=10).json()
        return next((vm for vm in run["vms"] if vm["phase"] in ("transfer", "completed")), None)

    wait_until(idle, 60, "devhost to go idle")
    found = None
    for _ in range(12):  # at most 12 virtual minutes: Take Snapshot takes 5-9 in the example scenario
        requests.post(f"{url}/admin/clock/advance", params={"seconds": "60"}, headers=master_headers, timeout=10)
        wait_until(idle, 60, "devhost to go idle")
        found = snapshot_taken()
        if found:
            break
    assert found, requests.get(f"{url}/api/chains/{CHAIN}/runs/r1", headers=headers, timeout=10).text
    # The VM's job is the Recovery Services emulator's own record, on the same clock.
    jobs = requests.get(f"{rs}/admin/jobs", verify=ca, timeout=10).json()
    [job] = [job for job in jobs if job["id"] == found["jobId"]]
    assert job["vm"] == str(found["vmId"]).rsplit("/", 1)[1]

    served.process.send_signal(signal.SIGINT)
    assert served.process.wait(timeout=30) == 0, served.text
    assert not Path(ca).exists()


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("scenario", "my-scenario.json: vaults[0].vms[1].snapshotMinute: extra inputs are not permitted"),
        ("config", "my-chains.json: chains[0].maxParalel: is not a known setting"),
    ],
)
def test_a_bad_file_is_one_line_and_nothing_starts(tmp_path: Path, bad: str, expected: str) -> None:
    scenario = (EXAMPLES / "my-scenario.json").read_text()
    chains = (EXAMPLES / "my-chains.json").read_text()
    if bad == "scenario":
        scenario = scenario.replace('"snapshotMinutes": [6, 9]', '"snapshotMinute": [6, 9]')
    else:
        chains = chains.replace('"maxParallel"', '"maxParalel"')
    (tmp_path / "my-scenario.json").write_text(scenario)
    (tmp_path / "my-chains.json").write_text(chains)
    done = subprocess.run(
        [
            str(REPO / "dev"),
            "serve",
            "--config",
            str(tmp_path / "my-chains.json"),
            "--scenario",
            str(tmp_path / "my-scenario.json"),
        ],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done
    assert done.stdout == ""  # nothing started: not even the "starting ..." line
    [line] = done.stderr.splitlines()
    assert expected in line, line
    assert "Traceback" not in done.stderr


def test_sigterm_stops_every_process_and_removes_the_directory() -> None:
    serve = _serve_example()
    children = stack_children(serve.process.pid)
    assert set(children) == {"devhost", "recoveryservices", "eventgrid"}, children
    ca = Path(serve.value(r" CA=(\S+)$"))
    serve.process.send_signal(signal.SIGTERM)
    assert serve.process.wait(timeout=30) == 0, serve.text
    assert not [name for name, pid in children.items() if alive(pid)]
    assert not ca.parent.exists()


def test_a_process_that_dies_is_named_with_its_log_tail() -> None:
    serve = _serve_example()
    try:
        children = stack_children(serve.process.pid)
        os.kill(children["eventgrid"], signal.SIGKILL)
        assert serve.process.wait(timeout=30) == 1, serve.text
    finally:
        if serve.process.poll() is None:
            serve.process.kill()
    serve.reader.join(timeout=10)  # everything it printed
    assert f"error: eventgrid exited (code {-signal.SIGKILL})" in serve.text, serve.text
    assert "the end of its log:" in serve.text
    assert not [name for name, pid in children.items() if alive(pid)]


def test_a_chain_vm_missing_from_the_scenario_is_named(tmp_path: Path) -> None:
    scenario = (EXAMPLES / "my-scenario.json").read_text().replace('"payroll-db01"', '"payroll-db02"')
    (tmp_path / "my-scenario.json").write_text(scenario)
    estate = load_estate(EXAMPLES / "my-chains.json", tmp_path / "my-scenario.json")
    assert unknown_vms(estate) == ["chain payroll-nightly: VM payroll-db01 is not in the scenario's vault rsv-payroll"]
    assert unknown_vms(load_estate(EXAMPLES / "my-chains.json", EXAMPLES / "my-scenario.json")) == []
