"""The app's HTTP API as the CLI calls it: where (``--url`` / ``BACKUP_CHAIN_URL``), how to
authenticate (a function key in ``x-functions-key``, or an Entra ID bearer token for an app fronted
by App Service authentication), and every failure turned into one line for the operator."""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlparse

import requests

from backup_chain_cli.output import EXIT_PROBLEM, CliError

URL_ENV = "BACKUP_CHAIN_URL"
KEY_ENV = "BACKUP_CHAIN_KEY"
SCOPE_ENV = "BACKUP_CHAIN_TOKEN_SCOPE"
DEFAULT_TIMEOUT = 60.0
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("talking to the app")
    group.add_argument("--url", help=f"the app's base URL, e.g. https://myapp.azurewebsites.net (env {URL_ENV})")
    group.add_argument("--key", help=f"a function key, sent as x-functions-key (env {KEY_ENV})")
    group.add_argument(
        "--token-scope",
        help=f"get an Entra ID token for this scope with DefaultAzureCredential, for an app behind App Service "
        f"authentication, e.g. api://<client-id>/.default (env {SCOPE_ENV})",
    )
    group.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds to wait for each answer (default 60)"
    )


def segment(value: str) -> str:
    """One path segment (a chain name or run id), escaped so it cannot change the route."""
    return quote(value, safe="")


@dataclass
class ApiClient:
    url: str
    headers: dict[str, str]
    timeout: float
    refused_as: str  # what the operator gave: "the function key" or "the bearer token"

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ApiClient:
        url = (args.url or os.environ.get(URL_ENV) or "").strip().rstrip("/")
        if not url:
            raise CliError(f"no app URL: give --url or set {URL_ENV}")
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise CliError(f"--url {url!r} is not an http(s) URL, e.g. https://myapp.azurewebsites.net")
        if url.endswith("/api"):
            url = url[: -len("/api")]
        if not 0 < args.timeout < 10**7:  # refuses nan and inf too
            raise CliError("--timeout must be a positive number of seconds (under 10000000)")
        key = args.key or os.environ.get(KEY_ENV)
        scope = args.token_scope or os.environ.get(SCOPE_ENV)
        headers = {"x-functions-key": key} if key else {}
        if scope:
            # App Service authentication checks the token in front of the host, which still applies
            # each function's auth level (azure-functions-host#11394): a key may be needed as well.
            headers["Authorization"] = f"Bearer {_token(scope)}"
        if (key or scope) and parsed.scheme == "http" and (parsed.hostname or "") not in LOOPBACK:
            raise CliError(f"--url {url!r}: a key or token goes over https only (plain http is for a local devhost)")
        given = [what for what, value in (("the function key", key), ("the bearer token", scope)) if value]
        return cls(url, headers, args.timeout, " and ".join(given) or "the request without a key")

    def call(self, method: str, path: str, *, body: Any = None, params: dict[str, str] | None = None) -> Any:
        """The JSON body of a 2xx answer; anything else raises a one-line CliError."""
        target = f"{self.url}/api/{path}"
        try:
            response = requests.request(
                method,
                target,
                json=body,
                params=params,
                headers=self.headers,
                timeout=self.timeout,
                # requests would forward x-functions-key to wherever a redirect points.
                allow_redirects=False,
            )
        except requests.Timeout:
            raise CliError(f"{self.url} did not answer within {self.timeout:g} s", EXIT_PROBLEM) from None
        except requests.ConnectionError as err:
            raise CliError(f"cannot reach {self.url}: {_reason(err)}") from None
        except requests.RequestException as err:
            raise CliError(f"cannot call {target}: {err}") from None
        return _answer(response, method, path, self.refused_as)


def _token(scope: str) -> str:
    # azure-identity: DefaultAzureCredential.get_token(scope) tries its credentials in its
    # documented order (environment, workload and managed identity, Azure CLI, ...); its error lists
    # what each said, which becomes the one line here (its own log warnings would repeat it).
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import DefaultAzureCredential

    logging.getLogger("azure.identity").setLevel(logging.CRITICAL)
    try:
        return str(DefaultAzureCredential().get_token(scope).token)
    except ClientAuthenticationError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        tried = [line for line in lines if "Credential: " in line and not line.startswith("DefaultAzureCredential")]
        said = "; ".join(tried) or (lines[0] if lines else type(err).__name__)
        raise CliError(f"could not get a token for scope {scope!r}: {said}", EXIT_PROBLEM) from None


def _reason(err: requests.ConnectionError) -> str:
    text = str(err)
    for known, said in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "unknown host"),
        ("nodename nor servname", "unknown host"),
        ("CERTIFICATE_VERIFY_FAILED", "its TLS certificate is not trusted (REQUESTS_CA_BUNDLE)"),
        ("timed out", "connection timed out"),
    ):
        if known in text:
            return said
    return text.splitlines()[0][:200]


def _answer(response: requests.Response, method: str, path: str, refused_as: str) -> Any:
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if status in (401, 403):
        raise CliError(f"{refused_as} was refused (HTTP {status})", EXIT_PROBLEM)
    if 300 <= status < 400:
        where = response.headers.get("Location", "nowhere")
        raise CliError(f"{method} /api/{path} was redirected (HTTP {status}) to {where}: give the app's own URL")
    if 200 <= status < 300:
        if body is None:
            raise CliError(f"{method} /api/{path} answered HTTP {status} with a body that is not JSON", EXIT_PROBLEM)
        return body
    problem = body if isinstance(body, dict) and "detail" in body else None
    if problem is None:
        if status == 404:
            raise CliError(f"{response.url.split('?')[0]} does not exist (HTTP 404): is this the backup-chain app?")
        raise CliError(f"{method} /api/{path} answered HTTP {status}: {response.text.strip()[:200]}", EXIT_PROBLEM)
    detail, field = str(problem["detail"]), problem.get("field")
    where = f" (field {field})" if field else ""
    if status == 404:
        raise CliError(f"not found: {detail}{where}")
    if status in (400, 413):
        raise CliError(f"the app refused the request: {detail}{where}")
    raise CliError(f"the app answered HTTP {status}: {detail}{where}", EXIT_PROBLEM)
