"""Every orchestration instance id and entity key the app uses, built here and nowhere else.

Ids are deterministic, so a duplicate delivery (an Event Grid redelivery, a second timer tick, a
retried HTTP call) lands on the instance that already exists and changes nothing; the prefixes let
a query find every instance of one kind (docs/design.md describes the flows that use them).

======================  ==========================================  =========================
instance / entity       id or key                                   built by
======================  ==========================================  =========================
chain run               ``chain:{chain}:{runId}``                   ``chain_instance_id``
chain scheduler         ``scheduler:{chain}``                       ``scheduler_instance_id``
retry of a run          ``chain:{chain}:{runId}-r{n}``              ``retry_run_id``
pause / resume / skip   ``control:{chain}:{action}-{label}``        ``control_instance_id``
``chain_control``       ``{chain}``                                 ``chain_control_key``
VM backup               ``vm:{chain}:{runId}:{vmHash}``             ``vm_instance_id``
VM batch (large runs)   ``vm:{chain}:{runId}:batch{nnn}``           ``vm_batch_instance_id``
job watcher             ``{VM backup id}:{label}``                  ``watcher_instance_id``
vault job poller        ``poller:{vaultHash}``                      ``poller_instance_id``
GC scheduler            ``gc:scheduler``                            ``GC_SCHEDULER_ID``
GC check / window       ``gc:{check|window}:{due, %Y%m%dT%H%MZ}``   ``gc_due_instance_id``
GC run started by hand  ``gc:{check|window}:manual-{now}``          ``gc_manual_instance_id``
lease reclaim           ``reclaim:{vmHash}:{holderHash}``           ``reclaim_instance_id``
event deliverer         ``deliver:{outboxKey}``                     ``deliverer_instance_id``
``job_watch`` entity    ``{vaultHash}``                             ``job_watch_key``
``protection_lease``    ``{vmHash}``                                ``protection_lease_key``
run's outbox            ``{chain}:{runId}`` (GC runs: chain ``-``)  ``outbox_run_key``
``delivery_outbox``     ``{outboxKey}`` (hash of the run's outbox)  ``outbox_entity_key``
``delivery_index``      ``all``                                     ``DELIVERY_INDEX_KEY``
======================  ==========================================  =========================

``{chain}`` is the chain name in lower case; ``{vmHash}`` / ``{vaultHash}`` are ``resource_hash``
of the Azure resource id. Cancelling a run terminates everything under ``vm_run_prefix`` (its VM
backups, batches and watchers), never another run's: the prefix ends with ``:``.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")
# A chain name as the configuration allows it (backup_chain/config.py Chain.name).
CHAIN_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"
_CHAIN_NAME = re.compile(CHAIN_NAME_PATTERN)
GC_SCHEDULER_ID = "gc:scheduler"
DELIVERY_INDEX_KEY = "all"
_BATCH = "batch"


def resource_hash(resource_id: str) -> str:
    """A short, case-insensitive key for an Azure resource id (ids are case-insensitive)."""
    return hashlib.sha256(resource_id.lower().encode()).hexdigest()[:16]


def vm_hash(vm_id: str) -> str:
    return resource_hash(vm_id)


# Chain runs and their VM backups.


def chain_prefix(chain: str) -> str:
    return f"chain:{chain.lower()}:"


def chain_instance_id(chain: str, run_id: str) -> str:
    return chain_prefix(chain) + run_id


def run_id_of(chain_instance: str) -> str:
    """The run id back from a chain run's instance id (run ids may not contain ``:``)."""
    return chain_instance.split(":", 2)[-1]


def scheduler_instance_id(chain: str) -> str:
    """The chain's window scheduler (a singleton per chain with a ``window``)."""
    return f"scheduler:{chain.lower()}"


def vm_run_prefix(chain: str, run_id: str) -> str:
    """Every VM backup, VM batch and job watcher of one run, and nothing of any other run."""
    # The chain name keeps runs of two chains with the same run id (e.g. one window) apart.
    return f"vm:{chain.lower()}:{run_id}:"


def vm_instance_id(run_id: str, chain: str, vm_id: str) -> str:
    return vm_run_prefix(chain, run_id) + vm_hash(vm_id)


def batch_label(n: int) -> str:
    """The key of a large run's n-th VM batch among the run's results."""
    return f"{_BATCH}{n:03d}"


def vm_batch_instance_id(chain: str, run_id: str, n: int) -> str:
    return vm_run_prefix(chain, run_id) + batch_label(n)


def is_vm_batch(instance_id: str) -> bool:
    return instance_id.rsplit(":", 1)[-1].startswith(_BATCH)


def watcher_instance_id(owner: str, label: str) -> str:
    """A VM backup's job watch (a ``watch_job`` sub-orchestration, or its key on the vault's
    shared board): under the owner's id, so cancelling the run finds it."""
    return f"{owner}:{label}"


def valid_run_id(run_id: str) -> bool:
    # fullmatch: ``$`` would also accept a trailing newline, which the API's body pattern rejects.
    return isinstance(run_id, str) and _RUN_ID.fullmatch(run_id) is not None


def valid_chain_name(name: str) -> bool:
    return isinstance(name, str) and _CHAIN_NAME.fullmatch(name) is not None


def run_id_for_event(event_id: str) -> str:
    """A run started by an upstream event is named after the event (Event Grid redelivers with the
    same id), so a redelivery starts nothing new."""
    return "ev-" + hashlib.sha256(event_id.encode()).hexdigest()[:24]


def run_id_for_window(when: datetime) -> str:
    return "w-" + when.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


_RETRY_SUFFIX = re.compile(r"^(?P<base>.+)-r(?P<n>[1-9][0-9]{0,5})$")


def retry_run_id(run_id: str) -> str | None:
    """The run id of the retry of ``run_id``: ``{runId}-r1``, and a retry of ``x-r{n}`` is
    ``x-r{n+1}``, so retrying one run twice lands on the same retry. None when that id would be
    longer than a run id may be."""
    found = _RETRY_SUFFIX.match(run_id)
    retry = f"{found['base']}-r{int(found['n']) + 1}" if found else f"{run_id}-r1"
    return retry if valid_run_id(retry) else None


# Pausing a chain.


def chain_control_key(chain: str) -> str:
    """The chain's ``chain_control`` entity (its pause state); chain names are case-insensitive."""
    return chain.lower()


def control_instance_id(chain: str, action: str, label: str) -> str:
    """An orchestration that records a pause or resume (``label``: the request's stamp) or tells
    downstream a paused chain skipped a run (``label``: the run id it would have had, so a
    redelivered upstream event or a replayed window tells it once)."""
    return f"control:{chain.lower()}:{action}-{label}"


# Job polling.


def poller_instance_id(vault_id: str) -> str:
    """The vault's job poller (a singleton per vault)."""
    return f"poller:{resource_hash(vault_id)}"


def job_watch_key(vault_id: str) -> str:
    """The vault's ``job_watch`` board."""
    return resource_hash(vault_id)


# GC enforcement.


def gc_prefix(kind: str) -> str:
    """Every GC ``check`` or ``window`` instance."""
    return f"gc:{kind}:"


def _gc_instance_id(kind: str, label: str) -> str:
    return gc_prefix(kind) + label


def gc_due_instance_id(kind: str, due: datetime) -> str:
    """The scheduled GC run due at ``due`` (one per due time, whoever starts it)."""
    return _gc_instance_id(kind, due.strftime("%Y%m%dT%H%MZ"))


def gc_manual_instance_id(kind: str, now: datetime) -> str:
    """A GC run started by hand; the wall clock only makes the id unique."""
    return _gc_instance_id(kind, "manual-" + now.strftime("%Y%m%dT%H%M%S%fZ"))


def protection_lease_key(vm_id: str) -> str:
    """The protected item's ``protection_lease`` entity."""
    return vm_hash(vm_id)


def reclaim_instance_id(vm_id: str, holder: str) -> str:
    """Reclaiming ``vm_id``'s lease from a ``holder`` that is gone (one per item and holder)."""
    return f"reclaim:{vm_hash(vm_id)}:{vm_hash(holder)}"


# Downstream event delivery.


def outbox_run_key(chain: str, run_id: str) -> str:
    """The run an outbox belongs to (GC runs have chain ``-``)."""
    return f"{chain.lower()}:{run_id}"


def outbox_entity_key(run_key: str) -> str:
    """Entity and instance ids stay short and safe whatever the chain and run names are."""
    return hashlib.sha256(run_key.encode()).hexdigest()[:32]


def deliverer_instance_id(run_key: str) -> str:
    return f"deliver:{outbox_entity_key(run_key)}"
