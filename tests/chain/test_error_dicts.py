"""One builder for every error dict (backup_chain/errors.py), with the keys each kind of failure
always had: histories of runs in flight and the events built from them read the same JSON."""

from __future__ import annotations

from backup_chain.errors import AzureFailure, error_dict, failure, retries_exhausted


def test_the_apps_own_verdicts_carry_kind_code_message_and_recommendations_only() -> None:
    assert error_dict("LeaseBusy", "protection lease stayed busy") == {
        "kind": "final",
        "code": "LeaseBusy",
        "message": "protection lease stayed busy",
        "recommendations": [],
    }
    conflict = error_dict("BackupKeptConflicting", "another backup kept running", kind="conflict")
    assert (conflict["kind"], "status" in conflict) == ("conflict", False)


def test_azure_answers_also_carry_the_http_status_even_when_there_was_none() -> None:
    answered = failure(409, "BMSUserErrorObjectLocked", "locked").to_dict()
    assert answered == {
        "kind": "conflict",
        "code": "BMSUserErrorObjectLocked",
        "message": "locked",
        "status": 409,
        "recommendations": [],
    }
    unanswered = AzureFailure("final", "OperationWithoutJob", "no job").to_dict()
    assert set(unanswered) == {"kind", "code", "message", "status", "recommendations"}
    assert unanswered["status"] is None


def test_a_failed_jobs_error_keeps_azures_number_and_title() -> None:
    error = error_dict("ExtensionSnapshotFailedNoNetwork", "no network", extras={"number": 400, "title": None})
    assert error == {
        "kind": "final",
        "code": "ExtensionSnapshotFailedNoNetwork",
        "message": "no network",
        "recommendations": [],
        "number": 400,
        "title": None,
    }


def test_retries_exhausted_names_the_last_azure_code() -> None:
    error = retries_exhausted("TaskFailed: TransientAzureError: ServiceUnavailable: try later\nstack")
    assert error == {
        "kind": "transient",
        "code": "ServiceUnavailable",
        "message": "still failing after the retries: try later",
        "status": None,
        "recommendations": ["Azure kept failing beyond the retries; check Azure status and retry the run."],
    }
    assert retries_exhausted("something else")["code"] == "RetriesExhausted"
