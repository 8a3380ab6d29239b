"""The node's HTTP inbox, where other organisations' issuers deliver credentials.

``POST /inbox`` takes a presentation signed by the delivering issuer (``application/vp+jwt``, or a Data Integrity
presentation as ``application/vp+ld+json``/``application/json``) whose holder is the sender, bound to this inbox
by the wire contract (nonce/challenge = ``request_binding("POST", inbox URL)``, audience/domain = the inbox's
origin). The presentation is verified. Every credential in it must be either

- issued by the sender and about this node (its subject or a named party such as a recipient), or
- pinned by digest by such an approval (its ``delegationChain`` and ``upstream``), or, recursively, by a credential
  accepted that way (a delegation's ``parentDelegation``, an upstream approval's own chain and upstream): the
  credentials an approval rests on, which the recipient presents with it;

and whatever a delivered approval pins must be in the delivery or already held (``inbox.pin_missing``). Each is
then verified again, and the wallet stores them all in one transaction, or none: nothing of a refused delivery is
stored. Answers ``201 {"stored": [...]}`` or an error with ``{"problems": [...]}``.
"""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from schemas.models import credential_digest
from schemas.values import as_list
from verifier.binding import origin, request_binding
from verifier.credential import unwrap_enveloped
from verifier.results import CeadError, Problem
from verifier.serving import read_bounded

from .store import describe, pinned_references

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
        documents = [sub.document or {} for sub in result.credentials]
        facts = [describe(doc, wallet.holder) for doc in documents]
        digests = [credential_digest(c) for c in credentials]
    except CeadError as exc:
        return 400, {"problems": [exc.problem.to_dict()]}
    if not credentials:
        return 400, {"problems": [Problem("inbox.empty", "The delivery holds no credential.").to_dict()]}
    unaccepted, pins = _accept(facts, documents, digests, sender)
    problems = [_refusal(facts[i], digests[i], sender, wallet.holder, pins) for i in unaccepted]
    if problems:
        return 403, {"problems": [p.to_dict() for p in problems]}
    missing = _missing_pins(wallet, facts, documents, digests)
    if missing:
        return 422, {"problems": [p.to_dict() for p in missing]}
    # all or nothing: every credential is verified again, and they are stored in one transaction or not at all
    outcomes = wallet.import_credentials(credentials, source=f"inbox:{sender}")
    refused = [p for outcome in outcomes for p in outcome.problems]
    if refused:
        return 422, {"problems": [p.to_dict() for p in refused]}
    return 201, {"stored": [{"id": o.record.id, "duplicate": o.duplicate, "credentialId": o.record.credential_id}
                            for o in outcomes]}


def _missing_pins(wallet, facts: list[dict], documents: list[dict], digests: list[str]) -> list[Problem]:
    """What the delivered approvals pin by digest (their delegationChain, which lists the whole chain, and their
    upstream approvals; an upstream approval delivered is checked in turn) and is neither in the delivery nor
    already held: an approval without the credentials it rests on could never be presented, so the delivery is
    refused (``inbox.pin_missing``, one per missing pin). A delegation delivered on its own (to a delegate) may
    come without its parent."""
    delivered = set(digests)
    out = []
    for fact, document in zip(facts, documents):
        if "DataSharingApprovalCredential" not in fact["types"]:
            continue
        for ref in pinned_references(document):
            if ref["digest"] in delivered or wallet.holds_digest(ref["digest"]):
                continue
            out.append(Problem("inbox.pin_missing", f"{fact['credential_id'] or 'A delivered credential'} pins "
                               f"{ref['id']} (digest {ref['digest']}), which is neither in this delivery nor held "
                               "here; deliver it with the credentials it rests on.",
                               {"id": fact["credential_id"], "reference": ref}))
    return out


def _accept(facts: list[dict], documents: list[dict], digests: list[str], sender: str
            ) -> tuple[list[int], dict[str, dict]]:
    """Which delivered credentials the inbox takes: those issued by the sender about this node, and those pinned by
    digest by an approval among them (recursively, by what that pins). Returns the indexes of the others and the
    pins (digest -> reference) that were followed."""
    accepted = {i for i, fact in enumerate(facts) if fact["issuer"] == sender and fact["names_holder"]}
    pins: dict[str, dict] = {}
    todo = [i for i in accepted if "DataSharingApprovalCredential" in facts[i]["types"]]
    while todo:
        for ref in pinned_references(documents[todo.pop()]):
            pins.setdefault(ref["digest"], ref)
        for i, digest in enumerate(digests):
            if i not in accepted and digest in pins:
                accepted.add(i)
                todo.append(i)
    return [i for i in range(len(facts)) if i not in accepted], pins


def _refusal(fact: dict, digest: str, sender: str, holder: str, pins: dict[str, dict]) -> Problem:
    """Why one delivered credential is refused."""
    pinned = next((ref for ref in pins.values() if ref["id"] == fact["credential_id"]), None)
    if pinned is not None:
        return Problem("inbox.digest_mismatch", f"The credential {fact['credential_id']} is pinned by digest "
                       f"{pinned['digest']} in this delivery, but the one delivered has digest {digest}.",
                       {"id": fact["credential_id"], "pinned": pinned["digest"], "delivered": digest})
    if fact["issuer"] != sender:
        return Problem("inbox.sender_not_issuer", f"A credential issued by {fact['issuer']} was delivered by "
                       f"{sender}; only its issuer may deliver it, unless an approval for {holder} in the same "
                       "delivery pins it by digest.", {"issuer": fact["issuer"], "sender": sender,
                                                       "id": fact["credential_id"]})
    return Problem("inbox.not_for_us", f"A credential that does not name {holder} (as its subject or a party), "
                   "and that no approval for it in the same delivery pins by digest, was delivered to it.",
                   {"subject": fact["subject"], "id": fact["credential_id"]})


def read_body(max_bytes: int) -> bytes | None:
    """The current request's body, or None when it is longer than ``max_bytes``: by its Content-Length, or, sent
    in chunks (no Content-Length), by reading one byte more than allowed. (Werkzeug's own limit on a chunked body
    stops reading at the limit and hands over what it read, so an oversize body looked merely malformed.)"""
    if (request.content_length or 0) > max_bytes:
        return None
    request.max_content_length = max_bytes + 1          # this endpoint's limit, not the app's; read one byte past it
    return read_bounded(request.stream, max_bytes)


def blueprint(wallet, *, public_url: str | None = None, max_bytes: int = MAX_BYTES) -> Blueprint:
    """A Flask blueprint serving ``POST /inbox`` for ``wallet``.

    ``public_url``: the node's external base URL when it sits behind a proxy (the binding uses the URL the sender
    used); default: the URL of the request as received.
    """
    bp = Blueprint("wallet_inbox", __name__)

    @bp.post("/inbox")
    def inbox():
        # the inbox's own limit, not the issuing API's smaller one (a delivery carries the chain it rests on)
        body = read_body(max_bytes)
        if body is None:
            return _error(413, Problem("inbox.too_large", f"A delivery is at most {max_bytes} bytes."))
        url = (public_url.rstrip("/") + request.full_path.rstrip("?")) if public_url else request.url
        status, answer = receive(wallet, body, url)
        return jsonify(answer), status

    return bp
