"""The orchestration engine replays the sample app's orchestrators through the real SDK."""

from __future__ import annotations

from tests.support.devhost_harness import DevHostProcess, wait_until


def test_activity_chain_completes_with_results_and_custom_status(host: DevHostProcess) -> None:
    assert host.start_orchestration("chain", "chain-1", {"steps": 3}).status_code == 202
    status = host.wait_status("chain-1")
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == [1, 2, 3]
    assert status["customStatus"] == {"phase": "step", "step": 2}
    assert sorted(v for v in host.read_marks("add_one") if v in (0, 1, 2))[:3] == [0, 1, 2]


def test_fan_out_fan_in_with_when_all(host: DevHostProcess) -> None:
    host.start_orchestration("fan_out", "fan-1", 12)
    status = host.wait_status("fan-1")
    assert status["output"] == sum(range(1, 13))


def test_external_event_wins_race_against_timer(host: DevHostProcess) -> None:
    host.start_orchestration("wait_event", "race-event")
    host.wait_status("race-event", ("Running",))
    host.client("raise", "race-event", {"name": "go", "data": {"x": 1}})
    status = host.wait_status("race-event")
    assert status["output"] == {"event": {"x": 1}}
    assert [e["EventType"] for e in host.history("race-event")].count("TimerFired") == 0


def test_timer_wins_race_when_clock_passes_deadline(host: DevHostProcess) -> None:
    host.start_orchestration("wait_event", "race-timer")
    host.wait_timers("race-timer", 1)
    host.advance(3599)
    assert host.status("race-timer")["runtimeStatus"] == "Running"
    host.advance(2)
    assert host.wait_status("race-timer")["output"] == {"timeout": True}


def test_durable_timer_fires_only_when_virtual_time_reaches_it(host: DevHostProcess) -> None:
    host.start_orchestration("sleeper", "sleep-1", 30)
    host.wait_timers("sleep-1", 1)
    host.advance(29 * 60)
    assert host.status("sleep-1")["runtimeStatus"] == "Running"
    host.advance(61)
    assert host.wait_status("sleep-1")["output"] == 31


def test_events_raised_before_anyone_waits_are_buffered(host: DevHostProcess) -> None:
    host.start_orchestration("two_events", "buffered")
    host.wait_status("buffered", ("Running",))
    host.client("raise", "buffered", {"name": "second", "data": {"v": "b"}})
    host.client("raise", "buffered", {"name": "first", "data": {"v": "a"}})
    assert host.wait_status("buffered")["output"] == [{"v": "a"}, {"v": "b"}]


def test_string_event_data_arrives_json_encoded_as_in_azure(host: DevHostProcess) -> None:
    """The Python client JSON-encodes event data twice and Azure hands the orchestrator the
    inner JSON text (azure-functions-durable-python#295); devhost must behave the same."""
    host.start_orchestration("raw_event", "quoted")
    host.wait_status("quoted", ("Running",))
    host.client("raise", "quoted", {"name": "go", "data": {"k": "plain"}})
    assert host.wait_status("quoted")["output"] == '{"k": "plain"}'


def test_activity_failure_reaches_orchestrator_and_instance_fails(host: DevHostProcess) -> None:
    host.start_orchestration("failing", "fail-1")
    status = host.wait_status("fail-1")
    assert status["runtimeStatus"] == "Failed"
    assert status["output"].startswith("Orchestrator function 'failing' failed: orchestrator gave up")
    caught = status["customStatus"]["caught"]
    assert "Activity function 'explode' failed:" in caught and "ValueError: boom" in caught


def test_activity_retry_uses_durable_timers_between_attempts(host: DevHostProcess) -> None:
    host.start_orchestration("retrying", "retry-ok", {"key": "ok", "attempts": 3, "succeed_on": 3})
    host.wait_timers("retry-ok", 1)
    host.advance(5)
    host.wait_timers("retry-ok", 2)
    assert host.status("retry-ok")["runtimeStatus"] == "Running"
    host.advance(5)
    status = host.wait_status("retry-ok")
    assert status["output"] == "succeeded on attempt 3"
    assert host.read_marks("flaky-ok") == [1, 2, 3]


def test_activity_retry_gives_up_after_max_attempts(host: DevHostProcess) -> None:
    host.start_orchestration("retrying", "retry-no", {"key": "no", "attempts": 2, "succeed_on": 9})
    host.wait_timers("retry-no", 1)
    host.advance(5)
    host.wait_timers("retry-no", 2)  # DTFx semantics: one more timer after the last failure
    assert host.status("retry-no")["runtimeStatus"] == "Running"
    host.advance(5)
    status = host.wait_status("retry-no")
    assert status["runtimeStatus"] == "Failed"
    assert "attempt 2 failed" in status["output"]
    assert host.read_marks("flaky-no") == [1, 2]


def test_sub_orchestrations_with_and_without_retry(host: DevHostProcess) -> None:
    host.start_orchestration("parent", "parent-1")
    wait_until(lambda: host.status("parent-1-child").get("runtimeStatus") == "Completed", what="child")
    host.wait_timers("parent-1", 1)
    host.advance(2)  # first retry of the failing sub-orchestration
    host.wait_timers("parent-1", 2)
    host.advance(2)
    status = host.wait_status("parent-1")
    assert status["runtimeStatus"] == "Completed", status
    assert status["output"] == {"child": [1, 2], "failing": "sub failed: orchestrator gave up"}
    # both attempts of the failing sub-orchestration ran as their own instances
    failed = host.client("query", "x", {"statuses": ["Failed"], "prefix": "parent-1:"})
    assert len(failed) == 2


def test_a_sub_orchestration_id_the_extension_refuses_fails_the_parent(host: DevHostProcess) -> None:
    """The extension throws at CallSubOrchestratorAsync for an id it refuses at start ('@...'): the
    parent fails with that message and no child is created (before: the child's message failed
    and was retried until parked, and the parent waited forever)."""
    host.start_orchestration("parent_of_named_child", "named-1", "@child")
    status = host.wait_status("named-1")
    assert status["runtimeStatus"] == "Failed", status
    assert "Orchestration instance ids must not start with @." in status["output"]
    assert host.mgmt("GET", "instances/@child").status_code == 404
    host.start_orchestration("parent_of_named_child", "named-2", "named-2-child")
    assert host.wait_status("named-2")["runtimeStatus"] == "Completed"


def test_continue_as_new_drops_the_events_no_wait_consumed_as_the_extension_does(host: DevHostProcess) -> None:
    """The Durable extension continues an out-of-process (Python) orchestrator as new with
    preserveUnprocessedEvents false: an event the execution received but did not consume is gone,
    not handed to the next execution (which would make a lost wake look delivered here)."""
    host.start_orchestration("gated_loop", "gate-1")
    host.wait_status("gate-1", ("Running",))
    for name, data in (("item", {"item": "a"}), ("item", {"item": "b"}), ("go", {})):
        host.client("raise", "gate-1", {"name": name, "data": data})
    wait_until(lambda: host.status("gate-1").get("customStatus") == {"round": 1}, what="execution 2")
    host.client("raise", "gate-1", {"name": "go", "data": {}})
    host.client("raise", "gate-1", {"name": "item", "data": {"item": "c"}})
    status = host.wait_status("gate-1")
    # Execution 1 received both items before its "go" and consumed one: "b", as the SDK keeps only
    # the latest event of a name that arrived before its wait. Execution 2 got "c", not "a".
    assert status["output"] == {"round": 2, "seen": [{"item": "b"}, {"item": "c"}]}, status


def test_continue_as_new_does_not_carry_entity_responses(host: DevHostProcess) -> None:
    """An entity call's response is consumed by the call: carrying it into the next execution
    as an unprocessed external event would grow an eternal orchestration's history without bound
    (and the SDK warns of a duplicate task completion on every replay)."""
    host.start_orchestration("entity_loop", "eloop-1", 0)
    status = host.wait_status("eloop-1")
    assert status["output"] == {"round": 2, "value": 3}, status
    raised = [e for e in host.history("eloop-1") if e["EventType"] == "EventRaised"]
    assert len(raised) == 1, raised  # the last execution's own response, nothing carried


def test_entities_call_signal_and_errors_from_orchestrator(host: DevHostProcess) -> None:
    host.start_orchestration("use_entity", "ent-1", "orch-key")
    status = host.wait_status("ent-1")
    assert status["runtimeStatus"] == "Completed", status
    # the signal (add 5) is delivered before the call (add 2): operations run in order
    assert status["output"]["after_add"] == 7
    assert status["output"]["current"] == 7
    assert "entity refused" in status["output"]["failure"]
    assert host.client("entity", "orch-key") == {"exists": True, "state": 7}


def test_an_entity_sees_each_senders_operations_in_send_order(host: DevHostProcess) -> None:
    """Durable guarantees in-order delivery from one orchestration to one entity; two senders
    interleave, but neither's signals and calls may overtake each other."""
    rounds = 6
    for name in ("a", "b"):
        host.start_orchestration("entity_order", f"order-{name}", {"key": "shared", "name": name, "rounds": rounds})
    outputs = [host.wait_status(f"order-{name}") for name in ("a", "b")]
    assert all(o["runtimeStatus"] == "Completed" for o in outputs), outputs
    journal = max((o["output"] for o in outputs), key=len)
    assert len(journal) == 2 * 3 * rounds
    for name in ("a", "b"):
        sent = [f"{name}-{kind}{i}" for i in range(rounds) for kind in ("s", "t", "c")]
        assert [entry for entry in journal if entry.startswith(f"{name}-")] == sent


def test_nondeterministic_replay_fails_with_clear_error(host: DevHostProcess) -> None:
    host.start_orchestration("nondeterministic", "nd-1")
    wait_until(lambda: any(e["EventType"] == "TaskCompleted" for e in host.history("nd-1")), what="first activity done")
    (host.marks_dir / "switch").write_text("on")
    try:
        host.client("raise", "nd-1", {"name": "continue", "data": None})
        status = host.wait_status("nd-1")
    finally:
        (host.marks_dir / "switch").unlink()
    assert status["runtimeStatus"] == "Failed"
    assert "Non-Deterministic workflow detected" in status["output"]
    assert "'add_one'" in status["output"] and "'explode'" in status["output"]


def test_function_timeout_from_host_json_fails_the_activity(host: DevHostProcess) -> None:
    host.start_orchestration("slow_then_add", "too-slow", 8)  # host.json allows 5 s
    status = host.wait_status("too-slow", timeout=30)
    assert status["runtimeStatus"] == "Failed"
    assert "Timeout value of 00:00:05 was exceeded by function: Functions.slow" in status["output"]
