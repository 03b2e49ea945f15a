"""Admin API for membership tests (emulators/README.md): add, retag or remove a VM as Resource Graph
lists it, protect or unprotect it in a vault, and throttle or page Resource Graph's answers."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from aiohttp import web

from emulators.recoveryservices import shapes
from emulators.recoveryservices.resource_graph import MAX_TOP
from emulators.recoveryservices.runtime import Runtime
from emulators.recoveryservices.scenario import MachineSpec, ScenarioError, vm_spec

_VM_ID = re.compile(
    r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Compute/virtualMachines/(?P<name>[^/]+)",
    re.IGNORECASE,
)


class AdminError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status

    def response(self) -> web.Response:
        code = {400: "BadRequest", 404: "NotFound", 409: "Conflict"}.get(self.status, "Error")
        return web.json_response({"error": {"code": code, "message": str(self)}}, status=self.status)


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise AdminError(400, "invalid JSON") from None
    if not isinstance(body, dict):
        raise AdminError(400, "the body must be a JSON object")
    return body


def _vm_id(body: dict[str, Any]) -> re.Match[str]:
    found = _VM_ID.fullmatch(str(body.get("id") or ""))
    if found is None:
        raise AdminError(
            400,
            "id: a VM resource id "
            "/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Compute/virtualMachines/<name>",
        )
    return found


def _tags(body: dict[str, Any]) -> tuple[tuple[str, str], ...] | None:
    tags = body.get("tags")
    if tags is None:
        return None
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise AdminError(400, "tags: an object of tag name → string value")
    return tuple(sorted(tags.items()))


def add_vm_routes(app: web.Application, rt: Runtime) -> None:
    def machine_json(vm: MachineSpec) -> dict[str, Any]:
        vaults = [i.vault.id for i in rt.engine.items.values() if shapes.vm_id(i).lower() == vm.id.lower()]
        return {"id": vm.id, "location": vm.location, "tags": dict(vm.tags), "protectedIn": vaults}

    def handled(fn: Any) -> Any:
        async def run(request: web.Request) -> web.Response:
            try:
                return await fn(request)
            except AdminError as err:
                return err.response()

        return run

    async def list_vms(request: web.Request) -> web.Response:
        return web.json_response([machine_json(vm) for vm in rt.engine.machines.values()])

    async def put_vm(request: web.Request) -> web.Response:
        """Add a VM, or change its tags (``tags`` replaces them all) or location."""
        body = await _body(request)
        found = _vm_id(body)
        key = found.group(0).lower()
        current = rt.engine.machines.get(key)
        tags = _tags(body)
        vm = MachineSpec(
            found["sub"],
            found["rg"],
            found["name"],
            str(body.get("location") or (current.location if current else "japaneast")),
            tags if tags is not None else (current.tags if current else ()),
        )
        rt.engine.machines[key] = vm
        return web.json_response(machine_json(vm), status=200 if current else 201)

    async def delete_vm(request: web.Request) -> web.Response:
        """The VM is deleted: Resource Graph no longer lists it (vault items stay, as in Azure)."""
        found = _vm_id(await _body(request))
        if rt.engine.machines.pop(found.group(0).lower(), None) is None:
            raise AdminError(404, f"no VM {found.group(0)}")
        return web.json_response({"deleted": found.group(0)})

    def _vault_and_vm(body: dict[str, Any]) -> tuple[Any, re.Match[str]]:
        found = _vm_id(body)
        vault = rt.engine.vaults.get(str(body.get("vaultId") or "").lower())
        if vault is None:
            raise AdminError(404, f"vaultId: no vault {body.get('vaultId')!r}")
        return vault, found

    async def protect(request: web.Request) -> web.Response:
        """Enable backup of a VM in a vault under ``policy`` (a protected item, as the portal makes)."""
        body = await _body(request)
        vault, found = _vault_and_vm(body)
        if found.group(0).lower() not in rt.engine.machines:
            raise AdminError(404, f"no VM {found.group(0)}; add it with PUT /admin/vms first")
        policy = body.get("policy")
        if not isinstance(policy, str) or policy.lower() not in vault.policies:
            raise AdminError(400, f"policy: {policy!r} is not a policy of vault {vault.id}")
        name = f"vm;iaasvmcontainerv2;{found['rg'].lower()};{found['name'].lower()}"
        if (vault.id.lower(), name) in rt.engine.items:
            raise AdminError(409, f"{found.group(0)} is already protected in {vault.id}")
        machine = rt.engine.machines[found.group(0).lower()]
        try:
            spec = vm_spec(
                {"name": found["name"], "resourceGroup": found["rg"], "policy": vault.policies[policy.lower()].name},
                vault.spec.resource_group,
            )
        except ScenarioError as err:
            raise AdminError(400, str(err)) from None
        item = rt.engine.add_item(vault, dataclasses.replace(spec, tags=machine.tags), rt.settle())
        return web.json_response({"protected": found.group(0), "vaultId": vault.id, "item": item.name}, status=201)

    async def unprotect(request: web.Request) -> web.Response:
        """Stop protection and delete its data: the vault lists no item for the VM any more."""
        body = await _body(request)
        vault, found = _vault_and_vm(body)
        name = f"vm;iaasvmcontainerv2;{found['rg'].lower()};{found['name'].lower()}"
        item = rt.engine.items.get((vault.id.lower(), name))
        if item is None:
            raise AdminError(404, f"{found.group(0)} is not protected in {vault.id}")
        rt.engine.remove_item(item)
        return web.json_response({"unprotected": found.group(0), "vaultId": vault.id})

    async def get_graph(request: web.Request) -> web.Response:
        graph = rt.graph
        return web.json_response(
            {"queries": graph.queries, "throttleNext": graph.throttle_next, "maxPageSize": graph.page_size}
        )

    async def set_graph(request: web.Request) -> web.Response:
        """``throttleNext``: answer that many next queries 429 (quota headers saying
        ``resetsAfterSeconds``); ``maxPageSize``: rows per page at most (null: $top)."""
        body = await _body(request)
        graph = rt.graph
        if "throttleNext" in body:
            if not isinstance(body["throttleNext"], int) or body["throttleNext"] < 0:
                raise AdminError(400, "throttleNext: a count >= 0")
            graph.throttle_next = body["throttleNext"]
        if "resetsAfterSeconds" in body:
            if not isinstance(body["resetsAfterSeconds"], int | float) or not 0 < body["resetsAfterSeconds"] <= 300:
                raise AdminError(400, "resetsAfterSeconds: 0 < seconds <= 300")
            graph.throttle_resets_after = float(body["resetsAfterSeconds"])
        if "maxPageSize" in body:
            size = body["maxPageSize"]
            if size is not None and (not isinstance(size, int) or not 1 <= size <= MAX_TOP):
                raise AdminError(400, f"maxPageSize: 1..{MAX_TOP} or null")
            graph.page_size = size
        return await get_graph(request)

    app.router.add_get("/admin/vms", handled(list_vms))
    app.router.add_put("/admin/vms", handled(put_vm))
    app.router.add_delete("/admin/vms", handled(delete_vm))
    app.router.add_post("/admin/vms/protect", handled(protect))
    app.router.add_post("/admin/vms/unprotect", handled(unprotect))
    app.router.add_get("/admin/resource-graph", handled(get_graph))
    app.router.add_put("/admin/resource-graph", handled(set_graph))
