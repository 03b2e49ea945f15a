"""The ARM surface: bearer auth, ARM throttling, api-version, fault injection, request counting, and the
Recovery Services operations the app uses (names are the spec's operationIds)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from emulators.recoveryservices import API_VERSION, authorization, errors, resource_graph, resource_guard, shapes
from emulators.recoveryservices.odata import parse_filter, parse_time
from emulators.recoveryservices.runtime import Runtime

# The SDK default plus stable versions from the spec (operation URLs in the spec examples carry old
# versions such as 2016-12-01, so those are accepted too).
SUPPORTED_API_VERSIONS = (
    API_VERSION,
    "2025-08-01",
    "2025-02-01",
    "2024-10-01",
    "2024-04-01",
    "2023-04-01",
    "2021-12-01",
    "2019-05-13",
    "2017-07-01",
    "2016-12-01",
    "2016-06-01",
)
# Vaults_Get is the recoveryservices API (azure-mgmt-recoveryservices==4.3.0 default), not the backup one.
VAULT_API_VERSIONS = ("2026-11-01", "2025-08-01")
JOBS_PAGE = 50
ITEMS_PAGE = 200

_BASE = (
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.RecoveryServices"
    r"/vaults/(?P<vault>[^/]+)"
)
_ITEM = (
    _BASE + r"/backupFabrics/(?P<fabric>[^/]+)/protectionContainers/(?P<container>[^/]+)/protectedItems/(?P<item>[^/]+)"
)

Handler = Callable[[Runtime, web.Request, dict[str, str]], Awaitable[web.StreamResponse]]
ROUTES: list[tuple[str, re.Pattern[str], str, Handler]] = []


def route(method: str, pattern: str, operation: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        ROUTES.append((method, re.compile(pattern + "$", re.IGNORECASE), operation, fn))
        return fn

    return register


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _async_headers(
    request: web.Request, rt: Runtime, path: str, op_id: str, *, status: bool, retry_after: int | None = None
) -> dict[str, str]:
    version = request.query.get("api-version", API_VERSION)
    headers = {
        "Location": f"{_origin(request)}{path}/operationResults/{op_id}?api-version={version}",
        "Retry-After": str(rt.async_retry_after if retry_after is None else retry_after),
    }
    if status:
        headers["Azure-AsyncOperation"] = f"{_origin(request)}{path}/operationsStatus/{op_id}?api-version={version}"
    return headers


def _item_path(m: dict[str, str]) -> str:
    return (
        f"/subscriptions/{m['sub']}/resourceGroups/{m['rg']}/providers/Microsoft.RecoveryServices/vaults/"
        f"{m['vault']}/backupFabrics/{m['fabric']}/protectionContainers/{m['container']}/protectedItems/{m['item']}"
    )


def _vault_path(m: dict[str, str]) -> str:
    return (
        f"/subscriptions/{m['sub']}/resourceGroups/{m['rg']}/providers/Microsoft.RecoveryServices/vaults/{m['vault']}"
    )


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise errors.bad_request("The request body is not valid JSON.", "InvalidRequestContent") from None
    if not isinstance(body, dict):
        raise errors.bad_request("The request body must be a JSON object.", "InvalidRequestContent")
    return body


def _page_token(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode().rstrip("=")


def _read_token(token: str | None) -> dict[str, Any]:
    if not token:
        return {}
    try:
        return dict(json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))))
    except (ValueError, TypeError):
        raise errors.bad_request("The skip token is invalid.", "BMSUserErrorInvalidSkipToken") from None


def _paged(
    request: web.Request,
    path: str,
    values: list[Any],
    page: int,
    token: dict[str, Any],
    extra: dict[str, Any],
    render: Callable[[Any], Any] = lambda v: v,
) -> dict[str, Any]:
    """One page of ``values`` (rendered lazily: only the page's entries) with an ARM ``nextLink``."""
    offset = int(token.get("offset", 0))
    body: dict[str, Any] = {"value": [render(v) for v in values[offset : offset + page]]}
    if offset + page < len(values):
        nxt = _page_token({**extra, "offset": offset + page})
        version = request.query.get("api-version", API_VERSION)
        body["nextLink"] = f"{_origin(request)}{path}?api-version={version}&$skipToken={nxt}"
    return body


# --- vaults ---------------------------------------------------------------------------------------
@route("GET", _BASE, "Vaults_Get")
async def get_vault(rt: Runtime, request: web.Request, m: dict[str, str]) -> web.StreamResponse:
    return web.json_response(shapes.vault(rt.engine.vault(m["sub"], m["rg"], m["vault"])))


# --- protected items ----------------------------------------------------------------------------
@route("GET", _BASE + r"/backupProtectedItems", "BackupProtectedItems_List")
async def list_items(rt: Runtime, request: web.Request, m: dict[str, str]) -> web.StreamResponse:
    token = _read_token(request.query.get("$skipToken"))
    flt = parse_filter(token.get("filter", request.query.get("$filter")))
    vault = rt.engine.vault(m["sub"], m["rg"], m["vault"])
    now = rt.now()
    out = []
    for item in rt.engine.vault_items(vault):
        if flt.get("backupmanagementtype", "AzureIaasVM").lower() != "azureiaasvm":
            continue
        if flt.get("itemtype", "VM").lower() != "vm":
            continue
        if "policyname" in flt and (item.policy or "").lower() != flt["policyname"].lower():
            continue
        if "friendlyname" in flt and item.vm.name.lower() != flt["friendlyname"].lower():
            continue
        if "protectionstate" in flt and item.protection_state().lower() != flt["protectionstate"].lower():
            continue
        out.append(item)
    extra = {"filter": token.get("filter", request.query.get("$filter"))}
    path = _vault_path(m) + "/backupProtectedItems"
    render = lambda i: shapes.protected_item(i, now)  # noqa: E731
    return web.json_response(_paged(request, path, out, ITEMS_PAGE, token, extra, render))


@route("GET", _ITEM, "ProtectedItems_Get")
async def get_item(rt: Runtime, request: web.Request, m: dict[str, str]) -> web.StreamResponse:
    vault = rt.engine.vault(m["sub"], m["rg"], m["vault"])
    item = rt.engine.item(vault, m["container"], m["item"])
    return web.json_response(shapes.protected_item(item, rt.now()))


@route("PUT", _ITEM, "ProtectedItems_CreateOrUpdate")
async def put_item(rt: Runtime, request: web.Request, m: dict[str, str]) -> web.StreamResponse:
    vault = rt.engine.vault(m["sub"], m["rg"], m["vault"])
    item = rt.engine.item(vault, m["container"], m["item"])
    props = (await _json_body(request)).get("properties") or {}
    state = str(props.get("protectionState") or "")
    policy_id = props.get("policyId")
    policy = str(policy_id).rstrip("/").rsplit("/", 1)[-1] if policy_id else None
    # StopProtection.json: protectionState=ProtectionStopped keeps the data; a policyId resumes/changes
    stop = state.lower() == "protectionstopped"
    guard = vault.spec.resource_guard
    # Stop protection (retain data) is a protectedItems/write, the guard's "modify protection"
    # operation (resource_guard.py); Az PowerShell authorizes it via resourceGuardOperationRequests.
    if (
        stop
        and guard is not None
        and guard.guards(resource_guard.MODIFY_PROTECTION)
        and not guard.authorizes(props.get("resourceGuardOperationRequests"))
    ):
        raise errors.resource_guard_refusal(guard.name, resource_guard.MODIFY_PROTECTION)
    op = rt.engine.set_protection(item, stop=stop, policy=None if stop else policy, now=rt.now())
    headers = _async_headers(request, rt, _item_path(m), op.id, status=True)
    return web.Response(status=202, headers=headers)


@route("POST", _ITEM + r"/backup", "Backups_Trigger")
async def trigger(rt: Runtime, request: web.Request, m: dict[str, str]) -> web.StreamResponse:
    vault = rt.engine.vault(m["sub"], m["rg"], m["vault"])
    item = rt.engine.item(vault, m["container"], m["item"])
    props = (await _json_body(request)).get("properties") or {}
    expiry_raw = props.get("recoveryPointExpiryTimeInUTC")
    expiry = None
    if expiry_raw:
        try:
            expiry = datetime.fromisoformat(str(expiry_raw).replace("Z", "+00:00"))
        except ValueError:
            raise errors.bad_request(
                "recoveryPointExpiryTimeInUTC is not a valid date-time.", "BMSUserErrorInvalidInput"
            ) from None
        if expiry.tzinfo is None:
            expiry = expiry.replace(tzinfo=timezone.utc)
    op = rt.engine.trigger(item, rt.now(), expiry.timestamp() if expiry else None)
    retry_after = rt.scenario.trigger_rules.retry_after_seconds
    headers = _async_headers(request, rt, _item_path(m), op.id, status=True, retry_after=retry_after)
    return web.Response(status=202, headers=headers)


@route("GET", _ITEM + r"/operationsStatus/(?P<op>[^/]+)", "ProtectedItemOperationStatuses_Get")
async def item_op_status(rt: Runtime, request: web.Request, m: dict[str, str]) -> web.StreamResponse:
    op = rt.engine.operations.get(m["op"].lower())
    if op is None:
        raise errors.not_found(_item_path(m) + f"/operationsStatus/{m['op']}")
    return web.json_response(shapes.operation_status(op, rt.now()))


@route("GET", _ITEM + r"/operationResults/(?P<op>[^/]+)", "ProtectedItemOperationResults_Get")
async def item_op_result(rt: Runtime, request: web.Request, m: dict[str, str]) -> web.StreamResponse:
    op = rt.engine.operations.get(m["op"].lower())
    if op is None:
        raise errors.not_found(_item_path(m) + f"/operationResults/{m['op']}")
    now = rt.now()
    if now < op.end:
        retry_after = rt.scenario.trigger_rules.retry_after_seconds if op.kind == "backup" else None
        headers = _async_headers(request, rt, _item_path(m), op.id, status=True, retry_after=retry_after)
        return web.Response(status=202, headers=headers)
    if op.kind == "protect" and op.item is not None:
        return web.json_response(shapes.protected_item(op.item, now))
    return web.Response(status=204)


@route("GET", _ITEM + r"/recoveryPoints", "RecoveryPoints_List")
async def list_rps(rt: Runtime, request: web.Request, m: dict[str, str]) -> web.StreamResponse:
    vault = rt.engine.vault(m["sub"], m["rg"], m["vault"])
    item = rt.engine.item(vault, m["container"], m["item"])
    flt = parse_filter(request.query.get("$filter"))
    low = parse_time(flt["startdate"]) if "startdate" in flt else float("-inf")
    high = parse_time(flt["enddate"]) if "enddate" in flt else float("inf")
    rps = sorted((rp for rp in item.rps if low <= rp.time <= high), key=lambda rp: -rp.time)
    return web.json_response({"nextLink": None, "value": [shapes.recovery_point(item, rp) for rp in rps]})


@route("GET", _ITEM + r"/recoveryPoints/(?P<rp>[^/]+)", "RecoveryPoints_Get")
async def get_rp(rt: Runtime, request: web.Request, m: dict[str, str]) -> web.StreamResponse:
    vault = rt.engine.vault(m["sub"], m["rg"], m["vault"])
    item = rt.engine.item(vault, m["container"], m["item"])
    for rp in item.rps:
        if rp.name == m["rp"]:
            return web.json_response(shapes.recovery_point(item, rp))
    raise errors.not_found(_item_path(m) + f"/recoveryPoints/{m['rp']}")


# --- jobs ----------------------------------------------------------------------------------------
@route("GET", _BASE + r"/backupJobs", "BackupJobs_List")
async def list_jobs(rt: Runtime, request: web.Request, m: dict[str, str]) -> web.StreamResponse:
    token = _read_token(request.query.get("$skipToken"))
    raw_filter = token.get("filter", request.query.get("$filter"))
    flt = parse_filter(raw_filter)
    vault = rt.engine.vault(m["sub"], m["rg"], m["vault"])
    now = rt.now()
    low = parse_time(flt["starttime"]) if "starttime" in flt else float("-inf")
    high = parse_time(flt["endtime"]) if "endtime" in flt else float("inf")
    listed_before = now - rt.scenario.trigger_rules.job_list_lag_seconds  # a job just started is not listed yet
    selected = []
    for job in rt.engine.vault_jobs(vault):
        if job.start > listed_before or not low <= job.start <= high:
            continue
        if "operation" in flt and flt["operation"].lower() != "backup":
            continue
        if "backupmanagementtype" in flt and flt["backupmanagementtype"].lower() != "azureiaasvm":
            continue
        if "jobid" in flt and flt["jobid"].lower() != job.id:
            continue
        if "entityfriendlyname" in flt and flt["entityfriendlyname"].lower() != job.item.vm.name.lower():
            continue
        if "status" in flt and job.view(now).status.lower() != flt["status"].lower():
            continue
        selected.append(job)
    selected.sort(key=lambda j: -j.start)  # newest first, as the portal and API list them
    body = _paged(
        request,
        _vault_path(m) + "/backupJobs",
        selected,
        JOBS_PAGE,
        token,
        {"filter": raw_filter},
        lambda j: shapes.job(j, now, details=False),
    )
    return web.json_response(body)


def _job(rt: Runtime, m: dict[str, str]) -> Any:
    vault = rt.engine.vault(m["sub"], m["rg"], m["vault"])
    job = rt.engine.jobs.get(m["job"].lower())
    if job is None or job.item.vault is not vault:
        raise errors.not_found(_vault_path(m) + f"/backupJobs/{m['job']}")
    return job


@route("GET", _BASE + r"/backupJobs/(?P<job>[^/]+)", "JobDetails_Get")
async def get_job(rt: Runtime, request: web.Request, m: dict[str, str]) -> web.StreamResponse:
    job, now = _job(rt, m), rt.now()
    job.count_read(now)
    return web.json_response(shapes.job(job, now, details=True))


@route("POST", _BASE + r"/backupJobs/(?P<job>[^/]+)/cancel", "JobCancellations_Trigger")
async def cancel_job(rt: Runtime, request: web.Request, m: dict[str, str]) -> web.StreamResponse:
    op = rt.engine.cancel(_job(rt, m), rt.now())
    path = _vault_path(m) + f"/backupJobs/{m['job']}"
    return web.Response(status=202, headers=_async_headers(request, rt, path, op.id, status=False))


@route("GET", _BASE + r"/backupJobs/(?P<job>[^/]+)/operationResults/(?P<op>[^/]+)", "JobOperationResults_Get")
async def job_op_result(rt: Runtime, request: web.Request, m: dict[str, str]) -> web.StreamResponse:
    _job(rt, m)
    op = rt.engine.operations.get(m["op"].lower())
    if op is None:
        raise errors.not_found(_vault_path(m) + f"/backupJobs/{m['job']}/operationResults/{m['op']}")
    if op.error is not None:  # Azure/azure-rest-api-specs#5306: a refused cancel fails here with 400
        raise errors.ArmError(op.http_status, *op.error)
    return web.Response(status=204)


@route("GET", _BASE + r"/backupOperations/(?P<op>[^/]+)", "BackupOperationStatuses_Get")
async def vault_op_status(rt: Runtime, request: web.Request, m: dict[str, str]) -> web.StreamResponse:
    op = rt.engine.operations.get(m["op"].lower())
    if op is None:
        raise errors.not_found(_vault_path(m) + f"/backupOperations/{m['op']}")
    return web.json_response(shapes.operation_status(op, rt.now()))


# --- policies ------------------------------------------------------------------------------------
@route("GET", _BASE + r"/backupPolicies", "BackupPolicies_List")
async def list_policies(rt: Runtime, request: web.Request, m: dict[str, str]) -> web.StreamResponse:
    vault = rt.engine.vault(m["sub"], m["rg"], m["vault"])
    counts = rt.policy_counts(vault)
    values = [shapes.policy(vault, p, counts.get(p.name.lower(), 0)) for p in vault.policies.values()]
    return web.json_response({"value": values})


@route("GET", _BASE + r"/backupPolicies/(?P<policy>[^/]+)", "ProtectionPolicies_Get")
async def get_policy(rt: Runtime, request: web.Request, m: dict[str, str]) -> web.StreamResponse:
    vault = rt.engine.vault(m["sub"], m["rg"], m["vault"])
    spec = vault.policies.get(m["policy"].lower())
    if spec is None:
        raise errors.not_found(_vault_path(m) + f"/backupPolicies/{m['policy']}")
    return web.json_response(shapes.policy(vault, spec, rt.policy_counts(vault).get(spec.name.lower(), 0)))


# --- authorization (Microsoft.Authorization 2022-04-01: authorization.py) -------------------------
_AUTHZ = r"/providers/Microsoft\.Authorization/"
_SCOPE = r"^(?P<scope>/subscriptions/(?P<sub>[^/]+)(?:/resourceGroups/[^/]+(?:/providers/.+?)?)?)"


@route("GET", _SCOPE + _AUTHZ + r"roleAssignments", "RoleAssignments_ListForScope")
async def list_role_assignments(rt: Runtime, request: web.Request, m: dict[str, str]) -> web.StreamResponse:
    values = authorization.list_assignments(
        rt.scenario.authorization, m["scope"], request.query.get("$filter"), m["sub"]
    )
    return web.json_response({"value": values})


@route(
    "GET", r"^(?:/subscriptions/(?P<sub>[^/]+))?" + _AUTHZ + r"roleDefinitions/(?P<id>[^/]+)", "RoleDefinitions_GetById"
)
async def get_role_definition(rt: Runtime, request: web.Request, m: dict[str, str]) -> web.StreamResponse:
    subscription = m.get("sub") or rt.scenario.subscription_id
    return web.json_response(authorization.get_definition(rt.scenario.authorization, m["id"], subscription))


# The SDK sends an empty parentResourcePath as ``providers/{namespace}//{type}/{name}``.
@route(
    "GET",
    r"^(?P<scope>/subscriptions/[^/]+/resourceGroups/[^/]+(?:/providers/[^/]+/+.+?)?)" + _AUTHZ + r"permissions",
    "Permissions_ListForResource",
)
async def list_permissions(rt: Runtime, request: web.Request, m: dict[str, str]) -> web.StreamResponse:
    scope = re.sub(r"/{2,}", "/", m["scope"])
    return web.json_response({"value": authorization.caller_permissions(rt.scenario.authorization, scope)})


# --- Azure Resource Graph (resource_graph.py) -------------------------------------------------------
@route("POST", r"^/providers/Microsoft\.ResourceGraph/resources", "Resources")
async def graph_resources(rt: Runtime, request: web.Request, m: dict[str, str]) -> web.StreamResponse:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    try:
        answer, headers = rt.graph.answer(body, rt.engine.machines, rt.now())
    except resource_graph.GraphError as err:
        return err.response()
    return web.json_response(answer, headers=headers)


# --- dispatch ------------------------------------------------------------------------------------
def _check_auth(rt: Runtime, request: web.Request) -> None:
    header = request.headers.get("Authorization", "")
    challenge = {
        "WWW-Authenticate": 'Bearer authorization_uri="https://login.microsoftonline.com/common", error="invalid_token"'
    }
    if not header:
        raise errors.ArmError(401, *errors.AUTH_MISSING, challenge)
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise errors.ArmError(401, *errors.AUTH_BAD, challenge)
    if rt.bearer_token is not None and token.strip() != rt.bearer_token:
        raise errors.ArmError(401, *errors.AUTH_BAD, challenge)


def _check_api_version(request: web.Request, operation: str) -> None:
    version = request.query.get("api-version")
    if not version:
        raise errors.ArmError(400, *errors.MISSING_API_VERSION)
    if "/providers/microsoft.authorization/" in request.path.lower():
        if version not in authorization.API_VERSIONS:
            raise errors.ArmError(
                400,
                errors.NO_PROVIDER,
                f"The api-version '{version}' is invalid. The supported versions are "
                f"'{', '.join(authorization.API_VERSIONS)}'.",
            )
        return
    if operation == "Vaults_Get" and version in VAULT_API_VERSIONS:
        return
    if operation == "Resources":
        if version not in resource_graph.API_VERSIONS:
            raise errors.ArmError(
                400,
                errors.NO_PROVIDER,
                f"No registered resource provider found for API version '{version}' and type 'resources'. The "
                f"supported api-versions are '{', '.join(resource_graph.API_VERSIONS)}'.",
            )
        return
    if version not in SUPPORTED_API_VERSIONS:
        raise errors.ArmError(
            400,
            errors.NO_PROVIDER,
            f"No registered resource provider found for location 'japaneast' and API version "
            f"'{version}' for type 'vaults'. The supported api-versions are "
            f"'{', '.join(SUPPORTED_API_VERSIONS)}'.",
        )


def make_arm_handler(rt: Runtime) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        path = request.path
        matched: tuple[str, Handler, dict[str, str]] | None = None
        method_mismatch = False
        for method, pattern, operation, fn in ROUTES:
            found = pattern.match(path)
            if found:
                if method != request.method:
                    method_mismatch = True
                    continue
                matched = (operation, fn, found.groupdict())
                break
        operation = matched[0] if matched else "Unknown"
        rt.count(operation)
        headers: dict[str, str] = {}  # ARM's remaining-count header, once the request is admitted
        try:
            _check_auth(rt, request)
            # ARM throttles before the request reaches the resource provider: a throttled request
            # settles nothing, draws no fault and touches no state.
            headers = rt.throttler.admit(request.method, path, rt.now())
            _check_api_version(request, operation)
            if matched is None:
                if method_mismatch:
                    raise errors.ArmError(
                        405, "MethodNotAllowed", f"The HTTP method '{request.method}' is not supported."
                    )
                raise errors.ArmError(404, "InvalidResourceType", f"The resource path '{path}' is not supported.")
            await rt.faults.apply(request, operation)
            rt.settle()
            response = await matched[1](rt, request, matched[2])
        except errors.ArmError as err:
            rt.count_status(operation, err.status)
            response = err.response()
        response.headers.update(headers)
        return response

    return handle
