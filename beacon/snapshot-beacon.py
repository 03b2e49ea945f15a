#!/usr/bin/env python3
"""Snapshot beacon: an Azure Backup VMSnapshot post-script for Linux VMs.

The VMSnapshot extension runs the post-script "immediately after" it takes the VM snapshot
(learn.microsoft.com/azure/backup/backup-azure-linux-app-consistent). This one publishes ONE
CloudEvent, ``BackupChain.Beacon.SnapshotTaken`` with the VM's resource id as its source, to the
Event Grid topic given as the first postScriptParams entry, authenticated with the VM's managed
identity (a token from IMDS). It is a hint to the backup chain app, which reads the backup job at
once instead of waiting for its next poll.

It must never delay or fail the backup: every request has a short timeout, a bounded thread join
bounds the whole run, it always exits 0 and it writes one line to syslog and stderr. No secrets on disk:
the token comes from IMDS at run time and is never written anywhere.

Python 3 standard library only (3.6+, f-strings): the Azure Linux VM agent and the VMSnapshot extension
themselves run on the VM's Python, so no package is installed for this script.

Usage (postScriptParams): snapshot-beacon.py TOPIC_ENDPOINT [IMDS_BASE [CLIENT_ID]]
  TOPIC_ENDPOINT  https://<topic>.<region>-1.eventgrid.azure.net/api/events
  IMDS_BASE       http://169.254.169.254 (default, also when ""; another value only for testing)
  CLIENT_ID       the client id of the user-assigned identity to use: IMDS refuses a token
                  request without one when the VM has several user-assigned identities and no
                  system-assigned one
"""

import json
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

EVENT_TYPE = "BackupChain.Beacon.SnapshotTaken"
IMDS_BASE = "http://169.254.169.254"
# IMDS: instance metadata api-version 2021-02-01 (compute/resourceId, text format) and the managed
# identity token endpoint (api-version 2018-02-01); both need "Metadata: true" and no proxy.
# learn.microsoft.com/azure/virtual-machines/instance-metadata-service and
# learn.microsoft.com/entra/identity/managed-identities-azure-resources/how-to-use-vm-token
RESOURCE_ID_PATH = "/metadata/instance/compute/resourceId?api-version=2021-02-01&format=text"
TOKEN_PATH = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=" + urllib.parse.quote(
    "https://eventgrid.azure.net", safe=""
)
REQUEST_TIMEOUT_SECONDS = 2.0  # per request
TOTAL_SECONDS = 5  # hard bound on the whole run (a thread join), far below the plugin's timeoutInSeconds
MAX_READ_BYTES = 64 * 1024


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """urllib follows a POST's 301/302/303 as a GET carrying every header but the content ones,
    Authorization included: refused, so the token only ever goes to the endpoint configured."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


# Never through a proxy: IMDS must be reached directly, and the topic is reached the same way.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


class BeaconError(Exception):
    """A step failed; the message says which step and why (no secret in it)."""


def _log(message):
    line = "snapshot-beacon: " + message
    try:
        import syslog

        syslog.openlog("snapshot-beacon", 0, syslog.LOG_USER)
        syslog.syslog(syslog.LOG_INFO, line)
    except Exception:
        pass  # no syslog (a container): stderr still has the line
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except Exception:
        pass


def _request(step, url, headers, body=None):
    request = urllib.request.Request(url, data=body, headers=headers, method="POST" if body is not None else "GET")
    try:
        with _OPENER.open(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:
            return response.read(MAX_READ_BYTES)
    except urllib.error.HTTPError as error:
        raise BeaconError(f"{step} answered HTTP {error.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise BeaconError(f"{step} unreachable ({reason})") from None


def vm_resource_id(imds):
    text = _request("IMDS metadata", imds + RESOURCE_ID_PATH, {"Metadata": "true"}).decode("utf-8", "replace").strip()
    lowered = text.lower()
    if not lowered.startswith("/subscriptions/") or "/providers/microsoft.compute/virtualmachines/" not in lowered:
        raise BeaconError("IMDS metadata gave no VM resource id")
    return text


def eventgrid_token(imds, client_id=""):
    path = TOKEN_PATH + ("&client_id=" + urllib.parse.quote(client_id, safe="") if client_id else "")
    raw = _request("IMDS token", imds + path, {"Metadata": "true"})
    try:
        token = json.loads(raw.decode("utf-8"))["access_token"]
    except (ValueError, KeyError, TypeError):
        raise BeaconError("IMDS token answer has no access_token") from None
    if not isinstance(token, str) or not token:
        raise BeaconError("IMDS token answer has no access_token")
    return token


def beacon_event(resource_id, now):
    """The CloudEvent (CloudEvents 1.0, structured JSON): ``source`` the VM, ``time`` the moment
    the post-script ran, i.e. right after the snapshot."""
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "type": EVENT_TYPE,
        "source": resource_id,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
    }


def publish(topic, event, token):
    # A single CloudEvent in structured mode: learn.microsoft.com/azure/event-grid/cloud-event-schema
    body = json.dumps(event).encode("utf-8")
    headers = {"Content-Type": "application/cloudevents+json; charset=utf-8", "Authorization": "Bearer " + token}
    _request("topic", topic, headers, body)


def run(argv):
    if not argv or not argv[0].startswith(("https://", "http://")):
        raise BeaconError("postScriptParams[0] must be the topic endpoint URL")
    topic = argv[0]
    if topic.startswith("http://") and urllib.parse.urlsplit(topic).netloc.rsplit(":", 1)[0] not in LOOPBACK_HOSTS:
        # The bearer token must never cross the network in clear; plain http is for loopback tests.
        raise BeaconError("postScriptParams[0] must be an https:// endpoint")
    imds = (argv[1] if len(argv) > 1 and argv[1] else IMDS_BASE).rstrip("/")
    resource_id = vm_resource_id(imds)
    token = eventgrid_token(imds, argv[2] if len(argv) > 2 else "")
    event = beacon_event(resource_id, time.time())
    publish(topic, event, token)
    return f"beacon {event['id']} sent for {resource_id}"


def _attempt(argv, outcome):
    try:
        outcome.append(run(argv))
    except BeaconError as error:
        outcome.append(f"no beacon: {error}")
    except BaseException as error:  # never fail the backup, whatever happened
        outcome.append(f"no beacon: unexpected {type(error).__name__}")


def main(argv):
    """Run the beacon in a daemon thread and wait for it at most TOTAL_SECONDS. A signal alarm
    cannot bound it: a name lookup blocks in libc's resolver, which retries its poll on EINTR, so
    the Python handler would only run once the resolver gave up (resolv.conf timeout x attempts x
    nameservers); a thread join is bounded whatever the work blocks in."""
    started = time.time()
    outcome = []  # type: list[str]
    worker = threading.Thread(target=_attempt, args=(argv, outcome), daemon=True)
    worker.start()
    worker.join(TOTAL_SECONDS)
    message = outcome[0] if outcome else f"no beacon: out of time after {TOTAL_SECONDS} s"
    _log(f"{message} ({time.time() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    finally:
        # os._exit: no wait for a worker still blocked (a daemon thread may hold the interpreter's
        # shutdown), no exception can turn into another exit code.
        os._exit(0)
