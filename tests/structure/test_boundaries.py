"""The layering holds: each rule of tests/structure/import_graph.py over the repository's files,
and each rule shown to catch a forbidden import fed to the checker."""

from __future__ import annotations

import pytest

from tests.structure.import_graph import RULES, Rule, Violation, check, imports_of, tracked_python_files

# Imports the app code still has that break a rule, each to be removed by the change that moves
# what it imports. The test fails when one is gone, so this list only shrinks (it is empty now).
PENDING: set[tuple[str, str]] = set()


def test_the_repository_keeps_every_boundary() -> None:
    violations = check(tracked_python_files())
    found = {(v.path, v.target) for v in violations}
    assert [str(v) for v in violations if (v.path, v.target) not in PENDING] == []
    assert PENDING - found == set(), "a pending exception is fixed: remove it from PENDING"


# One forbidden import (or call) per rule, as a file of the layer the rule guards.
SYNTHETIC = {
    "backup_chain is pure: no app layer, no Azure SDK": [
        ("backup_chain/x.py", "from activities.clients import publisher\n"),
        ("backup_chain/x.py", "import azure.durable_functions as df\n"),
        ("backup_chain/x.py", "from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient\n"),
    ],
    "orchestrators do no I/O": [
        ("orchestrators/x.py", "import requests\n"),
        ("orchestrators/x.py", "def f():\n    import aiohttp\n"),
        ("orchestrators/x.py", "from azure.eventgrid import EventGridPublisherClient\n"),
        ("orchestrators/x.py", "from socket import create_connection\n"),
        ("orchestrators/x.py", "data = open('f').read()\n"),
    ],
    "activities do not import triggers": [
        ("activities/x.py", "from triggers.http_api import bp\n"),
        ("activities/sub/x.py", "from ...triggers import windows\n"),
    ],
    "the app imports no local tooling": [
        ("function_app.py", "from devhost.procs import start_service\n"),
        ("triggers/x.py", "import tools.audit\n"),
    ],
    "devhost knows no backups": [
        ("devhost/x.py", "from backup_chain.ids import run_instance_id\n"),
        ("devhost/x.py", "from emulators.common import make_tls\n"),
    ],
    "the emulators import neither devhost nor the app": [
        ("emulators/x.py", "from devhost.clock import Clock\n"),
        ("emulators/eventgrid/x.py", "from backup_chain import events\n"),
        ("emulators/recoveryservices/x.py", "import function_app\n"),
    ],
    "localclock is shared by devhost and the emulators and imports neither": [
        ("localclock/x.py", "from devhost import store\n"),
    ],
    "the CLI reaches the app only through its HTTP API and the pure core": [
        ("backup_chain_cli/x.py", "from triggers.http_api import ok\n"),
        ("backup_chain_cli/x.py", "from harness.chain_stack import chain_stack\n"),
    ],
    "bench does not import tests": [
        ("bench/x.py", "from tests.faults.test_fault_runs import CASES\n"),
        ("bench/x.py", "from tests import support\n"),
    ],
    "harness does not import tests": [
        ("harness/faults/x.py", "from tests.support.resource_ids import vault\n"),
    ],
}


def test_every_rule_has_a_synthetic_violation() -> None:
    assert set(SYNTHETIC) == {rule.name for rule in RULES}


@pytest.mark.parametrize(
    ("rule_name", "path", "source"),
    [(name, path, source) for name, cases in SYNTHETIC.items() for path, source in cases],
)
def test_a_forbidden_import_is_caught(rule_name: str, path: str, source: str) -> None:
    violations = check({path: source})
    assert [v.rule for v in violations] == [rule_name], violations
    assert violations[0].path == path


def test_allowed_imports_are_not_flagged() -> None:
    allowed = {
        "emulators/x.py": "from localclock.clock import Clock\n",
        "devhost/x.py": "from localclock.serving import serve\nimport azure.functions as func\n",
        "activities/x.py": "from backup_chain.ids import run_instance_id\nimport requests\n",
        "orchestrators/x.py": "from backup_chain.polling import PollPlan\nimport azure.durable_functions as df\n",
        "bench/x.py": "from harness.faults.driver import run_case\nfrom demo.stack import Stack\n",
        "tests/x.py": "from devhost.procs import start_service\nfrom backup_chain import ids\n",
        # A name that merely starts like a forbidden package is a different package.
        "backup_chain/x.py": "import azure_like\nfrom triggersome import x\n",
    }
    assert check(allowed) == []


def test_relative_and_deferred_imports_are_resolved() -> None:
    source = "from . import sibling\nfrom ..other import thing\ndef f():\n    import requests\n"
    found = [module for _, module in imports_of("pkg/sub/mod.py", source)]
    assert found == ["pkg.sub", "pkg.sub.sibling", "pkg.other", "pkg.other.thing", "requests"]


def test_a_violation_names_file_line_import_and_rule() -> None:
    rule = Rule("no json here", ("pkg",), ("json",))
    assert check({"pkg/a.py": "import os\nimport json\n"}, [rule]) == [Violation("no json here", "pkg/a.py", 2, "json")]
