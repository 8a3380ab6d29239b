"""Data-sharing requests between nodes, and the Information Asset Owner's decision on them.

- The requester's wallet sends a request to the data holder's node (:func:`send_request`): ``POST /requests`` with
  ``{"request": {...}, "presentation": "<vp+jwt>"}``. The presentation is the requester's (holder = requester) and
  carries its certifications; it is bound by the wire contract to this request: nonce =
  ``request_binding("POST", url, None, manifest=request)`` (the manifest slot binds the request object), audience =
  the URL's origin.
- The data holder's node verifies the presentation and the binding, checks the request's shape and stores it as
  ``pending`` (:func:`receive`, served by :func:`blueprint`); nothing is stored when anything is refused.
- The IAO approves (:func:`approve`: a ``DataSharingApprovalCredential`` built from the request, issued through
  ``issuer.issuing.issue`` so the guard rail applies, and delivered with the delegation chain it pins to the
  request's ``replyTo`` inbox) or refuses (:func:`refuse`). The web pages call the same functions.
- Approving is recorded before anything is signed: the request goes ``pending`` -> ``approving`` (naming the
  approval's id, always a fresh ``urn:uuid``) -> ``approved`` (keeping what was delivered, so :func:`redeliver` can
  send it again). Whatever fails in between revokes the approval if this approval issued it and puts the request
  back to ``pending`` (a delegation the node already knows cannot be used is refused before the request is
  claimed: :func:`known_out_of_force`); a node that crashed in between leaves it ``approving``, and :func:`reopen`
  does the same once the approval has been stuck for :data:`INTERRUPTED_AFTER`, after claiming the request
  (``reopening``) so that a slow approval finishing meanwhile is revoked, not recorded.
"""
from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass
import logging
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any
from urllib.parse import urlsplit

import requests as http
from flask import Blueprint, jsonify, request as flask_request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel
from sqlalchemy import case
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from schemas import vocab
from schemas.models import Did, Iri, LawfulBasis, Ref, credential_digest, describe
from schemas.values import DuplicateMember, strict_json, types_of
from verifier.binding import origin, request_binding
from verifier.results import CeadError, Problem

from .casefile import RequestCase
from .inbox import credentials_of, read_body
from .store import Wallet, WalletRequest, _aware, jwt_payload, walk_pinned

MAX_BYTES = 256 * 1024
APPROVAL = "DataSharingApprovalCredential"
CERTIFICATION = "OrganisationCertificationCredential"
DELEGATION = "DelegatedAuthorityCredential"
PENDING, APPROVING, APPROVED, REFUSED = "pending", "approving", "approved", "refused"
REOPENING = "reopening"     # reopen has claimed an interrupted approval and is undoing it
INTERRUPTED_AFTER = timedelta(minutes=5)   # an approval still "approving" after this was interrupted (a crash)
log = logging.getLogger(__name__)
# the approval subject's fields that come from the request (the rest is the approver's to state)
FROM_REQUEST = ("agreement", "discloser", "recipients", "delegationChain", "datasets", "dataItems", "purposes",
                "lawfulBases", "cadence")
# a credential's own fields: the overrides are an approval *subject*; the node builds the credential around it and
# chooses its id (a whole credential, or an id, given as overrides is refused)
CREDENTIAL_FIELDS = ("credentialSubject", "id", "@context", "type", "issuer", "validFrom", "validUntil",
                     "credentialStatus", "credentialSchema", "proof")


# ---- the request object ----------------------------------------------------------------------------------------

def _cadence(value: str) -> str:
    vocab.RepeatingInterval.parse(value)
    return value


def _https_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("must be an https:// URL (the requester's inbox)")
    return value


class DataSharingRequest(BaseModel):
    """What a requester asks for. Wire form: camelCase JSON; unknown fields are refused."""
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    requester: Did
    datasets: Annotated[list[Iri], Field(min_length=1)]
    data_items: Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]], Field(min_length=1)]
    purposes: Annotated[list[Iri], Field(min_length=1)]
    lawful_basis: LawfulBasis                 # the requester's proposed lawful basis (its party is the requester)
    cadence: Annotated[str, AfterValidator(_cadence)]
    agreement: Ref
    justification: Annotated[str, Field(min_length=1, max_length=4000)]
    reply_to: Annotated[str, AfterValidator(_https_url)]
    case: RequestCase | None = None           # the requester's case for the IAO (wallet.casefile), optional

    def to_json(self) -> dict:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def parse_request(data: Any) -> DataSharingRequest:
    """The request object checked; ``sharing.invalid`` naming the bad field otherwise."""
    if not isinstance(data, dict):
        raise CeadError("sharing.invalid", "'request' must be a JSON object.", field="request")
    try:
        parsed = DataSharingRequest.model_validate(data)
    except ValidationError as exc:
        fields = [".".join(str(p) for p in e["loc"]) for e in exc.errors()]
        raise CeadError("sharing.invalid", f"The request does not fit: {describe(exc)}", field=fields[0],
                        errors=[{"at": f, "problem": e["msg"]} for f, e in zip(fields, exc.errors())]) from None
    if parsed.lawful_basis.party != parsed.requester:
        raise CeadError("sharing.invalid", "lawfulBasis.party must be the requester: it is the requester's own "
                        "proposed lawful basis.", field="lawfulBasis.party")
    return parsed


# ---- sending (the requester's side) -----------------------------------------------------------------------------

def send_request(wallet: Wallet, url: str, request: dict, *, credentials: list | None = None,
                 session: http.Session | None = None, timeout: float = 30.0, verify: str | bool = True) -> dict:
    """POST ``request`` to another node's ``POST /requests`` with the wallet's presentation of its certifications
    (default: every usable certification it holds about itself; or ``credentials``), bound to ``url`` and to the
    request. Returns the node's answer (``{"id", "status"}``); raises ``sharing.refused`` with its reasons, or
    ``sharing.unreachable``."""
    from .client import post_to_node
    from .present import build_presentation
    body = parse_request(request).to_json()
    if body["requester"] != wallet.holder:
        raise CeadError("sharing.invalid", f"The requester must be this wallet's holder ({wallet.holder}).",
                        field="requester")
    if credentials is None:
        credentials = [r.credential for r in wallet.search(type=CERTIFICATION, usable=True)
                       if r.subject == wallet.holder]
    vp = build_presentation(wallet.holder, wallet.key, wallet.kid, credentials, audience=origin(url),
                            nonce=request_binding("POST", url, None, manifest=body))
    answer = post_to_node(session, url, "sharing", "the request", json={"request": body, "presentation": vp},
                          timeout=timeout, verify=verify,
                          guard=wallet._node.fetcher() if getattr(wallet, "_node", None) is not None else None)
    if "id" not in answer:
        raise CeadError("sharing.unreachable", f"{url} answered without a request id: not a Cead node's /requests.")
    return answer


# ---- receiving (the data holder's side) --------------------------------------------------------------------------

def _problems(status: int, *problems: Problem) -> tuple[int, dict]:
    return status, {"problems": [p.to_dict() for p in problems]}


def presentation_digest(presentation: str | dict) -> str:
    """What identifies a presentation for the replay check: what its holder signed, not how it was encoded. A
    vp+jwt is its signing input (the verifier strips surrounding whitespace, its base64url decoding ignores the
    signature's spare bits, and an ES256 signature has two valid forms); a JSON presentation is the document with
    its proofs' ``proofValue``s left out, keys sorted."""
    if isinstance(presentation, str):
        signed = presentation.strip().rsplit(".", 1)[0]
    else:
        def unsigned(proof):
            return {k: v for k, v in proof.items() if k != "proofValue"} if isinstance(proof, dict) else proof
        proofs = presentation.get("proof")
        document = {**presentation, "proof": [unsigned(p) for p in proofs] if isinstance(proofs, list)
                    else unsigned(proofs)} if "proof" in presentation else presentation
        signed = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(signed.encode()).hexdigest()


def receive(wallet: Wallet, body: bytes, url: str) -> tuple[int, dict]:
    """Check and store one request sent to ``url``; returns (HTTP status, JSON answer). Never raises for bad input;
    nothing is stored unless the answer is 201."""
    try:
        data = strict_json(body, "the request body")
    except DuplicateMember as exc:
        return _problems(400, exc.problem)
    except (ValueError, RecursionError):   # not JSON, or nested too deeply
        data = None
    if not isinstance(data, dict) or set(data) != {"request", "presentation"}:
        return _problems(400, Problem("sharing.invalid", "The body must be a JSON object with exactly 'request' "
                                      "and 'presentation'.", {"field": "body"}))
    try:
        parsed = parse_request(data["request"])
    except CeadError as exc:
        return _problems(400, exc.problem)
    presentation = data["presentation"]
    if not isinstance(presentation, (str, dict)):
        return _problems(400, Problem("sharing.invalid", "'presentation' must be a vp+jwt or a JSON presentation.",
                                      {"field": "presentation"}))
    # the binding covers the request object exactly as sent (JCS), so any change to it is a mismatch
    result = wallet.verifier.verify_presentation(
        presentation, challenge=request_binding("POST", url, None, manifest=data["request"]), domain=origin(url))
    if not result.verified:
        malformed = any(p.code.endswith(".malformed") for p in result.problems)
        return _problems(400 if malformed else 401, *result.problems)
    if result.issuer != parsed.requester:
        return _problems(403, Problem("sharing.not_requester", f"The presentation is by {result.issuer}, but the "
                                      f"request is made by {parsed.requester}.",
                                      {"holder": result.issuer, "requester": parsed.requester}))
    certifications = []
    for sub, credential in zip(result.credentials, credentials_of(result.document or {})):
        doc = sub.document or {}
        subject = doc.get("credentialSubject") if isinstance(doc.get("credentialSubject"), dict) else {}
        if CERTIFICATION not in types_of(doc) or subject.get("id") != parsed.requester:
            return _problems(403, Problem("sharing.not_requester", "Only the requester's own certifications may be "
                                          "presented with a request.", {"id": doc.get("id"),
                                                                        "requester": parsed.requester}))
        certifications.append({"id": doc.get("id"), "issuer": sub.issuer, "scheme": subject.get("scheme"),
                               "status": subject.get("status"), "expiryDate": subject.get("expiryDate"),
                               "digest": credential_digest(credential),
                               # names for the pages (wallet.names): who is certified, and by whom
                               "subject": subject.get("id"), "legalName": subject.get("legalName"),
                               "certificationBody": (subject.get("certificationBody") or {}).get("name")
                               if isinstance(subject.get("certificationBody"), dict) else None})
    request_id = uuid.uuid4().hex[:12]
    row = WalletRequest(id=request_id, requester=parsed.requester,
                        # its wire form (camelCase) as checked, not as sent: the model also reads field names
                        body=json.dumps(parsed.to_json()), certifications=json.dumps(certifications),
                        presentation_digest=presentation_digest(presentation))
    try:
        with Session(wallet.engine) as s:
            s.add(row)
            s.commit()
    except IntegrityError:
        return _problems(409, Problem("sharing.duplicate", "This presentation was received before (a replay)."))
    _emit(wallet, "request.received", {"request": request_id, "requester": parsed.requester,
                                       **_request_words(wallet, parsed, certifications),
                                       "path": f"/wallet/requests/{request_id}"}, request_id)
    return 201, {"id": request_id, "status": PENDING}


def _request_words(wallet: Wallet, parsed, certifications: list[dict]) -> dict:
    """What a notification of a new request says in words (a Teams card shows these facts to the IAO): who asks,
    named as the decision page names them (wallet.names: only by a certifier the node trusts), and the datasets and
    purposes by name. Nothing when the wallet is not a node's."""
    if wallet._node is None:
        return {}
    from .names import Directory
    try:
        names = Directory.for_node(wallet._node, wallet, certifications)
        words = lambda values: ", ".join(str(names.name(v)) for v in values or [])   # noqa: E731
        return {"from": str(names.name(parsed.requester)), "datasets": words(parsed.datasets),
                "purposes": words(parsed.purposes)}
    except Exception:   # noqa: BLE001 (words for a message; the request itself is stored whatever happens here)
        return {}


def _emit(wallet: Wallet, event: str, data: dict, subject: str) -> None:
    """Tell the node's subscribers (issuer.notifications), when the wallet belongs to a node."""
    if wallet._node is not None:
        from issuer import notifications
        notifications.emit(wallet._node, event, data, subject=subject)


def blueprint(wallet: Wallet, *, public_url: str | None = None, max_bytes: int = MAX_BYTES) -> Blueprint:
    """``POST /requests`` for ``wallet``; ``public_url`` as for the inbox (the URL the sender used)."""
    bp = Blueprint("wallet_requests", __name__)

    @bp.post("/requests")
    def requests_endpoint():
        body = read_body(max_bytes)
        if body is None:
            status, answer = _problems(413, Problem("sharing.too_large", f"A request is at most {max_bytes} bytes."))
            return jsonify(answer), status
        url = (public_url.rstrip("/") + flask_request.full_path.rstrip("?")) if public_url else flask_request.url
        status, answer = receive(wallet, body, url)
        if status == 201 and wallet._node is not None:
            from .standing import consider_later
            consider_later(wallet._node, wallet, answer["id"])   # a standing approval may cover it
        return jsonify(answer), status

    return bp


# ---- listing and deciding ----------------------------------------------------------------------------------------

def list_requests(wallet: Wallet) -> list[WalletRequest]:
    """Every request, pending first, newest first within each status."""
    pending_first = case((WalletRequest.status == PENDING, 0), else_=1)
    with Session(wallet.engine) as s:
        return list(s.exec(select(WalletRequest).order_by(pending_first, WalletRequest.received_at.desc())))


def get_request(wallet: Wallet, request_id: str) -> WalletRequest:
    with Session(wallet.engine) as s:
        row = s.get(WalletRequest, request_id) if isinstance(request_id, str) else None
    if row is None:
        raise CeadError("sharing.not_found", f"No data-sharing request {request_id!r} was received here.")
    return row


def _pending(wallet: Wallet, request_id: str) -> WalletRequest:
    row = get_request(wallet, request_id)
    if row.status != PENDING:
        raise CeadError("sharing.not_pending", f"Request {request_id} was already {row.status}.", status=row.status)
    return row


def _decide(wallet: Wallet, request_id: str, status: str, *, when: str = PENDING, started: str | None = None,
            **fields: Any) -> WalletRequest:
    """Move a request from ``when`` to ``status``, once: a request decided meanwhile (another tab, another person)
    is not overwritten. From ``approving`` (or ``reopening``), only the approval that was started (its id:
    ``started``) may move on. The row is locked while it is read and changed, so of two transitions from the same
    state only one succeeds."""
    with Session(wallet.engine) as s:
        row = s.get(WalletRequest, request_id, with_for_update=True)
        if row is None or row.status != when or (when in (APPROVING, REOPENING) and row.approval_id != started):
            raise CeadError("sharing.not_pending", f"Request {request_id} was already decided or is being approved.",
                            status=row.status if row is not None else None)
        row.status, row.decided_at = status, datetime.now(timezone.utc)
        for name, value in fields.items():
            setattr(row, name, value)
        s.add(row)
        s.commit()
        s.refresh(row)
    if status in (APPROVED, REFUSED):
        _emit(wallet, "request.decided", {"request": request_id, "requester": row.requester, "decision": status,
                                          "by": row.decided_by, "path": f"/wallet/requests/{request_id}"},
              request_id)
    return row


def refuse(wallet: Wallet, request_id: str, reason: str, *, by: str | None = None) -> WalletRequest:
    """Mark a pending request refused, with the reason (nothing is sent to the requester)."""
    _pending(wallet, request_id)
    if not isinstance(reason, str) or not reason.strip():
        raise CeadError("sharing.invalid", "Give a reason for the refusal.", field="reason")
    return _decide(wallet, request_id, REFUSED, reason=reason.strip()[:2000], decided_by=by)


_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def _document(credential: dict | str) -> dict:
    return jwt_payload(credential) if isinstance(credential, str) else credential


def resolve_delegation(node, wallet: Wallet, delegation: Any) -> dict | str:
    """The node's own delegation as signed: a credential (JSON or vc+jwt), or the id of one held in the wallet or
    in ``HOME/delegations``."""
    if isinstance(delegation, str) and not _COMPACT_JWS.fullmatch(delegation.strip()):   # an id may have two dots
        held = wallet.get(delegation)
        if held is not None:
            return held.credential
        from issuer.issuing import load_delegation
        return load_delegation(node, delegation)
    if not isinstance(delegation, (dict, str)):
        raise CeadError("delegation.invalid", "The delegation must be a credential or the id of one.")
    return delegation


def delegation_chain(wallet: Wallet, delegation: dict | str) -> list[dict | str]:
    """The delegation and its ``parentDelegation``s held in the wallet, root first; each parent is the credential
    whose digest the child pins (``wallet.delegation_missing`` when one is not held)."""
    chain, missing = held_chain(wallet, delegation)
    if missing is not None:
        raise CeadError("wallet.delegation_missing", f"The parent delegation {missing.get('id')} is not held "
                        "here (pinned by digest).", reference=missing)
    return chain


def held_chain(wallet: Wallet, delegation: dict | str) -> tuple[list[dict | str], dict | None]:
    """The delegation and as many of its ``parentDelegation``s as the wallet holds, root first, and the reference
    of the first parent it does not hold (None when the chain is complete). What the issuer's guard rail is given
    (``options.delegation`` as a list): it looks for the rest in ``HOME/delegations`` and refuses a chain that does
    not reach the controller."""
    chain = [delegation]
    seen = {credential_digest(delegation)}
    while True:
        parent = (_document(chain[0]).get("credentialSubject") or {}).get("parentDelegation")
        if not isinstance(parent, dict):
            return chain, None
        held = next((r for r in wallet.search(type=DELEGATION) if r.digest == parent.get("digest")), None)
        if held is None or held.digest in seen:
            return chain, parent
        seen.add(held.digest)
        chain.insert(0, held.credential)


def known_out_of_force(node, wallet: Wallet, delegation: dict | str, *, recheck: bool = True) -> CeadError | None:
    """``delegation.not_in_force`` when the node already knows that ``delegation`` (as signed) or a delegation it
    rests on (its held ``parentDelegation``s) cannot be used now, else None: one that has ended or has not yet
    begun (the wallet's end rule, ``WalletCredential.ends``: validUntil or the notAfter its scope states), or that
    is revoked or suspended as this node's own register says (for what it issued itself, a standing approval's
    template) or as the wallet last read its status list (one last seen suspended is re-read live first with
    ``recheck``: a suspension may have been lifted). Read before a request is claimed, so that nothing is marked
    "approving" under a delegation that cannot be used; the guard rail still decides whenever anything is signed
    (what is not known here, it finds)."""
    from .present import _unusable, delegation_not_in_force
    chain = held_chain(wallet, delegation)[0]
    own = _document(delegation).get("id")
    for credential in reversed(chain):        # the signer's own first, then what it rests on
        record = wallet._by_digest(credential_digest(credential))
        if record is None:
            continue                          # kept in HOME/delegations only: the guard rail reads it
        why = _unusable(record)
        issued = _register_status(node, record)
        read = "as this node last read its status list"
        if why not in ("revoked", "expired", "not yet valid"):    # dates, and a revocation, are final
            if issued is not None:
                why = issued if issued in ("revoked", "suspended") else None
                read = "this node signed it, and its register says so"
            elif why == "suspended" and recheck and wallet.recheck_suspended([record]):
                why = None
        if why is None:
            continue
        under = own if record.credential_id != own else None
        fix = {"expired": "Ask your Data Protection Officer for a new delegation (a renewal), then approve under it.",
               "revoked": "A revoked delegation is not used again: ask your Data Protection Officer for a new one.",
               "suspended": "Ask your Data Protection Officer to reinstate it, or approve under another delegation.",
               "not yet valid": "Approve under it once it takes effect, or under another delegation."}[why]
        what = "The approval would rest on" if under is None else \
            f"The approval would rest (through your delegation {own}) on"
        return delegation_not_in_force(record, why, relied_on_by=what, under=under, read=read,
                                       fix=f"Nothing was signed. {fix}")
    return None


def _register_status(node, record) -> str | None:
    """The status this node's register gives ``record`` (a held credential), when this node issued it, else None."""
    from issuer import db
    if not record.credential_id:
        return None
    with node.session() as s:
        row = s.get(db.IssuedCredential, record.credential_id)
    return row.status if row is not None and row.digest == record.digest else None


def draft_subject(node, wallet: Wallet, request_id: str, *, delegation: Any = None) -> dict:
    """The approval subject the request asks for: discloser (the delegation's controller, or this node), recipient
    (the requester), datasets, dataItems, purposes, the requester's lawful basis, cadence, agreement and the
    delegation chain pinned by digest. The approver adds the rest (their own lawful basis, data categories, DPIA,
    sensitivity, retention, onward sharing, period...); the typed model names anything missing."""
    req = get_request(wallet, request_id).request
    subject: dict[str, Any] = {"agreement": req["agreement"], "discloser": node.did,
                               "recipients": [req["requester"]], "delegationChain": [],
                               "datasets": req["datasets"], "dataItems": req["dataItems"],
                               "purposes": req["purposes"], "lawfulBases": [req["lawfulBasis"]],
                               "cadence": req["cadence"]}
    if delegation is not None:
        signed = resolve_delegation(node, wallet, delegation)
        chain = delegation_chain(wallet, signed)
        subject["discloser"] = (_document(chain[0]).get("credentialSubject") or {}).get("onBehalfOf") or node.did
        subject["delegationChain"] = [{"id": _document(c).get("id"), "digest": credential_digest(c)} for c in chain]
    return subject


@dataclass
class Approved:
    request: WalletRequest
    issued: Any             # issuer.issuing.Issued (None when delivered again)
    delivered: dict         # the requester's inbox receipt


def approve(node, wallet: Wallet, request_id: str, approval_subject_overrides: dict | None = None, *,
            delegation: Any = None, valid_until: str | None = None, options: dict | None = None,
            issued_by: str | None = None, scopes=None, verify: str | bool | None = None) -> Approved:
    """Approve a pending request: the approval subject is :func:`draft_subject` with
    ``approval_subject_overrides`` (subject fields only: a whole credential, or an ``id``, is refused with
    ``sharing.invalid``) laid over it, built by ``issuer.issuing.build_credential`` under a fresh ``urn:uuid`` id and
    issued by ``issuer.issuing.issue`` (the guard rail checks it against ``delegation``, the node's own delegation:
    a credential or an id held in the wallet or ``HOME/delegations``; ``scopes`` as for a token). The approval is
    delivered with the credentials it pins to the request's ``replyTo`` (``verify``: the TLS CA bundle; default the
    node's ``network.ca_bundle``), then the request is marked approved. A delegation the node already knows cannot
    be used (:func:`known_out_of_force`) raises ``delegation.not_in_force`` before the request is claimed."""
    from issuer import issuing
    _pending(wallet, request_id)
    overrides = {} if approval_subject_overrides is None else approval_subject_overrides
    if not isinstance(overrides, dict):
        raise CeadError("sharing.invalid", "The approval subject must be a JSON object.", field="subject")
    given = next((name for name in CREDENTIAL_FIELDS if name in overrides), None)
    if given is not None:
        raise CeadError("sharing.invalid", f"Give the approval's subject fields only, not {given!r}: the node builds "
                        "the credential around the subject and chooses its id.", field=given)
    subject = {**draft_subject(node, wallet, request_id, delegation=delegation), **overrides}
    signed_delegation = resolve_delegation(node, wallet, delegation) if delegation is not None else None
    credential = issuing.build_credential(node, APPROVAL, subject, valid_until=valid_until)
    options = dict(options or {})
    if signed_delegation is not None:   # as signed, with the chain it rests on: the guard rail verifies them all
        options["delegation"] = delegation_chain(wallet, signed_delegation)
    pinned = _pinned_credentials(wallet, credential, signed_delegation)   # before signing: all must be held
    if signed_delegation is not None and (known := known_out_of_force(node, wallet, signed_delegation)) is not None:
        raise known                   # known already to be unusable: the request is not claimed for nothing
    # always a fresh id: what is revoked if this approval is not completed is only ever what it issued itself
    credential["id"] = approval_id = f"urn:uuid:{uuid.uuid4()}"
    # recorded before signing: a second approver, or a refusal in another tab, now finds it taken
    started = _decide(wallet, request_id, APPROVING, approval_id=approval_id, decided_by=issued_by)
    issued = None
    try:
        issued = issuing.issue(node, credential, options, issued_by=issued_by, scopes=scopes)
        done = _decide(wallet, request_id, APPROVED, when=APPROVING, started=approval_id,
                       delivery=json.dumps([issued.credential, *pinned], ensure_ascii=False))
    except BaseException:
        # refused by the guard rail, reopened meanwhile, or anything else before the approval was recorded: nothing
        # this approval issued may stay valid, and the request is open again (unless someone else holds it now)
        _abandon(node, wallet, request_id, approval_id, started=started.decided_at, issued=issued is not None,
                 by=issued_by, reason=f"The approval of data-sharing request {request_id} was not completed.")
        raise
    receipt = _deliver(node, done, verify)
    return Approved(_delivered(wallet, request_id), issued, receipt)


def _deliver(node, row: WalletRequest, verify: str | bool | None) -> dict:
    """Send what an approved request delivers (the approval and the chain it pins) to the request's ``replyTo``.
    A failure is ``sharing.undelivered`` saying why (the recipient's own reasons when it refused) and whether
    delivering again can help (``detail.retry``)."""
    from .client import deliver
    if verify is None:
        verify = node.network.ca_bundle or True
    try:
        return deliver(node.did, node.key, node.verification_method_id, json.loads(row.delivery),
                       row.request["replyTo"], verify=verify, guard=node.fetcher())   # the requester's choice
    except CeadError as exc:
        raise undelivered(exc, row.approval_id, row.request["replyTo"]) from None


# Refusals by the recipient that a later delivery of the same credentials can get past without anyone changing
# them: none of its reasons is about the credentials themselves.
_TRANSIENT = {"inbox.too_large"}


def undelivered(exc: CeadError, approval_id: str | None, inbox: str) -> CeadError:
    """``sharing.undelivered`` for a failed delivery: the recipient's reasons (code and message, from its answer)
    when it refused, and whether delivering the same approval again can help."""
    reasons = exc.detail.get("reasons") or ([exc.problem.to_dict()] if exc.code.endswith(".unreachable") else [])
    status = exc.detail.get("status")
    if exc.detail.get("tls"):
        retry, said = False, f"could not be delivered to {inbox}: {exc.message} Then deliver it again."
    elif exc.code.endswith(".unreachable"):
        retry, said = True, f"could not be delivered to {inbox}: {exc.message} Deliver it again once the " \
                            "requester's node is reachable."
    elif isinstance(status, int) and status >= 500:
        retry, said = True, f"could not be delivered: {inbox} failed (HTTP {status}): " + _said(reasons) + \
            " Delivering it again may help once the requester's node works again."
    else:
        retry = bool(reasons) and all(r.get("code") in _TRANSIENT for r in reasons)
        said = f"was refused by the requester's node ({inbox}, HTTP {status}): {_said(reasons)}. " + (
            "Delivering it again may help." if retry else
            "Delivering it again will not help until that is put right (for example: a credential it rests on "
            "that is suspended or revoked must be reinstated or replaced, which means approving again).")
    return CeadError("sharing.undelivered", f"The approval {approval_id} was issued, but it {said}",
                     approval=approval_id, reasons=reasons, retry=retry, status=status)


def _said(reasons: list[dict]) -> str:
    return "; ".join(f"{r.get('code')}: {r.get('message')}" for r in reasons) or "no reason given"


def _delivered(wallet: Wallet, request_id: str) -> WalletRequest:
    with Session(wallet.engine) as s:
        row = s.get(WalletRequest, request_id, with_for_update=True)
        row.delivered_at = datetime.now(timezone.utc)
        s.add(row)
        s.commit()
        s.refresh(row)
        return row


def redeliver(node, wallet: Wallet, request_id: str, *, verify: str | bool | None = None) -> Approved:
    """Deliver an approved request's approval (with the chain it pins) to the requester again: after a failed
    delivery, or when the requester lost it. The requester's inbox keeps one copy however often it arrives.
    (``Approved.issued`` is None here: nothing new is issued.)"""
    row = get_request(wallet, request_id)
    if row.status != APPROVED or not row.delivery:
        raise CeadError("sharing.not_approved", f"Request {request_id} is {row.status}; only an approved request's "
                        "approval can be delivered again.", status=row.status)
    receipt = _deliver(node, row, verify)
    return Approved(_delivered(wallet, request_id), None, receipt)


def reopen(node, wallet: Wallet, request_id: str, *, by: str | None = None,
           now: datetime | None = None) -> WalletRequest:
    """Put an interrupted approval back to ``pending``: one still ``approving`` :data:`INTERRUPTED_AFTER` after it
    started (the node stopped while signing). The approval started then is revoked if it had been issued.

    The request is claimed first (``approving`` -> ``reopening``, row-locked, for this approval's id only), so an
    approval that was only slow and finishes meanwhile cannot be recorded as approved any more: it revokes what it
    issued. A reopening that stopped half-way (``reopening``) may be reopened again at once."""
    row = get_request(wallet, request_id)
    if row.status not in (APPROVING, REOPENING):
        raise CeadError("sharing.not_pending", f"Request {request_id} is {row.status}, not an interrupted approval.",
                        status=row.status)
    if row.status == APPROVING:
        started = _aware(row.decided_at)
        if started is not None and (now or datetime.now(timezone.utc)) - started < INTERRUPTED_AFTER:
            raise CeadError("sharing.in_progress", f"Request {request_id} is being approved right now (started "
                            f"{started:%H:%M:%S} UTC); it can be reopened "
                            f"{int(INTERRUPTED_AFTER.total_seconds() // 60)} minutes after it started if it does not "
                            "finish.")
        # the claim: fails (sharing.not_pending) if the approval finished, or another reopen claimed it, meanwhile
        row = _decide(wallet, request_id, REOPENING, when=APPROVING, started=row.approval_id,
                      decided_at=row.decided_at, decided_by=row.decided_by)
    _abandon(node, wallet, request_id, row.approval_id, started=row.decided_at, issued=False, by=by, strict=True,
             when=REOPENING, reason=f"The approval of data-sharing request {request_id} was interrupted and reopened.")
    return get_request(wallet, request_id)


def is_interrupted(row: WalletRequest, now: datetime | None = None) -> bool:
    """An approval started more than :data:`INTERRUPTED_AFTER` ago and never finished (or a reopening that
    stopped half-way)."""
    if row.status == REOPENING:
        return True
    if row.status != APPROVING or row.decided_at is None:
        return row.status == APPROVING
    return (now or datetime.now(timezone.utc)) - _aware(row.decided_at) >= INTERRUPTED_AFTER


def _issued_by(node, approval_id: str | None, started: datetime | None) -> bool:
    """Whether the node's register holds ``approval_id`` as an approval signed since ``started`` (when the approval
    was recorded as started): only then is it this approval's to revoke. (Its id is a fresh ``urn:uuid``, so this
    only matters for a request left ``approving`` under some other id.)"""
    from issuer import db
    if not isinstance(approval_id, str) or not approval_id:
        return False
    with node.session() as s:
        row = s.get(db.IssuedCredential, approval_id)
    if row is None:
        return False                                    # never issued: nothing to revoke
    since = _aware(started).astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z") \
        if started is not None else ""
    if APPROVAL not in row.types.split(",") or (row.issued_at or "") < since:
        log.warning("not revoking %s: it is not an approval this request's approval issued", approval_id)
        return False
    return True


def _abandon(node, wallet: Wallet, request_id: str, approval_id: str, *, started: datetime | None, issued: bool,
             by: str | None, reason: str, strict: bool = False, when: str = APPROVING) -> None:
    """Revoke ``approval_id`` if this approval issued it (``issued``: issue() returned it; otherwise the register
    must show an approval signed since ``started``), then put the request back to pending if it is still this
    approval's (in state ``when``). Called while another error is on its way up, so by default it only logs its
    own failures."""
    from issuer import issuing
    try:
        if issued or _issued_by(node, approval_id, started):
            issuing.change_status(node, approval_id, "revoke", by=by, reason=reason)
        _decide(wallet, request_id, PENDING, when=when, started=approval_id, approval_id=None,
                decided_by=None, decided_at=None)
    except Exception:
        if strict:
            raise
        log.exception("could not undo the unfinished approval %s of request %s", approval_id, request_id)


def _pinned_credentials(wallet: Wallet, approval: dict, delegation: dict | str | None) -> list[dict | str]:
    """What the approval pins by digest, as signed, and what those pin in turn (an upstream approval's own chain
    and upstream, a delegation's parent; ``wallet.store.walk_pinned``): the delegation given and its ancestors, or
    credentials held in the wallet. The requester's inbox refuses an approval delivered without them."""
    known = {credential_digest(c): c for c in delegation_chain(wallet, delegation)} if delegation is not None else {}

    def find(ref: dict):
        found = known.get(ref["digest"])
        if found is None:
            held = next((r for r in wallet.search() if r.digest == ref["digest"]), None)
            found = held.credential if held is not None else None
        return (found, _document(found)) if found is not None else None

    out: list[dict | str] = []
    for _, ref, found in walk_pinned(approval, find):
        if found is None:
            raise CeadError("wallet.delegation_missing", f"{ref['id']}, pinned by the approval, is not held here.",
                            reference=ref)
        out.append(found)
    return out
