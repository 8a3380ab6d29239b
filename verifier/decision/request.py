"""What a decision is about and what it answers: ``TransferRequest`` (the HTTP request a presentation accompanies)
and ``Decision`` (allow or deny, every reason, what was relied on, the receipt)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from schemas.values import as_list

from ..binding import manifest_digest, origin, request_binding
from ..keys import b64url_decode
from ..results import CeadError, Problem
from .limits import MAX_COLUMNS

PUSH_METHODS = frozenset({"POST", "PUT", "PATCH"})   # methods whose body is data sent, unless the gateway says


def is_presentation(document: dict | str) -> bool:
    """True for a VP (JSON with type VerifiablePresentation, or a JWT whose header says vp+jwt)."""
    if isinstance(document, dict):
        return "VerifiablePresentation" in as_list(document.get("type"))
    try:
        header = json.loads(b64url_decode(document.split(".")[0]))
    except (ValueError, IndexError, CeadError, AttributeError):
        return False
    return isinstance(header, dict) and header.get("typ") == "vp+jwt"


@dataclass
class TransferRequest:
    """The request a presentation accompanies. ``url`` is the full URL the client used; ``dataset`` (optional)
    is the dataset IRI the endpoint serves, as the gateway knows it (authoritative over the manifest)."""

    method: str
    url: str
    body: bytes | None = None
    manifest: dict | None = None
    dataset: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    time: datetime | None = None
    response_checked: bool = False   # the payload travels in the response and will be checked there (middleware)
    carries_no_rows: bool = False    # the gateway's operator declares the answer carries no records (a listing of
    #                                  releases, an event stream): no rows to count against a row ceiling
    push: bool | None = None         # the table travels in the request body (None: a POST, PUT or PATCH)
    receipt_batch: bool = False      # the client reads batched receipts (Cead-Receipt-Forms: batch)

    @property
    def is_push(self) -> bool:
        """Whether the request body is the table: never because the client chose to send a body, only because
        the gateway says so (``push``) or the method is one that sends data (POST, PUT, PATCH)."""
        return self.push if self.push is not None else self.method.upper() in PUSH_METHODS

    def __post_init__(self) -> None:
        if not isinstance(self.method, str) or not self.method.isalpha():
            raise CeadError("request.invalid", f"Not an HTTP method: {self.method!r}")
        self.method = self.method.upper()
        origin(self.url)  # raises request.url_invalid
        if self.body is not None and not isinstance(self.body, (bytes, bytearray)):
            raise CeadError("request.invalid", "The request body must be bytes.")
        if self.manifest is not None and not isinstance(self.manifest, dict):
            raise CeadError("manifest.invalid", "The transfer manifest must be a JSON object.")
        columns = (self.manifest or {}).get("columns")
        if isinstance(columns, list) and len(columns) > MAX_COLUMNS:   # bounded before any stage reads them
            raise CeadError("transfer.too_many_columns", f"The manifest lists {len(columns)} columns; at most "
                            f"{MAX_COLUMNS} are read.", columns=len(columns), limit=MAX_COLUMNS)

    @property
    def binding(self) -> str:
        """The request binding (``verifier.binding.request_binding``), computed once per request: the decision and
        its receipt both need it. Recomputed if the method, URL, body or manifest object is replaced."""
        return self._bound()[1]

    @property
    def manifest_sha256(self) -> str | None:
        """SHA-256 hex of the manifest's JCS (None without one), computed once with the binding (the receipt
        records it)."""
        return self._bound()[2] or None

    def _bound(self) -> tuple:
        body = self.body
        # immutable bytes are keyed by the object itself (held in the key, so its id cannot be reused): a large
        # push is not copied and compared on every access; anything mutable is copied and compared
        held = body if isinstance(body, bytes) or not body else bytes(body)
        key = (self.method, self.url, id(held) if isinstance(body, bytes) else held, held, id(self.manifest))
        memo = self.__dict__.get("_binding")
        if memo is None or memo[0][:3] != key[:3] or memo[0][4] != key[4]:
            digest = manifest_digest(self.manifest)
            memo = (key, request_binding(self.method, self.url, held or None, manifest_sha256=digest), digest)
            self.__dict__["_binding"] = memo
        return memo

    @property
    def origin(self) -> str:
        memo = self.__dict__.get("_origin")   # (url, origin): recomputed if the URL is replaced
        if memo is None or memo[0] != self.url:
            memo = self.__dict__["_origin"] = (self.url, origin(self.url))
        return memo[1]


@dataclass
class Decision:
    allowed: bool
    reasons: list[Problem]
    relied_on: list[str] = field(default_factory=list)   # "<credential id> <sha256 digest>"
    receipt: str | None = None
    holder: str | None = None
    approval_id: str | None = None
    method: str | None = None
    url: str | None = None
    decided_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    approval: Any = field(default=None, repr=False, compare=False)   # the DataSharingApproval model relied on
    manifest: dict | None = field(default=None, repr=False, compare=False)
    output_receipt: str | None = None   # signed by the gateway when an outgoing payload passed its checks
    evidence: dict = field(default_factory=dict, repr=False, compare=False)   # for the receipt (verifier.receipts)
    dataset: str | None = field(default=None, repr=False, compare=False)   # the transfer's (gateway's or manifest's)
    ledger_dataset: str | None = field(default=None, repr=False, compare=False)   # its account in the owner's ledger

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "allowed": self.allowed,
            "decision": "allow" if self.allowed else "deny",
            "reasons": [p.to_dict() for p in self.reasons],
            "reliedOn": list(self.relied_on),
            "decidedAt": self.decided_at.isoformat().replace("+00:00", "Z"),
        }
        for key, value in (("holder", self.holder), ("approval", self.approval_id), ("method", self.method),
                           ("url", self.url), ("receipt", self.receipt), ("outputReceipt", self.output_receipt)):
            if value is not None:
                out[key] = value
        return out
