"""The node's HTTP inbox, where other organisations' issuers deliver credentials.

``POST /inbox`` takes a presentation signed by the delivering issuer (``application/vp+jwt``, or a Data Integrity
presentation as ``application/vp+ld+json``/``application/json``) whose holder is the sender, bound to this inbox
by the wire contract (nonce/challenge = ``request_binding("POST", inbox URL)``, audience/domain = the inbox's
origin). The presentation is verified; every credential in it must be issued by the sender and be about this
node (its subject or a named party such as a recipient); each is then verified again and stored by the wallet. Answers ``201 {"stored": [...]}`` or an error with
``{"problems": [...]}``.
"""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from verifier.binding import origin, request_binding
from schemas.values import as_list
from verifier.credential import unwrap_enveloped
from verifier.results import CeadError, Problem

from .store import describe

PRESENTATION_TYPES = {"jwt": "application/vp+jwt", "ldp": "application/vp+ld+json"}
MAX_BYTES = 1024 * 1024


def credentials_of(presentation: dict) -> list[dict | str]:
    """The credentials a presentation carries; an EnvelopedVerifiableCredential becomes its JWT."""
    return [unwrap_enveloped(item) for item in as_list(presentation.get("verifiableCredential"))]


def _error(status: int, *problems: Problem):
    return jsonify({"problems": [p.to_dict() for p in problems]}), status


def receive(wallet, body: bytes, url: str) -> tuple[int, dict]:
    """Check and store one delivery; returns (HTTP status, JSON answer). Never raises for bad input."""
    result = wallet.verifier.verify_presentation(body, challenge=request_binding("POST", url), domain=origin(url))
    if not result.verified:
        malformed = any(p.code.endswith(".malformed") for p in result.problems)
        return (400 if malformed else 401), {"problems": [p.to_dict() for p in result.problems]}
    sender = result.issuer
    try:
        credentials = credentials_of(result.document or {})
        facts = [describe(sub.document or {}, wallet.holder) for sub in result.credentials]
    except CeadError as exc:
        return 400, {"problems": [exc.problem.to_dict()]}
    if not credentials:
        return 400, {"problems": [Problem("inbox.empty", "The delivery holds no credential.").to_dict()]}
    problems = []
    for fact in facts:
        if fact["issuer"] != sender:
            problems.append(Problem("inbox.sender_not_issuer",
                                    f"A credential issued by {fact['issuer']} was delivered by {sender}; "
                                    "only its issuer may deliver it.", {"issuer": fact["issuer"], "sender": sender}))
        if not fact["names_holder"]:
            problems.append(Problem("inbox.not_for_us", f"A credential that does not name {wallet.holder} (as its "
                                    "subject or a party) was delivered to it.", {"subject": fact["subject"]}))
    if problems:
        return 403, {"problems": [p.to_dict() for p in problems]}
    stored, refused = [], []
    for credential in credentials:
        outcome = wallet.import_credential(credential, source=f"inbox:{sender}")
        if outcome.ok:
            stored.append({"id": outcome.record.id, "duplicate": outcome.duplicate,
                           "credentialId": outcome.record.credential_id})
        else:
            refused.extend(outcome.problems)
    if refused:
        return 422, {"stored": stored, "problems": [p.to_dict() for p in refused]}
    return 201, {"stored": stored}


def blueprint(wallet, *, public_url: str | None = None, max_bytes: int = MAX_BYTES) -> Blueprint:
    """A Flask blueprint serving ``POST /inbox`` for ``wallet``.

    ``public_url``: the node's external base URL when it sits behind a proxy (the binding uses the URL the sender
    used); default: the URL of the request as received.
    """
    bp = Blueprint("wallet_inbox", __name__)

    @bp.post("/inbox")
    def inbox():
        if (request.content_length or 0) > max_bytes:
            return _error(413, Problem("inbox.too_large", f"A delivery is at most {max_bytes} bytes."))
        body = request.get_data(cache=False)
        if len(body) > max_bytes:
            return _error(413, Problem("inbox.too_large", f"A delivery is at most {max_bytes} bytes."))
        url = (public_url.rstrip("/") + request.full_path.rstrip("?")) if public_url else request.url
        status, answer = receive(wallet, body, url)
        return jsonify(answer), status

    return bp
