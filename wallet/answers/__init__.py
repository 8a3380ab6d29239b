"""Refusals and requests for changes, delivered back to the requester's node.

When an IAO refuses a data-sharing request or asks for changes, the data holder's node POSTs the answer to the
requester's node at ``<origin of the request's replyTo>/requests/answers`` (:func:`send_answer`):
``{"answer": {...}, "presentation": "<vp+jwt>"}``, where the presentation is the data holder's own (no credentials),
bound to this answer exactly as a request is bound (nonce = ``request_binding("POST", url, None,
manifest=answer)``, audience = the URL's origin). The requester's node (:func:`receive`) checks the presentation and
the binding, that the answer is addressed to it (``requester``) and not a replay, and keeps it; its request pages
show it (:func:`list_answers`). Nothing is stored when anything is refused.

The answer: ``requestId`` (the data holder's reference, as it answered the request), ``requester``, ``status``
(``refused`` or ``changes requested``), ``reasons``, ``agreement`` (the request's agreement id), ``datasets``,
``decidedAt``.
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from flask import Blueprint, jsonify, request as flask_request
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, select

from verifier.binding import origin, request_binding
from verifier.results import CeadError, Problem

VERSIONS = Path(__file__).parent / "migrations" / "versions"
PATH = "/requests/answers"
STATUSES = ("refused", "changes requested")
MAX_BYTES = 64 * 1024


class RequestAnswer(SQLModel, table=True):
    __tablename__ = "wallet_request_answer"
    id: str = Field(primary_key=True)
    sender: str                       # the data holder's DID (the presentation's holder)
    request_ref: str                  # the data holder's id for the request
    status: str
    reasons: str
    body: str                         # the answer as received, JSON
    presentation_digest: str = Field(unique=True)
    received_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def answer(self) -> dict:
        return json.loads(self.body)


def migrate(engine) -> None:
    from issuer.db import migrate as _migrate
    _migrate(engine, extra_version_locations=[VERSIONS])


def answer_url(reply_to: str) -> str:
    return origin(reply_to) + PATH


def send_answer(node, wallet, row, *, verify: str | bool | None = None, timeout: float = 30.0) -> dict:
    """Deliver a decided request's refusal or request for changes to the requester's node; its receipt, or
    ``sharing.unreachable`` / ``sharing.refused`` with its reasons."""
    from ..client import post_to_node
    from ..present import build_presentation
    if row.status not in STATUSES:
        raise CeadError("sharing.invalid", f"Only a refusal or a request for changes is sent back, not {row.status}.")
    req = row.request
    answer = {"requestId": row.id, "requester": row.requester, "status": row.status, "reasons": row.reason or "",
              "agreement": (req.get("agreement") or {}).get("id"), "datasets": req.get("datasets", []),
              "decidedAt": (row.decided_at or datetime.now(timezone.utc)).astimezone(timezone.utc)
              .strftime("%Y-%m-%dT%H:%M:%SZ")}
    url = answer_url(req["replyTo"])
    vp = build_presentation(wallet.holder, wallet.key, wallet.kid, [], audience=origin(url),
                            nonce=request_binding("POST", url, None, manifest=answer))
    if verify is None:
        verify = node.network.ca_bundle or True
    return post_to_node(None, url, "sharing", "the answer", json={"answer": answer, "presentation": vp},
                        timeout=timeout, verify=verify, guard=node.fetcher())   # replyTo: the requester's choice


def _refuse(status: int, code: str, message: str, **detail: Any) -> tuple[int, dict]:
    return status, {"problems": [Problem(code, message, detail).to_dict()]}


def receive(wallet, body: bytes, url: str) -> tuple[int, dict]:
    """Check and keep one answer sent to ``url``; (HTTP status, JSON). Never raises for bad input."""
    from ..sharing import presentation_digest
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict) or set(data) != {"answer", "presentation"} or not isinstance(data["answer"], dict):
        return _refuse(400, "sharing.invalid", "The body must be a JSON object with 'answer' and 'presentation'.")
    answer, presentation = data["answer"], data["presentation"]
    if answer.get("status") not in STATUSES or not isinstance(answer.get("reasons"), str) \
            or not isinstance(answer.get("requestId"), str) or not isinstance(presentation, (str, dict)):
        return _refuse(400, "sharing.invalid", "An answer has a requestId, a status (refused or changes requested) "
                       "and reasons.")
    if answer.get("requester") != wallet.holder:
        return _refuse(403, "sharing.not_requester", "This answer is addressed to another organisation.",
                       requester=answer.get("requester"))
    result = wallet.verifier.verify_presentation(
        presentation, challenge=request_binding("POST", url, None, manifest=answer), domain=origin(url))
    if not result.verified:
        return 401, {"problems": [p.to_dict() for p in result.problems]}
    row = RequestAnswer(id=uuid.uuid4().hex[:12], sender=result.issuer, request_ref=answer["requestId"][:100],
                        status=answer["status"], reasons=answer["reasons"][:2000],
                        body=json.dumps(answer, ensure_ascii=False)[:16000],
                        presentation_digest=presentation_digest(presentation))
    try:
        with Session(wallet.engine, expire_on_commit=False) as s:
            s.add(row)
            s.commit()
    except IntegrityError:
        return _refuse(409, "sharing.duplicate", "This answer was received before (a replay).")
    return 201, {"id": row.id, "status": "received"}


def list_answers(wallet) -> list[RequestAnswer]:
    with Session(wallet.engine, expire_on_commit=False) as s:
        return list(s.exec(select(RequestAnswer).order_by(RequestAnswer.received_at.desc())))


def blueprint(wallet, *, public_url: str | None = None) -> Blueprint:
    """``POST /requests/answers`` for ``wallet`` (the requester's side)."""
    from ..inbox import read_body
    migrate(wallet.engine)
    bp = Blueprint("wallet_answers", __name__)

    @bp.post(PATH)
    def answers_endpoint():
        body = read_body(MAX_BYTES)
        if body is None:
            status, out = _refuse(413, "sharing.too_large", f"An answer is at most {MAX_BYTES} bytes.")
            return jsonify(out), status
        url = (public_url.rstrip("/") + flask_request.full_path.rstrip("?")) if public_url else flask_request.url
        status, out = receive(wallet, body, url)
        return jsonify(out), status

    return bp
