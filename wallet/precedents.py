"""Precedents: what this node and its peers decided before, in front of the person deciding now.

Each node keeps its own decisions (the data-sharing requests it approved or refused, ``wallet_request``) and
publishes them as a **signed feed** at ``GET /precedents``: summaries only (datasets, data items, purposes, lawful
bases, privacy protocol kinds, conditions, outcome, the refusal's reasons, when), never personal data, the
requester's justification or who decided. The feed is a compact JWS by the node's own key (``typ``
``cead-precedents+jwt``; ``iss`` its DID), so a follower knows which organisation decided what.

A node follows its peers' feeds (``config.yaml``: ``precedents: {follow: [https://peer.example/precedents]}``;
``cead precedents refresh``): each feed is fetched through the node's network settings, verified against the
peer's DID document and stored (``wallet_precedent``), replacing that peer's earlier copy. Nothing central is
involved.

``nearest(wallet, request)`` ranks every precedent, own and followed, against a request, offline: BM25 (``bm25s``)
over the words of its datasets, data items, purposes, bases and reasons, plus the structured overlap (Jaccard) of its
datasets, data items, purposes, bases and protocol kinds; the same requester asking for the same datasets and purposes again
(for example after a refusal) comes first. Results say why they are near. They are suggestions for the person
deciding, never a decision.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from datetime import datetime, timezone
from typing import Any, Iterable, Optional

from flask import Blueprint, Response
from sqlalchemy import Column, Text
from sqlmodel import Field, Session, SQLModel, select

from verifier.results import CeadError

FEED_TYP = "cead-precedents+jwt"
MAX_ITEMS = 2000            # the newest decisions a feed carries
MAX_FEED_BYTES = 4 * 1024 * 1024
DECIDED = ("approved", "refused")


class Precedent(SQLModel, table=True):
    """A decision summary from a followed peer's feed (this node's own decisions are read from wallet_request)."""
    __tablename__ = "wallet_precedent"
    id: str = Field(primary_key=True)                              # the summary's id
    source: str = Field(index=True)                                # the deciding node's DID
    feed_url: str
    summary: str = Field(sa_column=Column(Text, nullable=False))   # JSON
    fetched_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _kinds(protocol: Any) -> list[str]:
    items = protocol if isinstance(protocol, list) else [protocol] if protocol else []
    return sorted({p.get("kind") for p in items if isinstance(p, dict) and isinstance(p.get("kind"), str)})


def _approval_subject(row) -> dict:
    """The approval subject of an approved request (what was approved), from its stored delivery."""
    from verifier.jose import to_document, unverified_claims
    try:
        delivery = json.loads(row.delivery or "{}")
    except ValueError:
        return {}
    # the delivery is the approval followed by what it pins (wallet.sharing.approve)
    approval = delivery[0] if isinstance(delivery, list) and delivery else None
    try:
        doc = to_document(unverified_claims(approval), "vc") if isinstance(approval, str) else approval or {}
    except CeadError:
        doc = {}
    subject = doc.get("credentialSubject") if isinstance(doc, dict) else None
    return subject if isinstance(subject, dict) else {}


def summary_of(node_did: str, row) -> dict:
    """A decided request as a precedent: public metadata only."""
    request = row.request
    basis = request.get("lawfulBasis") if isinstance(request.get("lawfulBasis"), dict) else {}
    approved = _approval_subject(row) if row.status == "approved" else {}
    conditions = {k: approved[k] for k in ("retention", "maxRowsPerTransfer", "onwardSharing", "cadence",
                                           "coSigners", "minimumCellCount") if k in approved}
    bases = approved.get("lawfulBases")
    legal = [b for entry in (bases if isinstance(bases, list) else []) if isinstance(entry, dict)
             for b in (entry.get("legalBases") or [])] or list(basis.get("legalBases") or [])
    return {
        "id": "urn:cead:precedent:" + hashlib.sha256(f"{node_did} {row.id}".encode()).hexdigest()[:32],
        "decider": node_did, "requester": row.requester, "outcome": row.status,
        "decidedAt": _iso(row.decided_at), "datasets": sorted(request.get("datasets") or []),
        "dataItems": sorted(request.get("dataItems") or []), "purposes": sorted(request.get("purposes") or []),
        "legalBases": sorted(set(legal)), "regime": basis.get("regime"),
        "protocols": _kinds(approved.get("privacyProtocol")), "conditions": conditions,
        "reasons": (row.reason or "")[:2000] if row.status == "refused" else None,
    }


def own_precedents(wallet) -> list[dict]:
    from .store import WalletRequest
    with Session(wallet.engine) as s:
        rows = list(s.exec(select(WalletRequest).where(WalletRequest.status.in_(DECIDED))
                           .order_by(WalletRequest.decided_at.desc()).limit(MAX_ITEMS)))
    return [summary_of(wallet.holder, r) | {"_request": r.id, "_justification": r.request.get("justification")}
            for r in rows]


def _public(item: dict) -> dict:
    return {k: v for k, v in item.items() if not k.startswith("_")}


def feed(node, wallet, now: float | None = None) -> str:
    """This node's signed feed of its decisions."""
    from issuer.signing import sign_jwt
    claims = {"iss": node.did, "iat": int(now or time.time()),
              "items": [_public(i) for i in own_precedents(wallet)]}
    return sign_jwt(claims, *node.signer(), typ=FEED_TYP)


def read_feed(token: str, resolver) -> tuple[str, list[dict]]:
    """Verify a peer's feed; returns ``(its DID, its items)``; ``precedents.feed_invalid`` otherwise."""
    from verifier.did import split_did_url
    from verifier.jose import verify_jwt
    try:
        claims, kid = verify_jwt(token.strip(), resolver, FEED_TYP, "assertionMethod")
    except CeadError as exc:
        raise CeadError("precedents.feed_invalid", f"The precedents feed does not verify: {exc.message}") from None
    did = split_did_url(kid)[0]
    items = claims.get("items")
    if claims.get("iss") != did or not isinstance(items, list):
        raise CeadError("precedents.feed_invalid", "The feed's iss is not the DID that signed it, or it has no "
                        "items list.")
    good = [i for i in items if isinstance(i, dict) and isinstance(i.get("id"), str) and i.get("decider") == did]
    return did, good[:MAX_ITEMS]


def follows(node) -> list[str]:
    section = node.config.get("precedents") or {}
    urls = section.get("follow") if isinstance(section, dict) else None
    if urls is None:
        return []
    if not (isinstance(urls, list) and all(isinstance(u, str) and u.startswith("https://") for u in urls)):
        raise CeadError("node.config_invalid", "config.yaml precedents.follow: a list of https feed URLs.")
    return urls


def refresh(node, wallet, *, resolver=None) -> dict[str, Any]:
    """Fetch, verify and store every followed feed; returns ``{url: count or error}`` (one failing peer never stops
    the others; its earlier copy is kept)."""
    from verifier.did import Resolver
    fetcher = node.fetcher()
    fetcher.max_bytes = MAX_FEED_BYTES
    resolver = resolver or Resolver(fetcher)
    out: dict[str, Any] = {}
    for url in follows(node):
        try:
            body = fetcher.get(url, accept="application/jwt").body.decode("ascii")
            did, items = read_feed(body, resolver)
        except (CeadError, UnicodeDecodeError) as exc:
            out[url] = f"{getattr(exc, 'code', 'precedents.feed_invalid')}: {getattr(exc, 'message', str(exc))}"
            continue
        with Session(wallet.engine) as s:
            for old in s.exec(select(Precedent).where(Precedent.source == did)):
                s.delete(old)
            for item in items:
                s.add(Precedent(id=item["id"], source=did, feed_url=url, summary=json.dumps(item)))
            s.commit()
        out[url] = len(items)
    return out


def followed(wallet) -> list[dict]:
    with Session(wallet.engine) as s:
        return [json.loads(p.summary) for p in s.exec(select(Precedent))]


# ---- search ------------------------------------------------------------------------------------------------------

_WORD = re.compile(r"[A-Za-z][a-z]+|[A-Z]+(?![a-z])|\d+")


def _words(values: Iterable[Any]) -> list[str]:
    """Words of IRIs, compact names and text: ``cead:FreeSchoolMealAutoEnrolment`` -> free school meal auto ..."""
    out = []
    for value in values:
        if not isinstance(value, str):
            continue
        tail = re.split(r"[#/:]", value.rstrip("/#"))[-1] if value.startswith(("http", "cead:", "dpv:")) else value
        out += [w.lower() for w in _WORD.findall(tail.replace("-", " ").replace("_", " "))]
    return out


def _text(item: dict) -> list[str]:
    return _words([*item.get("datasets", []), *item.get("dataItems", []), *item.get("purposes", []),
                   *item.get("legalBases", []), *item.get("protocols", []), item.get("reasons") or "",
                   item.get("_justification") or ""])


def _jaccard(a: Iterable[str], b: Iterable[str]) -> float:
    a, b = set(a), set(b)
    return len(a & b) / len(a | b) if a | b else 0.0


def nearest(wallet, request: dict, *, k: int = 5, requester: str | None = None) -> list[dict]:
    """The ``k`` precedents nearest to ``request`` (a data-sharing request object), best first, each with
    ``score``, ``mine`` (this node decided it), ``shared`` (the datasets, data items, purposes, legal bases and
    protocol kinds it shares with the request, by kind), ``sameAsk`` (the same requester asked for the same
    datasets and purposes) and ``why`` (what they share, as identifiers: for the command line; pages say it with
    :func:`why_near`)."""
    import bm25s
    corpus = [dict(i, _mine=True) for i in own_precedents(wallet)] + [dict(i, _mine=False) for i in followed(wallet)]
    corpus = [i for i in corpus if i.get("_request") is None or i["_request"] != request.get("_id")]
    if not corpus:
        return []
    basis = request.get("lawfulBasis") if isinstance(request.get("lawfulBasis"), dict) else {}
    query = {"datasets": request.get("datasets") or [], "dataItems": request.get("dataItems") or [],
             "purposes": request.get("purposes") or [], "legalBases": basis.get("legalBases") or [],
             "protocols": _kinds(request.get("privacyProtocol")), "_justification": request.get("justification")}
    texts = [" ".join(_text(i) or ["none"]) for i in corpus]
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    terms = _text(query) or ["none"]
    docs, scores = retriever.retrieve(bm25s.tokenize([" ".join(terms)], stopwords="en", show_progress=False),
                                      k=len(corpus), show_progress=False)
    lexical = {int(d): float(s) for d, s in zip(docs[0], scores[0])}
    top = max(lexical.values()) or 1.0
    ranked = []
    for n, item in enumerate(corpus):
        shared = {name: sorted(set(query[name]) & set(item.get(name, []))) for name in
                  ("datasets", "dataItems", "purposes", "legalBases", "protocols")}
        structured = sum(_jaccard(query[name], item.get(name, [])) for name in shared) / len(shared)
        same_ask = bool(requester and item.get("requester") == requester and shared["datasets"]
                        and set(query["datasets"]) == set(item.get("datasets", []))
                        and set(query["purposes"]) == set(item.get("purposes", [])))
        score = 0.5 * lexical.get(n, 0.0) / top + 0.5 * structured + (1.0 if same_ask else 0.0)
        why = [f"same {name}: {', '.join(v[:3])}" for name, v in shared.items() if v]
        if same_ask:
            why.insert(0, "the same requester asked for the same datasets and purposes")
        ranked.append({"score": round(score, 3), "mine": item["_mine"], "why": why, "sameAsk": same_ask,
                       "shared": {name: v for name, v in shared.items() if v}, **_public(item)})
    ranked.sort(key=lambda r: -r["score"])
    return [r for r in ranked if r["score"] > 0][:k]


# ---- why a precedent is near, in words ------------------------------------------------------------------------

# what each kind of shared term is called, one and several
SHARED_WORDS = {"datasets": ("the same dataset", "the same datasets"),
                "dataItems": ("the same column", "the same columns"),
                "purposes": ("the same purpose", "the same purposes"),
                "legalBases": ("the same lawful basis", "the same lawful bases"),
                "protocols": ("the same kind of privacy protocol", "the same kinds of privacy protocol")}
# a privacy protocol's kind in words (the summary carries the kind only, not its parameters)
PROTOCOL_KIND_WORDS = {"threshold": "counts with a minimum cell count", "dominance": "a dominance rule",
                       "differentialPrivacy": "differential privacy", "secureAggregation": "secure aggregation",
                       "psiCardinality": "a private set intersection count",
                       "pseudonymisation": "pseudonymised records",
                       "treOnly": "a trusted research environment only", "rounding": "rounding",
                       "cellKeyPerturbation": "cell key perturbation"}
SHOWN = 3       # the shared terms of each kind named (the others counted)


def why_near(item: dict, names) -> list[dict]:
    """Why a precedent from :func:`nearest` is near, in words for the person deciding: each reason's ``text``
    ("the same dataset (School meals register)"), with the datasets, purposes and lawful bases by the names
    ``names`` (a ``wallet.names.Directory``) knows, and their ``identifiers`` (those whose name is not the
    identifier itself) for a disclosure beside it. Columns are named as the request names them; a protocol by its
    kind in words."""
    out = []
    if item.get("sameAsk"):
        out.append({"text": "the same organisation asked for the same datasets for the same purposes",
                    "identifiers": []})
    for kind, values in (item.get("shared") or {}).items():
        if kind not in SHARED_WORDS or not values:
            continue
        if kind in ("datasets", "purposes", "legalBases"):
            named = [names.name(v) for v in values]
            labels = [n.label for n in named]
            identifiers = [n.iri for n in named[:SHOWN] if n.iri != n.label]
        else:
            labels = [PROTOCOL_KIND_WORDS.get(v, v) for v in values] if kind == "protocols" else list(values)
            identifiers = []
        shown = ", ".join(labels[:SHOWN]) + (f" and {len(labels) - SHOWN} more" if len(labels) > SHOWN else "")
        out.append({"text": f"{SHARED_WORDS[kind][len(values) > 1]} ({shown})", "identifiers": identifiers})
    return out


def blueprint(node, wallet) -> Blueprint:
    """``GET /precedents``: this node's signed feed (public)."""
    bp = Blueprint("precedents", __name__)

    @bp.get("/precedents")
    def precedents():
        return Response(feed(node, wallet), mimetype="application/jwt",
                        headers={"Cache-Control": "public, max-age=300"})

    return bp
