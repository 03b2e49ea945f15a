"""The repository's layering as rules over each Python file's own imports (read with ``ast``, so
nothing is imported to check it). docs/design.md describes the layers; this module is what holds
them."""

from __future__ import annotations

import ast
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# What Azure runs (function_app.py and the packages it loads).
APP = (
    "function_app",
    "app_runtime",
    "telemetry",
    "activities",
    "orchestrators",
    "triggers",
    "entities",
    "backup_chain",
)
APP_LAYERS = tuple(name for name in APP if name != "backup_chain")
# Local tooling that never ships: the host, the emulators and what drives them.
LOCAL = ("devhost", "localclock", "emulators", "harness", "demo", "bench", "tests", "tools", "backup_chain_cli")
AZURE_SDK = ("azure", "msrest", "msal")
IO_MODULES = (
    "requests",
    "aiohttp",
    "httpx",
    "urllib.request",
    "http.client",
    "socket",
    "ssl",
    "subprocess",
    "sqlite3",
    "shutil",
    "azure.mgmt",
    "azure.eventgrid",
    "azure.identity",
    "azure.core",
    "azure.monitor",
)
IO_BUILTINS = ("open",)


@dataclass(frozen=True)
class Rule:
    """Files under any of ``sources`` (first path part or top-level module) may not import any of
    ``forbidden`` (a module or a package prefix) nor call any of ``forbidden_calls``."""

    name: str
    sources: tuple[str, ...]
    forbidden: tuple[str, ...]
    forbidden_calls: tuple[str, ...] = ()


RULES = (
    Rule("backup_chain is pure: no app layer, no Azure SDK", ("backup_chain",), APP_LAYERS + AZURE_SDK + LOCAL),
    Rule("orchestrators do no I/O", ("orchestrators",), IO_MODULES + LOCAL, IO_BUILTINS),
    Rule("activities do not import triggers", ("activities",), ("triggers", *LOCAL)),
    Rule("the app imports no local tooling", APP, LOCAL),
    Rule(
        "devhost knows no backups",
        ("devhost",),
        (*APP, "emulators", "harness", "demo", "bench", "tests", "tools"),
    ),
    Rule(
        "the emulators import neither devhost nor the app",
        ("emulators",),
        (*APP, "devhost", "harness", "demo", "bench", "tests", "tools"),
    ),
    Rule(
        "localclock is shared by devhost and the emulators and imports neither",
        ("localclock",),
        (*APP, "devhost", "emulators", "harness", "demo", "bench", "tests", "tools"),
    ),
    Rule(
        "the CLI reaches the app only through its HTTP API and the pure core",
        ("backup_chain_cli",),
        (*APP_LAYERS, "devhost", "localclock", "emulators", "harness", "demo", "bench", "tests", "tools"),
    ),
    Rule("bench does not import tests", ("bench",), ("tests",)),
    Rule("harness does not import tests", ("harness",), ("tests",)),
)


@dataclass(frozen=True)
class Violation:
    rule: str
    path: str
    line: int
    target: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.target} ({self.rule})"


def _module_of(path: str) -> str:
    parts = path.removesuffix(".py").split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _layer(path: str) -> str:
    return path.split("/", 1)[0].removesuffix(".py")


def imports_of(path: str, source: str) -> list[tuple[int, str]]:
    """(line, module) for every import anywhere in the file (deferred ones included); for
    ``from a import b`` both ``a`` and ``a.b`` (b may be a submodule). Relative imports are
    resolved against the file's package."""
    package = _module_of(path)
    if not path.endswith("__init__.py"):
        package = package.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename=path)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)] if package else []
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if alias.name != "*"]
    return found


def calls_of(path: str, source: str, names: Iterable[str]) -> list[tuple[int, str]]:
    """(line, name) of every call of a bare builtin in ``names`` (e.g. ``open(...)``)."""
    wanted = set(names)
    return [
        (node.lineno, node.func.id)
        for node in ast.walk(ast.parse(source, filename=path))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in wanted
    ]


def _matches(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def check(files: dict[str, str], rules: Iterable[Rule] = RULES) -> list[Violation]:
    """Every violation of ``rules`` in ``files`` (posix path relative to the root -> source)."""
    violations: list[Violation] = []
    for rule in rules:
        for path, source in sorted(files.items()):
            if _layer(path) not in rule.sources:
                continue
            seen: set[tuple[int, str]] = set()
            for line, module in imports_of(path, source):
                hit = next((p for p in rule.forbidden if _matches(module, p)), None)
                if hit is not None and (line, hit) not in seen:
                    seen.add((line, hit))
                    violations.append(Violation(rule.name, path, line, module))
            for line, name in calls_of(path, source, rule.forbidden_calls):
                violations.append(Violation(rule.name, path, line, f"{name}()"))
    return violations


def tracked_python_files(root: Path = REPO_ROOT) -> dict[str, str]:
    """The repository's ``.py`` files as git sees them: tracked, plus new ones not ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return {path: (root / path).read_text() for path in listed if (root / path).is_file()}
