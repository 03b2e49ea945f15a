"""``./dev serve`` (= ``python -m demo.serve``): the local stack running YOUR chain configuration
against YOUR Recovery Services scenario, until Ctrl-C.

Validates both files first (the scenario with the emulator's own schema, the chain configuration
with the app's own loader: a bad file is one line naming the bad key, exit 2, nothing started);
then starts the Recovery Services and Event Grid emulators and devhost on one shared clock with
the emulators' CA trusted, and prints the URLs, keys, event logs and ready-to-paste commands.
Without ``--config``/``--scenario`` it serves the main job's embedded sample. With ``--timeline
DIR`` a downstream listener subscribes to the downstream topic and every run that ends is drawn to
``DIR/<chain>.<runId>.svg`` and ``.html`` (``demo/timeline_collect.py``). See docs/local-stack.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console

from backup_chain.config import CONFIG_JSON_SETTING, ChainConfig, ConfigError, parse_config
from backup_chain.resource_ids import VaultId, VmId
from demo import scenario as sample
from demo.args import clock_start_argument, signals_held, stop_cleanly_on_signals
from demo.listener import DownstreamListener
from demo.stack import DOWNSTREAM_LISTENER, DOWNSTREAM_TOPIC, UPSTREAM_TOPIC, Stack
from demo.timeline_collect import RunPictures
from emulators.recoveryservices.scenario import Scenario, ScenarioError, parse
from localclock.clock import iso

DEFAULT_SCALE = 10.0  # Take Snapshot (5-15 virtual minutes) in about a minute of wall time
WATCH_EVERY = 0.2  # seconds between looks at the processes and the manual clock
UPSTREAM_SUBSCRIPTION = "upstream-to-app"


class InputError(ValueError):
    """A file or option the operator gave is not usable; the message is the one line shown."""


@dataclass(frozen=True)
class Estate:
    """What to serve: the raw files (as the processes will read them) and what they mean."""

    scenario_raw: dict[str, Any]
    chains_raw: dict[str, Any]
    config: ChainConfig
    scenario: Scenario
    source: str  # where it came from, for the banner


def _read_json(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as err:
        raise InputError(f"{what} {path}: cannot read it ({err.strerror})") from None
    except UnicodeDecodeError as err:
        raise InputError(f"{what} {path}: not UTF-8 text (byte {err.start + 1})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{what} {path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from None


def load_estate(config_path: Path, scenario_path: Path) -> Estate:
    """Both files, each checked by its own consumer's rules before anything starts."""
    scenario_raw = _read_json(scenario_path, "scenario")
    if not isinstance(scenario_raw, dict):
        raise InputError(f"scenario {scenario_path}: the top level must be a JSON object")
    try:
        scenario = parse(scenario_raw)  # the emulator's strict schema, then its meaning checks
    except ScenarioError as err:
        raise InputError(f"scenario {scenario_path}: {err}") from None
    chains_raw = _read_json(config_path, "chain configuration")
    try:
        config = parse_config(chains_raw, f"chain configuration {config_path}")  # the app's own loader
    except ConfigError as err:
        raise InputError(str(err)) from None
    return Estate(scenario_raw, chains_raw, config, scenario, f"{config_path} + {scenario_path}")


def sample_estate(clock_start: datetime) -> Estate:
    scenario_raw, chains_raw = sample.scenario(clock_start), sample.chains()
    return Estate(
        scenario_raw, chains_raw, parse_config(chains_raw, "sample"), parse(scenario_raw), "the main job's sample"
    )


def unknown_vms(estate: Estate) -> list[str]:
    """Chain VMs the scenario does not hold in the chain's vault: their backups will fail (as in
    Azure for a VM not protected in that vault), which is rarely what a local try-out wants."""
    known = {
        (vault.subscription_id.lower(), vault.resource_group.lower(), vault.name.lower()): {
            (vm.resource_group.lower(), vm.name.lower()) for vm in vault.vms
        }
        for vault in estate.scenario.vaults
    }
    found = []
    for chain in estate.config.chains:
        for vault_id, vm_id in chain.vm_ids():
            vault, vm = VaultId.parse(vault_id), VmId.parse(vm_id)
            vms = known.get((vault.subscription.lower(), vault.resource_group.lower(), vault.name.lower()))
            if vms is None:
                found.append(
                    f"chain {chain.name}: vault {vault.name} (resource group {vault.resource_group}) "
                    "is not in the scenario"
                )
            elif (vm.resource_group.lower(), vm.name.lower()) not in vms:
                found.append(f"chain {chain.name}: VM {vm.name} is not in the scenario's vault {vault.name}")
    return list(dict.fromkeys(found))


def _upstream_subject(pattern: str | None) -> str:
    if pattern is None:
        return "/jobs/example"
    return pattern[:-1] + "example" if pattern.endswith("*") else pattern


def guide(stack: Stack, estate: Estate, scale: float | None, timeline_dir: Path | None = None) -> str:
    """The banner: where everything is and commands to paste, using the operator's own chain and VM."""
    url = stack.devhost.url
    key, master = stack.keys["function"], stack.keys["masterKey"]
    rs, eg = stack.services["recoveryservices"].url, stack.services["eventgrid"].url
    upstream, downstream = stack.topic(UPSTREAM_TOPIC), stack.topic(DOWNSTREAM_TOPIC)
    bundle = stack.base / "ca-bundle.pem"
    chain = estate.config.chains[0]
    vm = chain.vm_ids()[0][1]
    names = ", ".join(c.name for c in estate.config.chains)
    clock = (
        "manual: time moves only when you advance it (below)"
        if scale is None
        else f"x{scale:g}: one virtual minute every {60 / scale:g} s"
    )
    start_body: dict[str, Any] = {"runId": "r1"}
    upstream_text = ""
    if chain.upstream is not None:
        start_body["waitForUpstream"] = True
        event = [
            {
                "specversion": "1.0",
                "id": "etl-0001",
                "source": "/contoso/etl",
                "type": chain.upstream.eventType,
                "subject": _upstream_subject(chain.upstream.subject),
                "data": {"status": "Succeeded"},
            }
        ]
        upstream_text = f"""\
  # the upstream job finished: publish its event to the Event Grid emulator's upstream topic
  curl -s --cacert "$CA" -X POST "{upstream["endpoint"]}?api-version=2018-01-01" \\
       -H "aeg-sas-key: {upstream["key"]}" \\
       -H "content-type: application/cloudevents-batch+json; charset=utf-8" \\
       -d {shlex.quote(json.dumps(event))}
  #   ... or report it over HTTP instead
  curl -s -X POST "$URL/api/chains/{chain.name}/runs/r1/upstream" -H "x-functions-key: $KEY" \\
       -d '{{"status": "Succeeded"}}'
"""
    advance_text = ""
    if scale is None:
        advance_text = """\
  # the clock is manual: advance it (all three processes follow; ./dev serve nudges the emulators)
  curl -s -X POST "$URL/admin/clock/advance?seconds=300" -H "x-functions-key: $MASTER_KEY"
  curl -s "$URL/admin/clock" -H "x-functions-key: $MASTER_KEY"       # what time it is
"""
    pictures = ""
    if timeline_dir is not None:
        pictures = (
            f"  run timelines             {timeline_dir}/<chain>.<runId>.svg and .html, drawn when a run ends\n"
            f"                            (downstream listener: /admin/deliveries?subscription={DOWNSTREAM_LISTENER})\n"
        )
    return f"""\
backup chain on devhost + emulators, serving {estate.source}
clock {clock}; now {iso(stack.clock.now().replace(microsecond=0))}
chains: {names}

  app (devhost)             {url}     (admin: /admin/host/status, /admin/clock; master key)
  function key              {key}
  master key                {master}
  Recovery Services emu     {rs}     (admin: /admin/jobs, /admin/items)
  Event Grid emulator       {eg}     (admin: /admin/events?topic=..., /admin/deliveries?subscription=...)
  upstream topic            {upstream["endpoint"]}   key {upstream["key"]}
  downstream topic          {downstream["endpoint"]}   key {downstream["key"]}
  downstream event log      {eg}/admin/events?topic={DOWNSTREAM_TOPIC}   (what the app published)
  upstream event log        {eg}/admin/events?topic={UPSTREAM_TOPIC}
                            (its deliveries to the app: /admin/deliveries?subscription={UPSTREAM_SUBSCRIPTION})
  CA bundle (emulators)     {bundle}   (the app trusts it through REQUESTS_CA_BUNDLE)
  files the processes read  {stack.base / "chains.json"}, {stack.base / "scenario.json"}
  process logs              {stack.base}/devhost.log, recoveryservices.log, eventgrid.log
{pictures}
Try it (paste into another shell):

  export URL={url} KEY={key} MASTER_KEY={master} CA={bundle}
  export BACKUP_CHAIN_URL={url} BACKUP_CHAIN_KEY={key}
  backup-chain chains                      # or: python -m backup_chain_cli chains
  backup-chain runs list {chain.name}
  # start a run of chain {chain.name}
  curl -s -X POST "$URL/api/chains/{chain.name}/runs" -H "x-functions-key: $KEY" -d '{json.dumps(start_body)}'
{upstream_text}{advance_text}  # watch it: each VM's phase, job id and times
  curl -s "$URL/api/chains/{chain.name}/runs/r1" -H "x-functions-key: $KEY"
  # a run that backs up one VM; cancel it
  curl -s -X POST "$URL/api/chains/{chain.name}/runs" -H "x-functions-key: $KEY" -d '{{"runId": "r2", "vms": ["{vm}"]}}'
  curl -s -X POST "$URL/api/chains/{chain.name}/runs/r2/cancel" -H "x-functions-key: $KEY"
  # the downstream events the app published; the Recovery Services jobs
  curl -s --cacert "$CA" "{eg}/admin/events?topic={DOWNSTREAM_TOPIC}"
  curl -s --cacert "$CA" "{rs}/admin/jobs"

Ctrl-C stops everything and removes {stack.base}.
"""


class Watch:
    """Keeps the serve loop honest: a process that exits is named (with its log tail), and with a
    manual clock every advance, through whichever process, is passed on to the others (an advance
    of 0 s makes a process act on the time: due deliveries, job progress, timers)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.seen = stack.clock.timestamp() if stack.clock.mode == "manual" else None

    def dead(self) -> tuple[str, int] | None:
        for name, service in self.stack.services.items():
            code = service.process.poll()
            if code is not None:
                return name, code
        return None

    def follow_clock(self) -> None:
        if self.seen is None:
            return
        now = self.stack.clock.timestamp()
        if now != self.seen:
            self.seen = now
            for name in ("devhost", "recoveryservices", "eventgrid"):
                self.stack.admin(name, "POST", "/admin/clock/advance", params={"seconds": "0"})


def serve_forever(stack: Stack, console: Console, pictures: RunPictures | None = None) -> int:
    watch = Watch(stack)
    while True:
        died = watch.dead()
        if died is not None:
            name, code = died
            tail = stack.services[name].log_tail(30)
            console.print(f"error: {name} exited (code {code}); the end of its log:", style="red", highlight=False)
            console.print(tail or "(its log is empty)", highlight=False, markup=False)
            return 1
        watch.follow_clock()
        if pictures is not None:
            pictures.look()
        time.sleep(WATCH_EVERY)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="./dev serve", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, help="your chain configuration (JSON, docs/configuration.md)")
    p.add_argument("--scenario", type=Path, help="your Recovery Services scenario (JSON, emulators/README.md)")
    p.add_argument(
        "--clock-start",
        type=clock_start_argument,
        default=None,
        help="ISO instant with an offset the shared clock starts at, or 'now' (default: now with your files, "
        f"{iso(sample.CLOCK_START)} with the sample)",
    )
    clock = p.add_mutually_exclusive_group()
    clock.add_argument(
        "--time-scale", type=float, default=None, help=f"virtual seconds per real second (default {DEFAULT_SCALE:g})"
    )
    clock.add_argument(
        "--manual-clock", action="store_true", help="time moves only when advanced (POST /admin/clock/advance)"
    )
    p.add_argument(
        "--timeline",
        type=Path,
        metavar="DIR",
        help="draw every run that ends to DIR/<chain>.<runId>.svg and .html (created if missing)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if (args.config is None) != (args.scenario is None):
        p.error("give both --config and --scenario (or neither, for the embedded sample)")
    if args.time_scale is not None and not args.time_scale > 0:
        p.error("--time-scale must be > 0")
    if args.timeline is not None and args.timeline.exists() and not args.timeline.is_dir():
        p.error(f"--timeline {args.timeline}: exists and is not a directory")
    scale = None if args.manual_clock else float(args.time_scale or DEFAULT_SCALE)
    console = Console(soft_wrap=True)
    try:
        if args.config is not None:
            estate = load_estate(args.config, args.scenario)
            start = args.clock_start or datetime.now(timezone.utc).replace(microsecond=0)
        else:
            start = args.clock_start or sample.CLOCK_START
            estate = sample_estate(start)
    except InputError as err:
        print(f"./dev serve: {err}", file=sys.stderr)
        return 2
    for warning in unknown_vms(estate):
        console.print(f"warning: {warning}: its backups will fail", style="yellow", highlight=False, markup=False)
    if os.environ.pop(CONFIG_JSON_SETTING, None) is not None:
        # devhost inherits this shell's environment; with both settings the app refuses to load.
        console.print(
            f"note: {CONFIG_JSON_SETTING} from your environment is not passed on: the app runs the served one",
            highlight=False,
        )
    if args.timeline is not None:
        try:
            args.timeline.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            print(f"./dev serve: --timeline {args.timeline}: cannot create it ({err.strerror})", file=sys.stderr)
            return 2
    stop_cleanly_on_signals()
    stack: Stack | None = None
    listener = DownstreamListener().start() if args.timeline is not None else None
    code = 1
    with tempfile.TemporaryDirectory(prefix="backup-chain-serve-") as tmp:
        try:
            clock_text = "manual clock" if scale is None else f"clock x{scale:g}"
            console.print(
                f"starting Recovery Services + Event Grid emulators and devhost ({clock_text} from {iso(start)}) ...",
                highlight=False,
            )
            stack = Stack.start(
                Path(tmp),
                estate.scenario_raw,
                estate.chains_raw,
                time_scale=scale,
                clock_start=start,
                downstream_webhook=listener.url if listener is not None else None,
            )
            console.print(guide(stack, estate, scale, args.timeline), highlight=False, markup=False)
            pictures = None
            if args.timeline is not None:
                chains = [chain.name for chain in estate.config.chains]
                pictures = RunPictures(
                    stack, chains, args.timeline, lambda line: console.print(line, highlight=False, markup=False)
                )
            code = serve_forever(stack, console, pictures)
        except KeyboardInterrupt:
            console.print("stopping the stack", highlight=False)
            code = 0
        except Exception as err:
            console.print(f"error: {type(err).__name__}: {err}", style="red", highlight=False, markup=False)
        finally:
            with signals_held():  # a second Ctrl-C or SIGTERM must not skip the clean-up
                if stack is not None:
                    stack.stop()
                if listener is not None:
                    listener.stop()
    return code


if __name__ == "__main__":
    sys.exit(main())
