"""What deploys: every tracked top-level entry is either part of the app or excluded by an anchored
``.funcignore`` pattern, and nothing the app needs is excluded. pathspec's gitignore matching is the
oracle (.funcignore is gitignore syntax:
learn.microsoft.com/azure/developer/azure-developer-cli/service-packaging-ignore-files)."""

from __future__ import annotations

import subprocess
import sys

import pathspec

from backup_chain_cli.parameters import DEFAULT_CONFIG_FILE
from tests.structure.import_graph import REPO_ROOT, imports_of, tracked_python_files

# What the Functions host reads besides Python code: the app's entry point, host settings, the
# packages Azure installs and the chain configuration the app loads by default.
APP_FILES = ("function_app.py", "host.json", "requirements.txt", DEFAULT_CONFIG_FILE)
# What the app reads from a folder otherwise left out: the event schemas it serves (triggers/schemas.py).
APP_DATA = ("docs/events/schemas/",)
UNANCHORED_ALLOWED = ("__pycache__",)  # bytecode is never deployed, at whatever depth


def _top_level_modules() -> set[str]:
    return {path.split("/", 1)[0].removesuffix(".py") for path in tracked_python_files()}


def app_entries() -> set[str]:
    """The top-level entries the app needs: its files and every top-level module or package
    reachable from function_app.py through the repository's own imports."""
    files = tracked_python_files()
    local = _top_level_modules()
    reached, pending = set(), ["function_app"]
    while pending:
        top = pending.pop()
        if top in reached:
            continue
        reached.add(top)
        for path, source in files.items():
            if path.split("/", 1)[0].removesuffix(".py") != top:
                continue
            for _, module in imports_of(path, source):
                name = module.split(".", 1)[0]
                if name in local and name not in sys.stdlib_module_names:
                    pending.append(name)
    entries = {top + ".py" if (REPO_ROOT / f"{top}.py").is_file() else top for top in reached}
    return entries | {name.split("/", 1)[0] for name in APP_FILES}


def _rules() -> list[str]:
    lines = (REPO_ROOT / ".funcignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def _tracked_top_level() -> set[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    return {path.split("/", 1)[0] for path in listed.split()}


def test_every_pattern_is_anchored() -> None:
    assert [rule for rule in _rules() if not rule.lstrip("!").startswith("/") and rule not in UNANCHORED_ALLOWED] == []


def _tracked_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    return listed.split()


def unaccounted(rules: list[str], entries: set[str], app: set[str]) -> list[str]:
    """Top-level entries neither part of the app nor excluded by ``rules`` (but for app data)."""
    spec = pathspec.GitIgnoreSpec.from_lines(rules)
    files = _tracked_files()

    def excluded(entry: str) -> bool:
        inside = [f for f in files if f == entry or f.startswith(entry + "/")]
        return all(spec.match_file(f) or f.startswith(APP_DATA) for f in inside)

    return sorted(entry for entry in entries - app if not excluded(entry))


def test_every_top_level_entry_is_the_app_or_excluded() -> None:
    app = app_entries()
    assert {"activities", "orchestrators", "triggers", "entities", "backup_chain"} <= app  # the reach works
    assert unaccounted(_rules(), _tracked_top_level(), app) == [], "neither part of the app nor in .funcignore"


def test_an_entry_without_its_rule_is_reported() -> None:
    rules = [rule for rule in _rules() if rule != "/tools"]
    assert unaccounted(rules, _tracked_top_level(), app_entries()) == ["tools"]
    # An unanchored rule of the same name would also hide a tools/ folder inside the app.
    assert pathspec.GitIgnoreSpec.from_lines(["tools"]).match_file("activities/tools/x.py")
    assert not pathspec.GitIgnoreSpec.from_lines(["/tools"]).match_file("activities/tools/x.py")


def test_nothing_the_app_needs_is_excluded() -> None:
    spec = pathspec.GitIgnoreSpec.from_lines(_rules())
    listed = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    app = app_entries()
    excluded = [path for path in listed.split() if path.split("/", 1)[0] in app and spec.match_file(path)]
    assert excluded == []
    data = [path for path in listed.split() if path.startswith(APP_DATA)]
    assert data, f"no files under {APP_DATA}"
    assert [path for path in data if spec.match_file(path)] == []


def test_local_tooling_is_not_part_of_the_app() -> None:
    """tools/ and the local host, emulators and harness ship only if the app imports them (it must not)."""
    assert app_entries().isdisjoint(
        {"tools", "devhost", "localclock", "emulators", "harness", "demo", "bench", "tests"}
    )
