"""HTTP triggers: route templates (optional and typed parameters), methods, auth levels, and the
translation between aiohttp and ``func.HttpRequest``/``func.HttpResponse``."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from aiohttp import web

from devhost.indexing import FunctionSpec

# Route constraints the Functions host (ASP.NET routing) supports, as regular expressions.
CONSTRAINTS = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "bool": r"(?i:true|false)",
    "guid": r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}",
    "alpha": r"[A-Za-z]+",
    "double": r"-?\d+(?:\.\d+)?",
    "float": r"-?\d+(?:\.\d+)?",
    "decimal": r"-?\d+(?:\.\d+)?",
    "datetime": r"[0-9T:\-\.Z+]+",
}
MAX_REQUEST_BODY = 100 * 1024 * 1024  # the Functions host's default request size limit


class RouteError(ValueError):
    pass


@dataclass
class Route:
    spec: FunctionSpec
    template: str
    pattern: re.Pattern[str]
    methods: set[str] | None
    auth_level: str
    literal_segments: int

    def match(self, path: str) -> dict[str, str] | None:
        m = self.pattern.fullmatch(path)
        if m is None:
            return None
        return {k: v for k, v in m.groupdict().items() if v is not None}


def compile_route(spec: FunctionSpec) -> Route:
    trigger = spec.trigger
    template = (trigger.get("route") or spec.name).strip("/")
    regex = ""
    literal = 0
    for index, segment in enumerate(template.split("/")):
        sep = "/" if index else ""
        m = re.fullmatch(r"{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?(\?)?}", segment)
        if m is None:
            if "{" in segment or "}" in segment:
                raise RouteError(f"function '{spec.name}': unsupported route segment '{segment}'")
            regex += sep + re.escape(segment)
            literal += 1
            continue
        catch_all, name, constraint, optional = m.groups()
        if constraint and constraint not in CONSTRAINTS:
            raise RouteError(f"function '{spec.name}': unknown route constraint ':{constraint}'")
        body = ".+" if catch_all else CONSTRAINTS.get(constraint or "", r"[^/]+")
        group = f"(?P<{name}>{body})"
        regex += f"(?:{sep}{group})?" if optional or catch_all else sep + group
    methods = {m.upper() for m in trigger.get("methods") or []} or None
    return Route(spec, template, re.compile(regex), methods, str(trigger.get("authLevel", "FUNCTION")).upper(), literal)


def build_routes(specs: list[FunctionSpec]) -> list[Route]:
    routes = [compile_route(s) for s in specs]
    # Literal segments beat parameters, as in ASP.NET routing.
    return sorted(routes, key=lambda r: -r.literal_segments)


async def to_func_request(request: web.Request, route_params: dict[str, str]) -> func.HttpRequest:
    if request.content_length and request.content_length > MAX_REQUEST_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_REQUEST_BODY, actual_size=request.content_length)
    body = await request.read()
    return func.HttpRequest(
        method=request.method,
        url=str(request.url),
        headers=dict(request.headers),
        params=dict(request.query),
        route_params=route_params,
        body=body,
    )


def to_aiohttp_response(result: Any) -> web.Response:
    if result is None:
        return web.Response(status=204)
    if isinstance(result, func.HttpResponse):
        headers = dict(result.headers)
        ctype = headers.pop("Content-Type", None) or headers.pop("content-type", None)
        if ctype is None and result.mimetype:
            ctype = f"{result.mimetype}; charset={result.charset}" if result.charset else result.mimetype
        response = web.Response(status=result.status_code, body=result.get_body(), headers=headers)
        if ctype:
            response.headers["Content-Type"] = ctype
        return response
    if isinstance(result, (dict, list)):
        return web.json_response(result)
    return web.Response(text=str(result))


def error_response(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=json.dumps({"error": message}), content_type="application/json")
