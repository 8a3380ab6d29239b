"""What the payload itself carries, measured by the gateway from the bytes it holds: its columns and its rows.

A manifest's ``columns`` and ``rowCount`` are statements by the party being checked (a push's sender, a pull's
requester). The transfer stage compares those statements with the approval; a check of a stated figure is not a
check, so the payload the gateway holds is measured too, and it is what decides:

- a push's table (the request body), when the transfer is decided (``check_measured``, an approval stage);
- a pull's table (the response), when the middleware or the checking proxy checks it on the way out
  (``response_problems``, called by ``protocol.check_response``). A pull under a row ceiling whose response the
  gateway will not see (nginx ``auth_request``, Envoy ``ext_authz``) is refused when decided
  (``transfer.rows_uncounted``): its rows could only be taken from the manifest, the requester's word.

Its columns must be among the approval's data items and the manifest's ``columns``
(``transfer.column_not_approved``); its rows, under an approval with ``maxRowsPerTransfer``, at most that many
(``transfer.volume_exceeded``). A payload the gateway cannot read as a table (UTF-8 CSV with a header row, or JSON
records: an array of flat objects, or one under ``rows``/``data``/``items``, or JSON lines) cannot be measured and
is refused (``transfer.payload_unreadable``). Under a ``threshold`` protocol the protocol stage reads the same table
and reports its columns and unreadability itself (``protocol.column_not_approved``, ``protocol.payload_unparseable``),
so only the row ceiling is added here.
"""
from __future__ import annotations

import json

from schemas import models

from ..attestation import needs_attestation
from ..disclosure import read_table
from ..results import Problem
from .context import Attempt
from .limits import pushed_table_too_large

RECORD_KEYS = ("rows", "data", "items")   # as verifier.receipts.count_rows reads a JSON table


def _records(records: list) -> tuple[list[str], int]:
    columns: dict[str, None] = {}
    for n, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise ValueError(f"record {n} is not a JSON object")
        for key, value in record.items():
            if isinstance(value, (dict, list)):
                raise ValueError(f"record {n}, field {str(key)[:40]!r}, holds a nested value (columns are "
                                 "checked on flat records)")
            columns[key] = None
    return list(columns), len(records)


def shape(payload: bytes, content_type: str = "") -> tuple[list[str], int]:
    """The columns and the number of rows of a table payload, read from its bytes; ValueError naming what is
    wrong when it is not a table that can be read (a JSON array of flat objects, or one under ``rows``, ``data`` or
    ``items``; JSON lines; else a strict UTF-8 CSV with a header row)."""
    kind = content_type.partition(";")[0].strip().lower()
    try:
        text = payload.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError("the payload is not UTF-8 text") from None
    if kind.endswith("jsonl") or kind.endswith("x-ndjson"):
        try:
            return _records([json.loads(line) for line in text.splitlines() if line.strip()])
        except json.JSONDecodeError:
            raise ValueError("a line of the JSON lines payload is not JSON") from None
    if "json" in kind or text.lstrip()[:1] in ("[", "{"):
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            raise ValueError("the payload is not valid JSON") from None
        if isinstance(data, dict):
            data = next((data[k] for k in RECORD_KEYS if isinstance(data.get(k), list)), None)
        if not isinstance(data, list):
            raise ValueError("the JSON payload is not an array of records (nor an object holding one under "
                             f"{', '.join(RECORD_KEYS)})")
        return _records(data)
    table = read_table(payload)
    return table.header, len(table.rows)


def payload_problems(model: models.DataSharingApproval, manifest: dict | None, payload: bytes, *,
                     content_type: str = "", where: str = "The table sent") -> list[Problem]:
    """The payload's own columns and rows against the approval (and its columns against the manifest's). The
    output of a computation with a run attestation (PSI, secure aggregation) is not a table of the data items: it is
    checked byte for byte against the attestation its compute parties co-signed (``verifier.attestation``)."""
    if needs_attestation(model.privacy_protocol):
        return []
    threshold = any(isinstance(p, models.Threshold) for p in model.privacy_protocol)
    try:
        columns, rows = shape(payload, content_type)
    except ValueError as exc:
        if threshold:
            return []   # the protocol stage reads it and reports protocol.payload_unparseable
        return [Problem("transfer.payload_unreadable", f"{where} cannot be read as a table ({exc}), so its columns "
                        "and rows cannot be counted against the approval. Send a UTF-8 CSV with a header row, or "
                        "JSON records.", {"reason": str(exc)[:200]})]
    problems = []
    if not threshold:
        declared = (manifest or {}).get("columns")
        for allowed, source in ((model.data_items, "the approval's data items"),
                                (declared if isinstance(declared, list) else None, "the manifest's columns")):
            extra = [c[:80] for c in columns if allowed is not None and c not in allowed]
            if extra:
                problems.append(Problem("transfer.column_not_approved", f"{where} has columns {extra[:20]} not "
                                        f"among {source} (counted by the gateway from the payload).",
                                        {"offending": extra[:50], "measured": True}))
    limit = model.max_rows_per_transfer
    if limit is not None and rows > limit:
        problems.append(Problem("transfer.volume_exceeded", f"{where} has {rows} rows (counted by the gateway); the "
                                f"approval allows at most {limit} per transfer.",
                                {"rows": rows, "limit": limit, "measured": True}))
    return problems


def check_measured(attempt: Attempt) -> list[Problem]:
    """Stage: a push's table, measured (a pull's is measured in its response, ``response_problems``). A pull under
    a row ceiling whose response will not be checked (nginx ``auth_request``, Envoy ``ext_authz``, a bare
    ``decide``) would be held only to the rows the requester states, so it is denied (``transfer.rows_uncounted``).
    An endpoint whose operator declares that its answer carries no records (``carries_no_rows``: the middleware
    with ``check_response_payload=False``, such as a provider's release listing and event stream) has no rows to
    count: the declaration is the data owner's, about its own endpoint, never the requester's."""
    request = attempt.ctx.request
    if not request.is_push:
        return [] if request.response_checked or request.carries_no_rows else rows_uncounted(attempt.model)
    if not request.body or pushed_table_too_large(attempt):
        return []   # nothing sent, or refused unread by the limits stage
    return payload_problems(attempt.model, request.manifest, bytes(request.body))


def rows_uncounted(model: models.DataSharingApproval) -> list[Problem]:
    """A pull whose response the gateway will not see, under an approval that limits rows per transfer: the rows
    sent could not be counted, and the manifest's ``rowCount`` is the requester's word, so it is refused."""
    limit = model.max_rows_per_transfer
    if limit is None:
        return []
    rows = "1 row" if limit == 1 else f"{limit} rows"
    return [Problem("transfer.rows_uncounted", f"The approval allows at most {rows} per transfer, and this "
                    "pull's response does not pass through the gateway (nginx auth_request, Envoy ext_authz, or an "
                    "endpoint whose response is not checked), so the rows sent cannot be counted; the manifest's "
                    "rowCount is only what the requester states. Route the endpoint through the checking proxy "
                    "(cead verifier serve --upstream, /proxy/...) or the WSGI middleware, which count the rows of "
                    "the response before it leaves.", {"limit": limit})]


def response_needed(model: models.DataSharingApproval) -> bool:
    """Whether a pull's response must be measured on the way out: the approval limits rows per transfer."""
    return model.max_rows_per_transfer is not None


def response_problems(model: models.DataSharingApproval, manifest: dict | None, body: bytes,
                      content_type: str = "") -> list[Problem]:
    """A pull's response, measured as a push's table is (``payload_problems``)."""
    return payload_problems(model, manifest, body, content_type=content_type, where="The response")
