"""Request bodies of the HTTP API, validated with errors that name the field."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from backup_chain.config import describe
from backup_chain.resource_ids import ResourceIdError, VmId
from backup_chain.text import is_unicode

MAX_BODY_BYTES = 64 * 1024
MAX_DETAIL_BYTES = 16 * 1024


class RequestError(ValueError):
    def __init__(self, detail: str, field: str | None = None, status: int = 400):
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.status = status


def _small(value: Any) -> Any:
    if len(json.dumps(value, default=str)) > MAX_DETAIL_BYTES:
        raise ValueError(f"must be at most {MAX_DETAIL_BYTES} bytes of JSON")
    return value


class UpstreamReport(BaseModel):
    # strict: a JSON API takes JSON types as they are ("yes" or 1 is not a boolean).
    model_config = ConfigDict(extra="forbid", strict=True)
    status: Literal["Succeeded", "Failed"]
    detail: Any = None

    @field_validator("detail")
    @classmethod
    def _detail(cls, value: Any) -> Any:
        return _small(value)


class StartRun(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    runId: Annotated[str | None, Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")] = None
    waitForUpstream: bool = False
    upstream: UpstreamReport | None = None
    vms: Annotated[list[str] | None, Field(default=None, min_length=1, max_length=5000)] = None

    @field_validator("vms")
    @classmethod
    def _vms(cls, values: list[str] | None) -> list[str] | None:
        if values is None:
            return None
        out = []
        for index, value in enumerate(values):
            try:
                out.append(VmId.parse(value).id)
            except ResourceIdError as err:
                raise ValueError(f"vms[{index}]: {err}") from None
        return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _not_unicode(value: Any) -> str | None:
    """The field path of the first string or key in ``value`` that is no Unicode text: a lone
    surrogate (a ``\\ud800`` escape) that no UTF-8 encoder, Event Grid's included, takes
    downstream. Iterative: a body may nest as deep as the JSON parser allows."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if not is_unicode(item):
                return path
        elif isinstance(item, list):
            stack.extend((f"{path}.{i}" if path else str(i), v) for i, v in reversed(list(enumerate(item))))
        elif isinstance(item, dict):
            for key, v in reversed(list(item.items())):
                here = f"{path}.{key}" if path else key
                stack.extend([(here, v), (here, key)])
    return None


def parse_body(raw: bytes, model: type[BaseModel], *, allow_empty: bool = True) -> Any:
    if len(raw) > MAX_BODY_BYTES:
        raise RequestError(f"request body is larger than {MAX_BODY_BYTES} bytes", status=413)
    if not raw.strip():
        if not allow_empty:
            raise RequestError("a JSON body is required")
        # An empty body is an empty object: validated like one (a required field is a 400).
        raw = b"{}"
    try:
        # NaN and Infinity are not JSON (RFC 8259): stored in a run, they would make every later
        # read of it unparseable for strict clients.
        data = json.loads(raw, parse_constant=_reject_constant)
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError (bytes that are no text), NaN
        raise RequestError(f"request body is not valid JSON: {err}") from None
    except RecursionError:
        raise RequestError("request body nests JSON too deeply") from None
    if not isinstance(data, dict):
        raise RequestError("request body must be a JSON object")
    bad_text = _not_unicode(data)
    if bad_text is not None:
        raise RequestError(f"{bad_text}: not Unicode text (a lone surrogate escape such as \\ud800)", field=bad_text)
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        # a field named "" (an empty JSON key) is still a field
        field = ".".join(str(p) for p in first["loc"]) if first["loc"] else None
        raise RequestError(describe(err), field=field) from None
