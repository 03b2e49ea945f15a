"""Permanent errors the Recovery Services emulator injects on resume/stop protection, as the real
SDK sees them: 403 AuthorizationFailed and 404 ResourceNotFound (final, never retried as
transient), scoped to some VMs, cleared at run time; a bad fault body is refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from azure.core.exceptions import HttpResponseError

from activities.azure_errors import from_exception
from tests.integration.rs_support import (
    Emulator,
    far_policies,
    resume_protection,
    scenario,
    start_emulator,
    stop_protection,
    utcnow,
    vm_entry,
)

PUT = "ProtectedItems_CreateOrUpdate"


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    vms = [vm_entry("perm01", "weekly"), vm_entry("perm02", "weekly")]
    yield from start_emulator(tmp_path_factory.mktemp("rs-permanent"), scenario(vms, far_policies(utcnow())))


@pytest.fixture(scope="module")
def client(emu: Emulator) -> Any:
    return emu.client()


def _refused(call: Any) -> HttpResponseError:
    with pytest.raises(HttpResponseError) as err:
        call()
    return err.value


def test_authorization_failed_on_stop_and_resume_only_for_the_named_vm(emu: Emulator, client: Any) -> None:
    emu.admin("POST", "/admin/faults", json={"errors": {PUT: {"code": "AuthorizationFailed", "vms": ["perm01"]}}})
    try:
        err = _refused(lambda: stop_protection(client, "perm01"))
        assert err.status_code == 403 and err.error is not None and err.error.code == "AuthorizationFailed"
        assert "does not have authorization to perform action" in str(err.error.message)
        assert "protectedItems/write" in str(err.error.message)
        failure = from_exception(err)
        assert (failure.kind, failure.code) == ("final", "AuthorizationFailed")
        stop_protection(client, "perm02")  # another VM is unaffected
        resume_protection(client, "perm02", "weekly")
        assert _refused(lambda: resume_protection(client, "perm01", "weekly")).status_code == 403
    finally:
        emu.admin("POST", "/admin/faults", json={"errors": {PUT: None}})
    stop_protection(client, "perm01")  # cleared
    resume_protection(client, "perm01", "weekly")


def test_resource_not_found_on_every_vm(emu: Emulator, client: Any) -> None:
    emu.admin("POST", "/admin/faults", json={"errors": {PUT: {"code": "ResourceNotFound"}}})
    try:
        err = _refused(lambda: stop_protection(client, "perm02"))
        assert err.status_code == 404 and err.error is not None and err.error.code == "ResourceNotFound"
        failure = from_exception(err)
        assert (failure.kind, failure.code) == ("final", "ResourceNotFound")
        assert emu.admin("GET", "/admin/state")["faultsInjected"]["ResourceNotFound"] >= 1
    finally:
        emu.admin("POST", "/admin/faults", json={"errors": {PUT: None}})


def test_an_unknown_permanent_code_is_refused(emu: Emulator) -> None:
    response = requests.post(
        emu.url + "/admin/faults", json={"errors": {PUT: {"code": "Teapot"}}}, verify=emu.ca, timeout=30
    )
    assert response.status_code == 400
    assert "AuthorizationFailed" in response.json()["error"]["message"]
