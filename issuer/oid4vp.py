"""Asking a person's wallet to present a credential: OpenID for Verifiable Presentations 1.0, as the verifier.

A node asks, for example, an Information Asset Owner's wallet to show the delegation their DPO signed. The request
is passed by value in an ``openid4vp://`` link or QR code, with the ``redirect_uri`` client identifier prefix (so it
is unsigned, OID4VP 1.0 s.5.9.3), ``response_mode`` ``direct_post`` and a DCQL query naming the credential types
wanted. The wallet POSTs its ``vp_token`` (a JSON object: query id -> list of presentations) and the ``state`` to
``/oid4vp/response``; the node verifies every presentation with its own verifier (proof, ``nonce``, audience =
the full client identifier, every credential's proof, status and validity, each credential's subject being the
presenter, the types the query asked for) and stores the outcome, which the asker reads by the request's state.

Pending requests live in the node's database (``issuer_presentation_request``), so every worker process and a
restarted node see them; each may be answered once, within ``REQUEST_TTL``.
"""
from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime, timedelta, timezone
from typing import Any, Optional
from urllib.parse import urlencode

from flask import Blueprint, Response, request
from sqlmodel import Field, SQLModel, select

from schemas.values import strict_json, types_of
from verifier.results import CeadError, Problem

from . import db

REQUEST_TTL = timedelta(minutes=10)
MAX_RESPONSE = 512 * 1024
FORMATS = ("jwt_vc_json", "ldp_vc")


class PresentationRequest(SQLModel, table=True):
    """A presentation request this node made, and (once answered) what was verified."""
    __tablename__ = "issuer_presentation_request"
    id: Optional[int] = Field(default=None, primary_key=True)
    state_hash: str = Field(unique=True)
    nonce: str
    dcql_query: str                          # JSON, as sent
    created: str = Field(default_factory=db.utcnow)
    expires: str
    answered: Optional[str] = None
    outcome: Optional[str] = None            # JSON: {"verified", "holder", "credentials", "problems"}


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def response_uri(node) -> str:
    return node.public_url.rstrip("/") + "/oid4vp/response"


def client_id(node) -> str:
    """The full client identifier: the ``redirect_uri`` prefix and the response URI (OID4VP 1.0 s.5.9.3)."""
    return "redirect_uri:" + response_uri(node)


def cead_types() -> tuple[str, ...]:
    """The credential types Cead defines (its schemas), which a request may name without ``any_type``."""
    from schemas.attestation import RunAttestation
    from schemas.models import CREDENTIAL_MODELS
    return (*CREDENTIAL_MODELS, RunAttestation.credential_type)


def _check_known(types: list[str]) -> None:
    """Refuse a type Cead does not define (a typo such as ``DelegatedAuthority`` would otherwise make a request no
    wallet can ever answer), naming the nearest Cead type and how to ask for another scheme's type on purpose."""
    import difflib
    known = cead_types()
    for t in types:
        if t == "VerifiableCredential" or t in known:
            continue
        near = difflib.get_close_matches(t.lower(), [k.lower() for k in known], n=1, cutoff=0.5)
        hint = next((f" Did you mean {k}?" for k in known if near and k.lower() == near[0]), "")
        raise CeadError("oid4vp.invalid", f"{t!r} is not a credential type Cead defines ({', '.join(known)}).{hint} "
                        "To ask for another scheme's credential type, spelled exactly as its credentials carry it, "
                        "pass --any-type.", type=t, known=list(known))


def dcql_for(types: list[str], fmt: str = "jwt_vc_json", *, any_type: bool = True) -> dict:
    """A DCQL query for one credential holding every type in ``types`` (OID4VP 1.0 s.6); without ``any_type``,
    every type must be one Cead defines (``cead_types``)."""
    if fmt not in FORMATS:
        raise CeadError("oid4vp.invalid", f"Unknown credential format {fmt!r}; use {' or '.join(FORMATS)}.")
    if not types or not all(isinstance(t, str) and t for t in types):
        raise CeadError("oid4vp.invalid", "Name at least one credential type to ask for.")
    if not any_type:
        _check_known(types)
    wanted = ["VerifiableCredential"] + [t for t in types if t != "VerifiableCredential"]
    return {"credentials": [{"id": "credential", "format": fmt, "meta": {"type_values": [wanted]}}]}


def new_state() -> str:
    """A fresh request state (256 random bits, base64url) that never begins with "-": the state is typed on the
    command line (`cead oid4vp result STATE`), where a leading "-" would be read as an option."""
    while True:
        state = secrets.token_urlsafe(32)
        if not state.startswith("-"):
            return state


def make_request(node, types: list[str], *, fmt: str = "jwt_vc_json", any_type: bool = False,
                 now: datetime | None = None) -> dict:
    """A presentation request for a credential of ``types``: ``{"uri", "state", "request", "expires"}``. Each type
    must be one Cead defines unless ``any_type`` (another scheme's credential, e.g. a staff training record)."""
    now = now or datetime.now(timezone.utc)
    query = dcql_for(types, fmt, any_type=any_type)
    state, nonce = new_state(), secrets.token_urlsafe(24)
    with node.session() as s:
        s.add(PresentationRequest(state_hash=_hash(state), nonce=nonce, dcql_query=json.dumps(query),
                                  expires=_stamp(now + REQUEST_TTL)))
        s.commit()
    params = {"client_id": client_id(node), "response_type": "vp_token", "response_mode": "direct_post",
              "response_uri": response_uri(node), "nonce": nonce, "state": state,
              "dcql_query": json.dumps(query, separators=(",", ":"))}
    return {"uri": "openid4vp://?" + urlencode(params), "state": state, "request": params,
            "expires": _stamp(now + REQUEST_TTL)}


def _subject_ids(document: dict) -> list[Any]:
    subject = document.get("credentialSubject")
    subjects = subject if isinstance(subject, list) else [subject]
    return [s.get("id") if isinstance(s, dict) else None for s in subjects]


def check_response(verifier, query: dict, nonce: str, audience: str, vp_token: Any) -> dict:
    """Verify a ``vp_token`` against the query and the request's binding; returns the outcome (never raises for
    what the wallet sent)."""
    problems: list[Problem] = []
    presented: list[dict] = []
    holder = None
    if isinstance(vp_token, str):
        try:
            vp_token = strict_json(vp_token, "the vp_token")
        except (ValueError, RecursionError):
            vp_token = None
    queries = {q.get("id"): q for q in query.get("credentials", [])}
    if not isinstance(vp_token, dict) or set(vp_token) - set(queries) or not vp_token:
        problems.append(Problem("oid4vp.response_invalid", "vp_token must be a JSON object whose keys are the "
                                f"query ids asked for ({', '.join(queries)})."))
        vp_token = {}
    for qid, q in queries.items():
        answers = vp_token.get(qid) if vp_token else None
        if answers is None:
            problems.append(Problem("oid4vp.credential_missing", f"Nothing was presented for {qid!r}."))
            continue
        if not (isinstance(answers, list) and len(answers) == 1):
            problems.append(Problem("oid4vp.response_invalid", f"{qid!r} must hold a list of one presentation."))
            continue
        result = verifier.verify_presentation(answers[0], nonce=nonce, audience=audience)
        problems += result.problems
        presenter = result.issuer                     # a presentation's "issuer" is its holder
        holder = presenter or holder
        if not result.credentials:
            problems.append(Problem("oid4vp.credential_missing", f"The presentation for {qid!r} holds no credential."))
        wanted = (q.get("meta") or {}).get("type_values") or [[]]
        for cred in result.credentials:
            problems += cred.problems
            doc = cred.document or {}
            have = set(types_of(doc))
            if not any(set(w) <= have for w in wanted):
                problems.append(Problem("oid4vp.type_mismatch", f"A presented credential is {sorted(have)}, not "
                                        f"what was asked for ({wanted})."))
            subjects = _subject_ids(doc)
            if presenter and any(sid != presenter for sid in subjects):
                # cryptographic holder binding (OID4VP 1.0 B.1): only the subject may present it
                problems.append(Problem("oid4vp.holder_mismatch", f"{doc.get('id')} was issued to {subjects}, not "
                                        f"to the presenter {presenter}."))
            presented.append({"id": doc.get("id"), "types": sorted(have - {"VerifiableCredential"}),
                              "issuer": cred.issuer, "subject": subjects})
    return {"verified": not problems, "holder": holder, "credentials": presented,
            "problems": [p.to_dict() for p in problems]}


def receive(node, form: Any, verifier, now: datetime | None = None) -> dict:
    """The ``direct_post`` response: check the state, verify, store and return the outcome."""
    now = now or datetime.now(timezone.utc)
    state = form.get("state") if form is not None else None
    if not isinstance(state, str) or not state:
        raise CeadError("oid4vp.unknown_state", "The response has no state.")
    with node.session() as s:
        row = s.exec(select(PresentationRequest).where(PresentationRequest.state_hash == _hash(state))).first()
        if row is None or row.answered is not None or \
                datetime.fromisoformat(row.expires.replace("Z", "+00:00")) <= now:
            raise CeadError("oid4vp.unknown_state", "This presentation request is unknown, answered or expired; ask "
                            "for a new one.")
        row.answered = _stamp(now)          # claimed before verifying: one answer per request
        s.add(row)
        s.commit()
        nonce, query = row.nonce, json.loads(row.dcql_query)
    if "error" in form:
        outcome = {"verified": False, "holder": None, "credentials": [],
                   "problems": [Problem("oid4vp.wallet_error", f"The wallet answered {str(form.get('error'))[:80]}: "
                                        f"{str(form.get('error_description') or '')[:200]}").to_dict()]}
    else:
        outcome = check_response(verifier, query, nonce, client_id(node), form.get("vp_token"))
    with node.session() as s:
        row = s.exec(select(PresentationRequest).where(PresentationRequest.state_hash == _hash(state))).first()
        row.outcome = json.dumps(outcome)
        s.add(row)
        s.commit()
    return outcome


def outcome_of(node, state: str) -> dict:
    """What became of a request: ``{"status": "pending"|"verified"|"refused"|"expired", ...}``."""
    with node.session() as s:
        row = s.exec(select(PresentationRequest).where(PresentationRequest.state_hash == _hash(state))).first()
    if row is None:
        raise CeadError("oid4vp.unknown_state", "No presentation request has this state.")
    if row.outcome is None:
        expired = datetime.fromisoformat(row.expires.replace("Z", "+00:00")) <= datetime.now(timezone.utc)
        return {"status": "expired" if expired else "pending"}
    outcome = json.loads(row.outcome)
    return {"status": "verified" if outcome["verified"] else "refused", **outcome}


def node_verifier(node):
    """The node's own verifier for answers: DID resolution and status lists with its network settings."""
    from verifier.credential import Verifier
    from verifier.did import Resolver
    from verifier.status import StatusLists
    fetcher = node.fetcher()
    return Verifier(resolver=Resolver(fetcher), status=StatusLists(fetcher))


def _json(status: int, body: dict) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status=status, mimetype="application/json",
                    headers={"Cache-Control": "no-store"})


def blueprint(node, verifier=None) -> Blueprint:
    """``POST /oid4vp/response`` (the wallet's answer, public) and ``GET /oid4vp/result/<state>`` (the asker's
    view: the state is its bearer secret)."""
    bp = Blueprint("oid4vp", __name__)

    @bp.post("/oid4vp/response")
    def response():
        if (request.content_length or 0) > MAX_RESPONSE:
            return _json(413, {"error": "invalid_request", "error_description": "The response is too large."})
        try:
            outcome = receive(node, request.form, verifier or node_verifier(node))
        except CeadError as exc:
            return _json(400, {"error": "invalid_request", "error_description": exc.message})
        # OID4VP 1.0 s.8.2: 200 with a JSON body (no redirect_uri: the person goes back to where they were); a
        # refusal is told to the wallet too, with the first reasons, so the person knows it did not count
        if outcome["verified"]:
            return _json(200, {})
        return _json(400, {"error": "access_denied", "error_description": "; ".join(
            f"{p['code']}: {p['message']}" for p in outcome["problems"][:3])})

    @bp.get("/oid4vp/result/<state>")
    def result(state: str):
        try:
            return _json(200, outcome_of(node, state))
        except CeadError as exc:
            return _json(404, {"error": {"code": exc.code, "message": exc.message}})

    return bp
