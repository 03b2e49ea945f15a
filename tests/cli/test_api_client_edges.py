"""The CLI against answers the real app does not give, from a scripted stand-in on loopback:
redirects (the key must not follow them), plain http to another host, names with rich markup,
a run's event list longer than ``--top``, and the outcomes a followed run can end with."""

from __future__ import annotations

import contextlib
import io

import pytest

from backup_chain_cli.main import main
from tests.cli.loopback import Answers, scripted_app

KEY = "secret-function-key"
RUN = "/api/chains/alpha/runs/r1"


def run_cli(url: str, *argv: str) -> tuple[int, str, str]:
    """``backup-chain ARGV --url URL --key KEY`` in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([*argv, "--url", url, "--key", KEY])
        except SystemExit as usage:
            code = usage.code if isinstance(usage.code, int) else 1
    assert "Traceback" not in err.getvalue()
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(autouse=True)
def _no_connection_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BACKUP_CHAIN_URL", "BACKUP_CHAIN_KEY", "BACKUP_CHAIN_TOKEN_SCOPE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "200")


def test_a_redirect_is_reported_and_the_key_does_not_follow_it() -> None:
    elsewhere_seen: list[tuple[str, str, dict[str, str]]] = []
    with scripted_app({("GET", "/api/chains"): (200, {"chains": []}, {})}, elsewhere_seen) as elsewhere:
        seen: list[tuple[str, str, dict[str, str]]] = []
        answers: Answers = {("GET", "/api/chains"): (302, None, {"Location": f"{elsewhere}/api/chains"})}
        with scripted_app(answers, seen) as url:
            code, _, err = run_cli(url, "chains")
    assert code == 2
    assert (
        err.strip()
        == f"error: GET /api/chains was redirected (HTTP 302) to {elsewhere}/api/chains: give the app's own URL"
    )
    assert [(method, path, headers.get("x-functions-key")) for method, path, headers in seen] == [
        ("GET", "/api/chains", KEY)
    ]
    assert elsewhere_seen == []


def test_a_key_is_never_sent_over_plain_http_to_another_host() -> None:
    code, _, err = run_cli("http://backup-chain.example.com", "chains")
    assert code == 2
    assert err.strip() == (
        "error: --url 'http://backup-chain.example.com': a key or token goes over https only "
        "(plain http is for a local devhost)"
    )


def test_names_and_messages_are_shown_as_they_are_not_as_markup() -> None:
    chains = {"chains": [{"name": "x[/bad]", "vmCount": 1, "window": "[bold]0 2 * * *[/bold]"}]}
    with scripted_app({("GET", "/api/chains"): (200, chains, {})}, []) as url:
        code, out, err = run_cli(url, "chains")
    assert code == 0, err
    assert "x[/bad]" in out and "[bold]0 2 * * *[/bold]" in out


def test_an_undelivered_event_older_than_top_still_fails_the_command() -> None:
    events = [{"id": f"e{i}", "type": "BackupChain.SnapshotCompleted", "delivery": "delivered"} for i in range(60)]
    events[0]["delivery"] = "undelivered"
    body = {"chain": "alpha", "runId": "r1", "events": events}
    with scripted_app({("GET", f"{RUN}/events"): (200, body, {})}, []) as url:
        code, out, err = run_cli(url, "events", "alpha", "r1", "--top", "50")
    assert code == 1
    assert "showing the newest 50 of 60 events (--top)" in err
    assert "warning: 1 event(s) of this run not delivered downstream" in err
    assert "e0" not in out.split() and "e59" in out


@pytest.mark.parametrize(
    ("outcome", "code"),
    [
        ("completed", 0),
        ("upstreamTimedOut", 1),
        ("skipped", 1),
        ("completedWithUndeliveredEvents", 1),
        ("completedWithFailures", 1),
        ("cancelled", 1),
    ],
)
def test_a_followed_run_exits_0_only_when_it_completed(outcome: str, code: int) -> None:
    started = {"chain": "alpha", "runId": "r1", "started": True, "runtimeStatus": "Pending"}
    ended = {"chain": "alpha", "runId": "r1", "runtimeStatus": "Completed", "phase": "done", "outcome": outcome}
    answers: Answers = {("POST", "/api/chains/alpha/runs"): (202, started, {}), ("GET", RUN): (200, ended, {})}
    with scripted_app(answers, []) as url:
        got, _, err = run_cli(url, "runs", "start", "alpha", "--run-id", "r1", "--wait", "--poll-seconds", "0.01")
    assert got == code, err


@pytest.mark.parametrize("name", ["..", ".", "a/b", "a.b", "a" * 64])
def test_a_chain_name_that_could_change_the_route_is_refused_before_sending(name: str) -> None:
    seen: list[tuple[str, str, dict[str, str]]] = []
    with scripted_app({}, seen) as url:
        code, _, err = run_cli(url, "runs", "cancel", name, "r1")
    assert code == 2 and "is not a chain name" in err
    assert seen == []


@pytest.mark.parametrize("value", ["inf", "nan", "0", "-1"])
def test_a_timeout_must_be_a_finite_positive_number(value: str) -> None:
    code, _, err = run_cli("http://127.0.0.1:9", "chains", "--timeout", value)
    assert code == 2 and "--timeout must be a positive number of seconds" in err
