"""The pure domain core: resource ids, upstream matching, job parsing, the polling plan, event ids,
instance ids, error classification and API body parsing."""

from __future__ import annotations

import copy
import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from backup_chain.api_models import MAX_BODY_BYTES, RequestError, StartRun, UpstreamReport, parse_body
from backup_chain.config import Upstream
from backup_chain.errors import classify, failure
from backup_chain.events import EVENT_TYPES, chain_subject, cloud_event, event_id
from backup_chain.ids import (
    chain_instance_id,
    run_id_for_event,
    run_id_for_window,
    valid_run_id,
    vm_hash,
    vm_instance_id,
)
from backup_chain.jobs import JobView, parse_job
from backup_chain.polling import PollPlan
from backup_chain.resource_ids import ResourceIdError, VaultId, VmId

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SUB = "00000000-0000-0000-0000-0000000000aa"
REST_EXAMPLES = Path(__file__).resolve().parent.parent / "integration" / "data" / "rest_examples"


def vm_text(name: str, rg: str = "rg-app", sub: str = SUB) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"


# --- resource ids --------------------------------------------------------------------------------
def test_vm_id_derives_container_and_protected_item_names_as_azure_does() -> None:
    parsed = VmId.parse(vm_text("App01", "RG-App"))
    assert (parsed.subscription, parsed.resource_group, parsed.name) == (SUB, "RG-App", "App01")
    assert parsed.container_name == "iaasvmcontainer;iaasvmcontainerv2;rg-app;app01"
    assert parsed.protected_item_name == "vm;iaasvmcontainerv2;rg-app;app01"
    assert parsed.id == vm_text("App01", "RG-App")
    assert parsed.key == vm_text("app01", "rg-app").lower()


def test_ids_are_case_insensitive_and_canonicalized() -> None:
    text = f"  /SUBSCRIPTIONS/{SUB.upper()}/resourcegroups/rg/PROVIDERS/microsoft.compute/VirtualMachines/vm1 "
    parsed = VmId.parse(text)
    assert parsed.id == vm_text("vm1", "rg")
    assert parsed.key == VmId.parse(vm_text("VM1", "RG")).key
    vault = VaultId.parse(f"/subscriptions/{SUB}/resourceGroups/rg/providers/microsoft.recoveryservices/vaults/v-1")
    assert vault.id == f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v-1"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "app01",
        vm_text("app01") + "/",
        vm_text("app01") + "/extensions/x",
        vm_text("app01", sub="not-a-guid"),
        vm_text("a;b"),  # would make the container name ambiguous
        vm_text("a b"),
        vm_text("app01-"),
        vm_text("app01."),
        vm_text("_app01"),
        vm_text("x" * 65),
        vm_text("app01", rg="rg."),
        vm_text("app01", rg="r g"),
        vm_text("app01", rg="x" * 91),
        vm_text("app01") + "\nx",
        vm_text("app01").replace("Microsoft.Compute", "Microsoft.ClassicCompute"),
        f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v1",
    ],
)
def test_bad_vm_ids_are_rejected(text: str) -> None:
    with pytest.raises(ResourceIdError, match="is not a VM resource id; expected /subscriptions/<guid>"):
        VmId.parse(text)


@pytest.mark.parametrize("name", ["1vault", "v", "v_1", "v" * 51, "v 1"])
def test_bad_vault_names_are_rejected(name: str) -> None:
    with pytest.raises(ResourceIdError, match="vault resource id"):
        VaultId.parse(f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/{name}")


@SETTINGS
@given(st.one_of(st.text(), st.builds(vm_text, st.text(), st.text()), st.integers(), st.none()))
def test_parsing_anything_fails_only_with_resource_id_error(text: Any) -> None:
    for parser in (VmId.parse, VaultId.parse):
        try:
            parsed = parser(text)
        except ResourceIdError:
            continue
        assert parser(parsed.id) == parsed


_vm_names = st.from_regex(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9_])?", fullmatch=True)
_rg_names = st.from_regex(r"[-A-Za-z0-9_.()]{0,89}[-A-Za-z0-9_()]", fullmatch=True)


@SETTINGS
@given(_vm_names, _rg_names)
def test_valid_ids_round_trip_and_derived_names_are_unambiguous(name: str, rg: str) -> None:
    parsed = VmId.parse(vm_text(name, rg))
    assert (parsed.name, parsed.resource_group) == (name, rg)
    assert VmId.parse(parsed.id) == parsed
    parts = parsed.protected_item_name.split(";")
    assert parts == ["vm", "iaasvmcontainerv2", rg.lower(), name.lower()]
    assert parsed.container_name.split(";")[2:] == [rg.lower(), name.lower()]


# --- upstream matching ---------------------------------------------------------------------------
def test_upstream_type_is_case_insensitive_and_subject_exact_or_prefix() -> None:
    exact = Upstream(eventType="Contoso.Etl.JobFinished", subject="/jobs/nightly")
    assert exact.matches("contoso.etl.jobfinished", "/jobs/nightly")
    assert not exact.matches("Contoso.Etl.JobFinished", "/jobs/nightly/2")
    assert not exact.matches("Contoso.Etl.JobFinished", "/JOBS/nightly")
    assert not exact.matches("Contoso.Etl.JobFinished", None)
    assert not exact.matches("Contoso.Etl.JobStarted", "/jobs/nightly")
    prefix = Upstream(eventType="Contoso.Etl.JobFinished", subject="/jobs/*")
    assert prefix.matches("Contoso.Etl.JobFinished", "/jobs/a")
    assert prefix.matches("Contoso.Etl.JobFinished", "/jobs/")
    assert not prefix.matches("Contoso.Etl.JobFinished", "/job")
    anything = Upstream(eventType="Contoso.Etl.JobFinished")
    assert anything.matches("CONTOSO.ETL.JOBFINISHED", None)
    assert anything.matches("Contoso.Etl.JobFinished", "/whatever")


@SETTINGS
@given(
    st.text(min_size=1, max_size=30),
    st.one_of(st.none(), st.text(max_size=30)),
    st.text(max_size=30),
    st.one_of(st.none(), st.text(max_size=40)),
)
def test_upstream_matching_fuzz(
    configured_type: str, configured_subject: str | None, event_type: str, subject: str | None
) -> None:
    upstream = Upstream(eventType=configured_type, subject=configured_subject)
    result = upstream.matches(event_type, subject)
    assert isinstance(result, bool)
    if result:
        assert event_type.lower() == configured_type.lower()
    if event_type.lower() != configured_type.lower():
        assert not result
    elif configured_subject is None:
        assert result
    elif configured_subject.endswith("*"):
        assert result == (subject or "").startswith(configured_subject[:-1])
    else:
        assert result == (subject == configured_subject)
    # The configured type and subject always match themselves (a prefix matches what it names).
    assert upstream.matches(configured_type.upper(), (configured_subject or "").rstrip("*") or configured_subject) or (
        configured_type.upper().lower() != configured_type.lower()
    )


# --- jobs ---------------------------------------------------------------------------------------
def rest_job() -> dict[str, Any]:
    example = json.loads((REST_EXAMPLES / "GetJobDetails.json").read_text())
    return dict(example["responses"]["200"]["body"])


def test_rest_example_in_progress() -> None:
    job = parse_job(rest_job())
    assert job.job_id == "00000000-0000-0000-0000-000000000000"
    assert job.status == "InProgress"
    assert job.start_time == "2017-08-03T05:31:07.014604Z"
    assert job.snapshot_status == "InProgress"
    assert job.transfer_status == "NotStarted"
    assert not job.terminal and not job.succeeded and not job.snapshot_done
    assert job.failed_phase == "snapshot"
    assert job.error_code is None and job.recommendations == []
    assert JobView.from_dict(job.to_dict()) == job


def completed_job() -> dict[str, Any]:
    body = copy.deepcopy(rest_job())
    props = body["properties"]
    props.update(status="Completed", endTime="2017-08-03T07:01:07Z", isUserTriggered=True)
    props["extendedInfo"]["propertyBag"]["Backup Size"] = "1234 MB"
    props["extendedInfo"]["tasksList"] = [
        {
            "taskId": "Take Snapshot",
            "status": "Completed",
            "startTime": "2017-08-03T05:31:07Z",
            "endTime": "2017-08-03T05:40:00Z",
            "duration": "PT8M53S",
        },
        {"taskId": "Transfer data to vault", "status": "Completed", "duration": "PT1H21M"},
    ]
    return body


def test_completed_job() -> None:
    job = parse_job(completed_job())
    assert job.terminal and job.succeeded and job.snapshot_done
    assert (job.snapshot_end, job.snapshot_duration, job.backup_size) == ("2017-08-03T05:40:00Z", "PT8M53S", "1234 MB")
    assert job.transfer_status == "Completed"
    assert job.user_triggered is True
    assert job.end_time == "2017-08-03T07:01:07Z"


def test_failed_jobs_report_the_phase_code_message_and_recommendations() -> None:
    body = completed_job()
    props = body["properties"]
    props["status"] = "Failed"
    props["extendedInfo"]["tasksList"][1]["status"] = "Failed"
    # AzureIaaSVMErrorInfo: an int errorCode, errorTitle names the entity; the documented message
    # (DOCS_VM, with or without its final period) names the symbolic code.
    props["errorDetails"] = [
        {
            "errorCode": 400301,
            "errorTitle": "web01",
            "errorString": "Copying backed up data from vault timed out.",
            "recommendations": ["Retry the backup."],
        }
    ]
    job = parse_job(body)
    assert job.terminal and not job.succeeded
    assert job.failed_phase == "transfer"
    assert (job.error_code, job.error_number, job.error_title, job.error_message, job.recommendations) == (
        "CopyingVHDsFromBackUpVaultTakingLongTime",
        400301,
        "web01",
        "Copying backed up data from vault timed out.",
        ["Retry the backup."],
    )
    assert JobView.from_dict(job.to_dict()) == job
    props["extendedInfo"]["tasksList"][0]["status"] = "Failed"
    props["errorDetails"] = [{"errorCode": 400002, "errorTitle": ""}]
    props["extendedInfo"]["dynamicErrorMessage"] = "Snapshot failed"
    job = parse_job(body)
    assert (job.failed_phase, job.error_code, job.error_number, job.error_title, job.error_message) == (
        "snapshot",
        None,
        400002,
        None,
        "Snapshot failed",
    )


def test_a_running_backup_failing_the_new_job_names_its_documented_code() -> None:
    body = completed_job()
    props = body["properties"]
    props["status"] = "Failed"
    props["extendedInfo"]["tasksList"][0]["status"] = "Failed"
    props["errorDetails"] = [
        {
            "errorCode": 1,
            "errorTitle": "sql01",
            "errorString": "Unable to initiate backup as another backup operation is currently in progress.",
        }
    ]
    assert parse_job(body).error_code == "UserErrorBackupOperationInProgress"
    props["errorDetails"][0]["errorString"] = "Something Azure has not documented."
    assert parse_job(body).error_code is None
    # a localized errorString: the job details' non-localized dynamicErrorMessage still names it
    props["errorDetails"][0]["errorString"] = "Impossible de lancer la sauvegarde."
    props["extendedInfo"]["dynamicErrorMessage"] = (
        "Unable to initiate backup as another backup operation is currently in progress"
    )
    job = parse_job(body)
    assert (job.error_code, job.error_message) == (
        "UserErrorBackupOperationInProgress",
        "Impossible de lancer la sauvegarde.",
    )


def test_job_with_nothing_known() -> None:
    job = parse_job({"id": "/subscriptions/x/backupJobs/abc"})
    assert (job.job_id, job.status, job.snapshot_status) == ("abc", "Unknown", None)
    assert not job.terminal


def test_task_ids_match_case_insensitively() -> None:
    body = rest_job()
    body["properties"]["extendedInfo"]["tasksList"][0].update(taskId="TAKE SNAPSHOT", status="CompletedWithWarnings")
    assert parse_job(body).snapshot_done


# --- the polling plan ----------------------------------------------------------------------------
_minutes = st.floats(min_value=0.5, max_value=120, allow_nan=False)
_elapsed = st.floats(min_value=-100, max_value=48 * 3600, allow_nan=False)


@st.composite
def plans(draw: st.DrawFn) -> PollPlan:
    low = draw(_minutes)
    high = draw(st.floats(min_value=low, max_value=low + 120, allow_nan=False))
    dense = draw(st.floats(min_value=1, max_value=60, allow_nan=False))
    return PollPlan.for_minutes(low, high, dense_s=dense)


@SETTINGS
@given(plans(), _elapsed)
def test_snapshot_polling(plan: PollPlan, elapsed: float) -> None:
    delay = plan.snapshot_delay(elapsed)
    assert delay > 0
    dense_from = max(0.0, plan.snapshot_low_s - plan.lead_s)
    dense_until = plan.snapshot_high_s + plan.lead_s
    elapsed = max(0.0, elapsed)  # a clock skewed behind the job's start counts as its start
    if elapsed < dense_from:
        # nothing before the shortest plausible snapshot time (less the lead) ...
        assert elapsed + delay == pytest.approx(dense_from)
    elif elapsed < dense_until:
        # ... dense across the expected window ...
        assert delay == plan.dense_s
    else:
        # ... and a bounded backoff once the snapshot is overdue.
        assert plan.overdue_min_s <= delay <= plan.overdue_max_s
        assert delay <= plan.snapshot_delay(elapsed + 600)


@SETTINGS
@given(plans())
def test_polls_from_job_start_cover_the_window_densely(plan: PollPlan) -> None:
    polls, t = [], 0.0
    while t < plan.snapshot_high_s + 3600:
        t += plan.snapshot_delay(t)
        polls.append(t)
    assert polls[0] >= plan.snapshot_low_s - plan.lead_s - 1e-6
    inside = [p for p in polls if plan.snapshot_low_s <= p <= plan.snapshot_high_s]
    gaps = [b - a for a, b in itertools.pairwise(polls) if a < plan.snapshot_high_s]
    assert all(g <= plan.dense_s + 1e-6 for g in gaps)
    assert len(inside) >= int((plan.snapshot_high_s - plan.snapshot_low_s) // plan.dense_s)


@SETTINGS
@given(_elapsed)
def test_transfer_and_waiting_delays_are_bounded(elapsed: float) -> None:
    plan = PollPlan()
    assert plan.transfer_first_s <= plan.transfer_delay(elapsed) <= plan.transfer_max_s
    assert plan.overdue_min_s <= plan.waiting_delay(elapsed) <= plan.transfer_max_s
    assert plan.transfer_delay(elapsed) <= plan.transfer_delay(elapsed + 60)


def test_plan_round_trips_through_orchestrator_input() -> None:
    plan = PollPlan.for_minutes(6, 8)
    assert PollPlan(**json.loads(json.dumps(plan.__dict__))) == plan
    assert (plan.snapshot_low_s, plan.snapshot_high_s) == (360, 480)


# --- event and instance ids -------------------------------------------------------------------------
_run_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}", fullmatch=True)
_scopes = st.one_of(st.just("chain"), st.builds(vm_text, _vm_names))


@SETTINGS
@given(_run_ids, _scopes, st.sampled_from(EVENT_TYPES), _run_ids, _scopes, st.sampled_from(EVENT_TYPES))
def test_event_ids_are_deterministic_and_distinct(
    run_a: str, scope_a: str, type_a: str, run_b: str, scope_b: str, type_b: str
) -> None:
    assert event_id(run_a, scope_a, type_a) == event_id(run_a, scope_a.upper(), type_a)
    same = (run_a, scope_a.lower(), type_a) == (run_b, scope_b.lower(), type_b)
    assert (event_id(run_a, scope_a, type_a) == event_id(run_b, scope_b, type_b)) == same


def test_every_event_type_of_one_run_and_vm_has_its_own_id() -> None:
    ids = {event_id("r1", vm_text("app01"), t) for t in EVENT_TYPES}
    ids |= {event_id("r1", "chain", t) for t in EVENT_TYPES}
    assert len(ids) == 2 * len(EVENT_TYPES)


def test_cloud_event_shape() -> None:
    event = cloud_event(
        prefix="BackupChain.",
        event_type="SnapshotCompleted",
        source="/vault",
        subject=vm_text("app01"),
        run_id="r1",
        scope=vm_text("app01"),
        time="2025-01-01T00:00:00Z",
        data={"chain": "c"},
    )
    assert event["specversion"] == "1.0"
    assert event["type"] == "BackupChain.SnapshotCompleted"
    assert event["id"] == event_id("r1", vm_text("app01"), "SnapshotCompleted")
    assert chain_subject("c", "r1") == "/chains/c/runs/r1"
    with pytest.raises(ValueError, match="unknown event type"):
        cloud_event(prefix="", event_type="Nope", source="/s", subject="/x", run_id="r1", scope="x", time="t", data={})


@SETTINGS
@given(st.text(max_size=100))
def test_run_id_validation_matches_the_api_pattern(text: str) -> None:
    api_valid = True
    try:
        StartRun.model_validate({"runId": text})
    except Exception:
        api_valid = False
    assert valid_run_id(text) == api_valid == bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}", text))


@SETTINGS
@given(st.text(min_size=1, max_size=200))
def test_runs_named_after_events_are_valid_and_stable(event: str) -> None:
    run_id = run_id_for_event(event)
    assert valid_run_id(run_id)
    assert run_id == run_id_for_event(event)


def test_instance_ids() -> None:
    assert chain_instance_id("Nightly", "r1") == "chain:nightly:r1"
    assert vm_instance_id("r1", "Nightly", vm_text("App01")) == vm_instance_id("r1", "nightly", vm_text("app01"))
    assert vm_instance_id("r1", "a", vm_text("x")) != vm_instance_id("r1", "b", vm_text("x"))
    assert len(vm_hash(vm_text("x"))) == 16
    from datetime import datetime, timedelta, timezone

    when = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=9)))
    assert run_id_for_window(when) == "w-20250101T180405Z"
    assert valid_run_id(run_id_for_window(when))


def test_run_ids_with_a_trailing_newline_are_invalid() -> None:
    assert not valid_run_id("r1\n")
    assert valid_run_id("r1")


# --- error classification -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (429, None, "transient"),
        (503, "ServiceUnavailable", "transient"),
        (500, "Anything", "transient"),
        (None, None, "transient"),  # no response at all: connection error
        (400, "SubscriptionRequestsThrottled", "transient"),
        (409, "UserErrorBackupOperationInProgress", "conflict"),
        (400, "BMSUserErrorObjectLocked", "conflict"),
        (400, "UserErrorBackupNotAllowedProtectionStopped", "stopped"),
        (400, "UserErrorVmNotFound", "final"),
        (403, "AuthorizationFailed", "final"),
        (404, None, "final"),
    ],
)
def test_classify(status: int | None, code: str | None, kind: str) -> None:
    assert classify(status, code) == kind


def test_failure_carries_what_orchestrators_need() -> None:
    found = failure(404, None, "not found", ["check the VM"])
    assert found.to_dict() == {
        "kind": "final",
        "code": "HTTP404",
        "message": "not found",
        "status": 404,
        "recommendations": ["check the VM"],
    }


# --- API bodies ---------------------------------------------------------------------------------
def bad(raw: bytes, model: type = StartRun, **kwargs: Any) -> RequestError:
    with pytest.raises(RequestError) as caught:
        parse_body(raw, model, **kwargs)
    return caught.value


def test_start_run_bodies() -> None:
    assert parse_body(b"", StartRun) == StartRun()
    body = parse_body(
        json.dumps({"runId": "r-1", "vms": [vm_text("App01")], "waitForUpstream": True}).encode(), StartRun
    )
    assert (body.runId, body.vms, body.waitForUpstream) == ("r-1", [vm_text("App01")], True)
    nested = parse_body(b'{"upstream": {"status": "Failed", "detail": {"code": 3}}}', StartRun)
    assert nested.upstream == UpstreamReport(status="Failed", detail={"code": 3})


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"runId": 5}, "runId", "string"),
        ({"runId": "a b"}, "runId", "pattern"),
        ({"waitForUpstream": "true"}, "waitForUpstream", "boolean"),
        ({"waitForUpstream": 1}, "waitForUpstream", "boolean"),
        ({"vms": "x"}, "vms", "list"),
        ({"vms": []}, "vms", "at least 1"),
        ({"vms": ["app01"]}, "vms", "vms[0]"),
        ({"vms": [5]}, "vms.0", "string"),
        ({"extra": 1}, "extra", "not a known setting"),
        ({"upstream": {"status": "ok"}}, "upstream.status", "'Succeeded' or 'Failed'"),
        ({"upstream": {"status": "Failed", "detail": "x" * 20000}}, "upstream.detail", "at most"),
    ],
)
def test_bad_start_run_fields(body: dict[str, Any], field: str, words: str) -> None:
    error = bad(json.dumps(body).encode())
    assert (error.status, error.field) == (400, field)
    assert words in error.detail


@pytest.mark.parametrize(
    ("raw", "status", "words"),
    [
        (b"{", 400, "not valid JSON"),
        (b"\xff", 400, "not valid JSON"),
        (b"[]", 400, "JSON object"),
        (b"null", 400, "JSON object"),
        (b"[" * 5000, 400, "too deeply"),
        (b" " * (MAX_BODY_BYTES + 1), 413, "larger than"),
    ],
)
def test_malformed_bodies(raw: bytes, status: int, words: str) -> None:
    error = bad(raw)
    assert (error.status, error.field) == (status, None)
    assert words in error.detail


def test_upstream_report_needs_a_body() -> None:
    assert bad(b"  ", UpstreamReport, allow_empty=False).detail == "a JSON body is required"
    assert bad(b"{}", UpstreamReport).field == "status"
    assert parse_body(b'{"status": "Succeeded"}', UpstreamReport).status == "Succeeded"


@SETTINGS
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes_parse_or_fail_with_request_error(raw: bytes) -> None:
    for model in (StartRun, UpstreamReport):
        try:
            parse_body(raw, model)
        except RequestError as err:
            assert err.status in (400, 413)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=15,
)


@SETTINGS
@given(st.dictionaries(st.sampled_from(["runId", "vms", "waitForUpstream", "upstream", "status", "x"]), _json_values))
def test_any_json_object_parses_or_names_a_field(data: dict[str, Any]) -> None:
    assume(data)
    for model in (StartRun, UpstreamReport):
        try:
            parse_body(json.dumps(data).encode(), model)
        except RequestError as err:
            assert err.status == 400
            assert (err.field and err.field.split(".")[0] in data) or err.field == "status"
