"""The Durable Functions HTTP API (instance management and entities), served both on the public
webhook path ``/runtime/webhooks/durabletask`` (system key required) and on the local RPC base
URL that out-of-proc SDK clients use, plus the ``durableClient`` binding JSON pointing at them."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from aiohttp import web
from dateutil.parser import isoparse

from devhost import history as h
from devhost.instance_ids import entity_instance_id, entity_key_error, orchestration_id_error
from devhost.runtime import Gone, InstanceExists, NotFound, Runtime
from devhost.store import InstanceRow

PUBLIC_BASE = "/runtime/webhooks/durabletask"
RPC_BASE = "/durabletask"
STATUS_VALUES = ("Running", "Pending", "Failed", "Canceled", "Terminated", "Completed", "Suspended")
MAX_BODY = 16 * 1024 * 1024
# OrchestrationStatusQueryCondition.PageSize and EntityQuery.PageSize default (extension source).
DEFAULT_PAGE_SIZE = 100
CONTINUATION = "x-ms-continuation-token"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _loads(text: str | None) -> Any:
    return json.loads(text) if text is not None else None


def status_json(inst: InstanceRow, *, show_input: bool, history: list[dict[str, Any]] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": inst.name,
        "instanceId": inst.instance_id,
        "runtimeStatus": inst.status,
        "input": _loads(inst.input) if show_input else None,
        "customStatus": _loads(inst.custom_status),
        "output": _loads(inst.output),
        "createdTime": _iso(inst.created_time),
        "lastUpdatedTime": _iso(inst.last_updated_time),
    }
    if history is not None:
        body["historyEvents"] = history
    return body


def _flag(request: web.Request, name: str, default: bool = False) -> bool:
    value = request.query.get(name)
    return default if value is None else value.lower() == "true"


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"Message": message, "ExceptionMessage": message}, status=status)


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"Message": message}), content_type="application/json")


def _page_size(request: web.Request) -> int:
    """``top``: the extension ignores a value that is not an integer (int.TryParse); devhost also
    refuses one below 1, which no backend can serve."""
    raw = request.query.get("top", "")
    try:
        top = int(raw)
    except ValueError:
        return DEFAULT_PAGE_SIZE
    if top < 1:
        raise _bad_request(f"top: {raw!r} must be 1 or more")
    return top


def _after(request: web.Request) -> str | None:
    """The last id of the previous page, from the opaque continuation token devhost issued."""
    token = request.headers.get(CONTINUATION, "")
    if not token or token == "null":
        return None
    try:
        return base64.b64decode(token.encode("ascii"), altchars=b"-_", validate=True).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise _bad_request(f"{CONTINUATION}: {token!r} is not a token this task hub issued") from None


def _next_token(ids: list[str], page_size: int) -> str:
    # A full page may have more after it; the last page answers "null" (see the report on
    # null vs absent: the extension adds the header with the backend's null token).
    if len(ids) < page_size:
        return "null"
    return base64.urlsafe_b64encode(ids[-1].encode("utf-8")).decode("ascii")


def _time_param(request: web.Request, key: str) -> float | None:
    if not request.query.get(key):
        return None
    try:
        moment: datetime = isoparse(request.query[key])
        return moment.timestamp()
    except ValueError:
        raise _bad_request(f"{key}: {request.query[key]!r} is not an ISO 8601 time") from None


def _iso_precise(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ManagementApi:
    def __init__(self, runtime: Runtime, hub_name: str, public_origin: str, rpc_origin: str, system_key: str | None):
        self.runtime = runtime
        self.hub = hub_name
        self.public_origin = public_origin.rstrip("/")
        self.rpc_origin = rpc_origin.rstrip("/")
        self.system_key = system_key

    # --- URLs ---------------------------------------------------------------------------------
    def _suffix(self) -> str:
        suffix = f"taskHub={self.hub}&connection=Storage"
        return f"{suffix}&code={self.system_key}" if self.system_key else suffix

    def management_urls(self, instance_id: str) -> dict[str, str]:
        base = f"{self.public_origin}{PUBLIC_BASE}/instances/{quote(instance_id, safe='')}"
        query = self._suffix()
        return {
            "id": instance_id,
            "purgeHistoryDeleteUri": f"{base}?{query}",
            "restartPostUri": f"{base}/restart?{query}",
            "rewindPostUri": f"{base}/rewind?reason={{text}}&{query}",
            "sendEventPostUri": f"{base}/raiseEvent/{{eventName}}?{query}",
            "statusQueryGetUri": f"{base}?{query}",
            "terminatePostUri": f"{base}/terminate?reason={{text}}&{query}",
            "resumePostUri": f"{base}/resume?reason={{text}}&{query}",
            "suspendPostUri": f"{base}/suspend?reason={{text}}&{query}",
        }

    def client_binding(self) -> str:
        """The JSON the host passes to a ``durableClient`` input binding."""
        base = f"{self.public_origin}{PUBLIC_BASE}"
        query = f"code={self.system_key}" if self.system_key else ""
        creation_query = f"?{query}" if query else ""
        new_instance = f"{base}/orchestrators/{{functionName}}[/{{instanceId}}]"
        wait_query = f"timeout={{timeoutInSeconds}}&pollingInterval={{intervalInSeconds}}{'&' + query if query else ''}"
        return json.dumps(
            {
                "taskHubName": self.hub,
                "connectionName": None,
                "creationUrls": {
                    "createNewInstancePostUri": f"{new_instance}{creation_query}",
                    "createAndWaitOnNewInstancePostUri": f"{new_instance}?{wait_query}",
                },
                "managementUrls": self.management_urls("INSTANCEID"),
                "baseUrl": base,
                "requiredQueryStringParameters": query,
                "rpcBaseUrl": f"{self.rpc_origin}{RPC_BASE}/",
            }
        )

    # --- routes -------------------------------------------------------------------------------
    def add_routes(self, app: web.Application, base: str, guard: Callable[[web.Request], None] | None) -> None:
        def wrap(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
            async def guarded(request: web.Request) -> web.StreamResponse:
                if guard is not None:
                    guard(request)
                return await handler(request)

            return guarded

        r = app.router
        r.add_post(f"{base}/orchestrators/{{name}}", wrap(self.start))
        r.add_post(f"{base}/orchestrators/{{name}}/{{instance_id}}", wrap(self.start))
        r.add_get(f"{base}/instances", wrap(self.query))
        r.add_get(f"{base}/instances/", wrap(self.query))
        r.add_delete(f"{base}/instances", wrap(self.purge_by))
        r.add_delete(f"{base}/instances/", wrap(self.purge_by))
        r.add_get(f"{base}/instances/{{instance_id}}", wrap(self.status))
        r.add_delete(f"{base}/instances/{{instance_id}}", wrap(self.purge_one))
        r.add_post(f"{base}/instances/{{instance_id}}/raiseEvent/{{event}}", wrap(self.raise_event))
        for op in ("terminate", "suspend", "resume"):
            r.add_post(f"{base}/instances/{{instance_id}}/{op}", wrap(self._control(op)))
        r.add_post(f"{base}/instances/{{instance_id}}/restart", wrap(self.restart))
        r.add_post(f"{base}/instances/{{instance_id}}/rewind", wrap(self.rewind))
        r.add_post(f"{base}/entities/{{name}}/{{key}}", wrap(self.signal_entity))
        r.add_get(f"{base}/entities/{{name}}", wrap(self.list_entities))
        r.add_get(f"{base}/entities/{{name}}/", wrap(self.list_entities))
        r.add_get(f"{base}/entities/{{name}}/{{key}}", wrap(self.entity_state))

    async def _json_body(self, request: web.Request) -> tuple[bool, Any]:
        if request.content_length and request.content_length > MAX_BODY:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=request.content_length)
        raw = await request.read()
        if not raw.strip():
            return False, None
        try:
            return True, json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise web.HTTPBadRequest(
                text=json.dumps({"Message": f"Invalid JSON content: {err}"}), content_type="application/json"
            ) from None

    async def start(self, request: web.Request) -> web.Response:
        _, value = await self._json_body(request)
        requested_id = request.match_info.get("instance_id")
        refused = orchestration_id_error(requested_id) if requested_id else None
        if refused is not None:
            return _error(400, refused)
        try:
            instance_id = self.runtime.start(
                request.match_info["name"],
                request.match_info.get("instance_id"),
                value,
                request.query.get("version"),
            )
        except NotFound as err:
            return _error(400, str(err))
        except InstanceExists as err:
            return _error(409, str(err))
        return self._check_status_response(instance_id)

    def _check_status_response(self, instance_id: str) -> web.Response:
        payload = self.management_urls(instance_id)
        payload.pop("rewindPostUri")
        headers = {"Location": payload["statusQueryGetUri"], "Retry-After": "10"}
        return web.json_response(payload, status=202, headers=headers)

    async def status(self, request: web.Request) -> web.Response:
        instance_id = request.match_info["instance_id"]
        inst = self.runtime.store.get_instance(instance_id)
        if inst is None:
            return web.json_response(None, status=404)
        show_input = _flag(request, "showInput", True)
        events = None
        if _flag(request, "showHistory") and inst.status != "Pending":
            events = h.status_history(
                self.runtime.store.history(instance_id),
                show_output=_flag(request, "showHistoryOutput"),
            )
        body = status_json(inst, show_input=show_input, history=events)
        headers = {}
        if inst.status in ("Completed", "Terminated", "Canceled"):
            code = 200
        elif inst.status == "Failed":
            code = 500 if _flag(request, "returnInternalServerErrorOnFailure") else 200
        else:
            code = 202
            headers = {"Location": str(request.url), "Retry-After": "5"}
        return web.json_response(body, status=code, headers=headers)

    def _filters(self, request: web.Request) -> dict[str, Any]:
        statuses = [s for s in request.query.get("runtimeStatus", "").split(",") if s]
        unknown = [s for s in statuses if s not in STATUS_VALUES]
        if unknown:
            raise web.HTTPBadRequest(
                text=json.dumps({"Message": f"runtimeStatus: unknown value(s) {unknown}; expected {STATUS_VALUES}"}),
                content_type="application/json",
            )
        return {
            "statuses": statuses or None,
            "prefix": request.query.get("instanceIdPrefix"),
            "created_from": _time_param(request, "createdTimeFrom"),
            "created_to": _time_param(request, "createdTimeTo"),
        }

    async def query(self, request: web.Request) -> web.Response:
        """One page (``top``, default 100) in instance-id order; ``x-ms-continuation-token`` in
        the answer fetches the next (extension HttpApiHandler.HandleGetStatusRequestAsync)."""
        filters = self._filters(request)
        page_size = _page_size(request)
        rows = self.runtime.store.query_instances(**filters, limit=page_size, after_id=_after(request))
        show_input = _flag(request, "showInput")
        headers = {CONTINUATION: _next_token([r.instance_id for r in rows], page_size)}
        return web.json_response([status_json(r, show_input=show_input, history=None) for r in rows], headers=headers)

    async def purge_one(self, request: web.Request) -> web.Response:
        instance_id = request.match_info["instance_id"]
        inst = self.runtime.store.get_instance(instance_id)
        if inst is None:
            return web.json_response(None, status=404)
        if not inst.is_terminal:
            return web.json_response(
                f"Instance '{instance_id}' is {inst.status}; only completed, failed or terminated instances "
                "can be purged.",
                status=412,
            )
        return web.json_response({"instancesDeleted": self.runtime.purge([instance_id])})

    async def purge_by(self, request: web.Request) -> web.Response:
        if not request.query.get("createdTimeFrom"):
            return web.json_response("Please provide value for 'createdTimeFrom' parameter.", status=400)
        filters = self._filters(request)
        ids = [r.instance_id for r in self.runtime.store.query_instances(**filters)]
        deleted = self.runtime.purge(ids)
        return web.json_response({"instancesDeleted": deleted}, status=200 if deleted else 404)

    async def raise_event(self, request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            return _error(400, "Only application/json request content is supported")
        _, value = await self._json_body(request)
        try:
            self.runtime.raise_event(request.match_info["instance_id"], request.match_info["event"], value)
        except NotFound as err:
            return _error(404, str(err))
        except Gone as err:
            return _error(410, str(err))
        return web.Response(status=202)

    def _control(self, op: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            try:
                self.runtime.control(request.match_info["instance_id"], op, request.query.get("reason", ""))
            except NotFound as err:
                return _error(404, str(err))
            except Gone as err:
                return _error(410, str(err))
            return web.Response(status=202)

        return handler

    async def restart(self, request: web.Request) -> web.Response:
        inst = self.runtime.store.get_instance(request.match_info["instance_id"])
        if inst is None:
            return _error(404, f"No instance with ID '{request.match_info['instance_id']}' found.")
        reuse = request.query.get("restartWithNewInstanceId", "true").lower() == "false"
        try:
            new_id = self.runtime.start(inst.name, inst.instance_id if reuse else None, _loads(inst.input))
        except InstanceExists as err:
            return _error(409, str(err))
        return self._check_status_response(new_id)

    async def rewind(self, request: web.Request) -> web.Response:
        return _error(501, "Rewind is not supported by devhost.")

    async def signal_entity(self, request: web.Request) -> web.Response:
        op = request.query.get("op")
        if not op:
            return _error(400, "The 'op' query parameter is required to signal an entity.")
        if request.content_type == "application/json" or not request.content_type:
            present, value = await self._json_body(request)
            text = value if isinstance(value, str) else (json.dumps(value) if present else None)
        else:  # other content types reach the entity as the raw string
            raw = await request.text()
            text = json.dumps(raw) if raw else None
        name, key = request.match_info["name"], request.match_info["key"]
        # The extension's client checks the key, then that the entity function exists, and its
        # HTTP handler turns either ArgumentException into 400 (not the 404 the docs mention):
        # DurableClient.SignalEntityAsyncInternal, DurableTaskExtension.GetInvalidEntityFunctionMessage.
        refused = entity_key_error(key) or self._unknown_entity(name)
        if refused is not None:
            return _error(400, refused)
        self.runtime.signal_entity(name, key, op, text)
        return web.Response(status=202)

    def _unknown_entity(self, name: str) -> str | None:
        if self.runtime.index.durable("entityTrigger", name) is not None:
            return None
        known = sorted(spec.durable_name for spec in self.runtime.index.by_trigger("entityTrigger"))
        info = (
            "The following are the known entity functions: '" + "', '".join(known) + "'."
            if known
            else "No entity functions are currently registered!"
        )
        return (
            f"The function '{name}' doesn't exist, is disabled, or is not an entity function. Additional info: {info}"
        )

    async def list_entities(self, request: web.Request) -> web.Response:
        """``GET entities/{name}``: existing entities of that name, a page (``top``, default 100) at
        a time, in entity-id order, with lastOperationTimeFrom/To and fetchState (extension
        HttpApiHandler.HandleListEntitiesRequestAsync; fields per docs "HTTP API reference")."""
        name = request.match_info["name"].lower()
        page_size = _page_size(request)
        rows = self.runtime.store.list_entities(
            name,
            operated_from=_time_param(request, "lastOperationTimeFrom"),
            operated_to=_time_param(request, "lastOperationTimeTo"),
            after_id=_after(request),
            limit=page_size,
        )
        fetch_state = _flag(request, "fetchState")
        entities = []
        for row in rows:
            entity: dict[str, Any] = {
                "entityId": {"name": row["name"], "key": row["key"]},
                "lastOperationTime": _iso_precise(row["last_modified"]),
            }
            if fetch_state:
                entity["state"] = _loads(row["state"])
            entities.append(entity)
        headers = {CONTINUATION: _next_token([row["entity_id"] for row in rows], page_size)}
        return web.json_response(entities, headers=headers)

    async def entity_state(self, request: web.Request) -> web.Response:
        key = "" if request.match_info["key"] == "$" else request.match_info["key"]
        entity_id = entity_instance_id(request.match_info["name"], key)
        state = self.runtime.store.entity_state(entity_id)
        if state is None:
            return web.json_response(None, status=404)
        return web.json_response(json.loads(state))
