"""What the local contracts' docs must cover, read from the code: the admin routes devhost and the
emulators register (their aiohttp ``router.add_*`` calls, and ``add_clock_routes``), and the keys
of the Recovery Services scenario and the Event Grid config (their pydantic models); and what the
READMEs document (``METHOD /admin/...`` in a section, key tables under headings naming a path)."""

from __future__ import annotations

import ast
import re
import types
import typing
from pathlib import Path

from pydantic import BaseModel

REPO_ROOT = Path(__file__).resolve().parents[2]
_VERBS = {"add_get": "GET", "add_post": "POST", "add_put": "PUT", "add_delete": "DELETE", "add_patch": "PATCH"}
_ROUTE = re.compile(r"`(GET|POST|PUT|DELETE|PATCH) (/admin/[^\s`?]*)")
_HEADING = re.compile(r"^(#{2,6}) (.*)$", re.MULTILINE)
_KEY_CELL = re.compile(r"^\| `([^`]+)` \|", re.MULTILINE)


def _constants(tree: ast.Module) -> dict[str, str]:
    return {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }


def _calls(path: Path) -> tuple[set[tuple[str, str]], bool]:
    """The (method, path) pairs one module registers, and whether it adds the clock routes."""
    tree = ast.parse(path.read_text())
    names = _constants(tree)
    routes: set[tuple[str, str]] = set()
    clock = False
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name == "add_clock_routes":
            clock = True
            continue
        args = [names.get(a.id, "") if isinstance(a, ast.Name) else getattr(a, "value", "") for a in node.args]
        if name in _VERBS and args:
            routes.add((_VERBS[name], str(args[0])))
        elif name == "add_route" and len(args) >= 2:
            routes.add((str(args[0]), str(args[1])))
    return routes, clock


def clock_routes() -> set[tuple[str, str]]:
    routes, _ = _calls(REPO_ROOT / "localclock" / "clock_http.py")
    return routes


def registered_admin_routes(package: str) -> set[tuple[str, str]]:
    """Every ``/admin/...`` route the modules of ``package`` (a folder) register."""
    found: set[tuple[str, str]] = set()
    for path in sorted((REPO_ROOT / package).rglob("*.py")):
        routes, clock = _calls(path)
        found |= routes | (clock_routes() if clock else set())
    return {(method, route) for method, route in found if route.startswith("/admin")}


def section(page: Path, heading: str) -> str:
    """The text under the heading ``heading`` (a ``##``-level or deeper line), up to the next
    heading of the same or a higher level."""
    text = page.read_text()
    for match in _HEADING.finditer(text):
        if match.group(2).strip() == heading:
            level = len(match.group(1))
            rest = text[match.end() :]
            end = next((m.start() for m in _HEADING.finditer(rest) if len(m.group(1)) <= level), len(rest))
            return rest[:end]
    raise AssertionError(f"{page.relative_to(REPO_ROOT)} has no heading {heading!r}")


def documented_routes(text: str) -> set[tuple[str, str]]:
    return {(method, route) for method, route in _ROUTE.findall(text)}


def _models_in(annotation: object) -> list[tuple[str, type[BaseModel]]]:
    """The models an annotation holds, with the path suffix leading to them (``[]`` for a list's
    entries, ``.{name}`` for a dict's values)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [("", annotation)]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return [found for arg in args for found in _models_in(arg)]
    if origin is list:
        return [("[]" + suffix, model) for suffix, model in _models_in(args[0])]
    if origin is dict:
        return [(".{name}" + suffix, model) for suffix, model in _models_in(args[1])]
    return []


def model_keys(model: type[BaseModel], path: str = "") -> dict[str, set[str]]:
    """Path of each object the model describes (``""`` the top level, ``vaults[].vms[]``, ...) →
    its keys as the file spells them (aliases)."""
    keys: dict[str, set[str]] = {path: set()}
    for name, field in model.model_fields.items():
        key = field.alias or name
        keys[path].add(key)
        for suffix, inner in _models_in(field.annotation):
            for inner_path, inner_keys in model_keys(inner, f"{path}.{key}{suffix}" if path else key + suffix).items():
                keys.setdefault(inner_path, set()).update(inner_keys)
    return keys


def documented_keys(text: str) -> dict[str, set[str]]:
    """Path → the keys listed (first column, in backticks) in the tables under each heading; a
    heading names its paths in backticks (``vaults[].vms[]``), "Top level" is the path ``""``.
    A dict's values are written ``.{operationId}`` (any name) and match the code's ``.{name}``."""
    found: dict[str, set[str]] = {}
    headings = list(_HEADING.finditer(text))
    for index, match in enumerate(headings):
        end = headings[index + 1].start() if index + 1 < len(headings) else len(text)
        body = text[match.end() : end]
        title = match.group(2).strip()
        paths = [re.sub(r"\.\{\w+\}", ".{name}", p) for p in re.findall(r"`([^`]+)`", title)]
        if title.lower() == "top level":
            paths = [""]
        for path in paths:
            found.setdefault(path, set()).update(_KEY_CELL.findall(body))
    return found


def undocumented_keys(model: type[BaseModel], text: str) -> list[str]:
    """Every key of the model missing from the table of its path, and every key a table of a
    model's path lists that the model does not have."""
    documented = documented_keys(text)
    problems = []
    for path, keys in sorted(model_keys(model).items()):
        where = path or "(top level)"
        if path not in documented:
            problems.append(f"{where}: no table of its keys")
            continue
        problems += [f"{where}.{key}: not documented" for key in sorted(keys - documented[path])]
        problems += [f"{where}.{key}: documented but not a key" for key in sorted(documented[path] - keys)]
    return problems
