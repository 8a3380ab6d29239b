"""Public endpoints of a node's log and witness (no authentication: everything here is public by design).

``GET /log/checkpoint``                 the newest signed checkpoint (C2SP tlog-checkpoint, text/plain; ETag)
``GET /log/witnessed-checkpoint``       the newest checkpoint that carries cosignatures (what gateways check; ETag)
``GET /log/tile/<L>/<N>[.p/<W>]``       hash tiles, ``GET /log/tile/entries/<N>[.p/<W>]`` entry bundles
                                        (C2SP tlog-tiles; full tiles are immutable)
``GET /log/checkpoints``                every checkpoint signed so far, with the cosignatures gathered (JSON)
``GET /log/evidence?digest=<hex>``      the entry naming a digest, its inclusion proof and checkpoint (JSON)
``GET /log/proof/consistency?old=&new=`` a consistency proof (JSON, base64 hashes)
``GET /log/transfers``                  a page: every logged decision, grouped by the approval it was made under
``POST /witness/add-checkpoint``        the witness endpoint (C2SP tlog-witness)
``POST /witness/add-key``               a watched log hands the witness over to its new key (a Cead extension)
"""
from __future__ import annotations

import base64
import json
import re

from flask import Blueprint, Response, request

from verifier.results import CeadError

from . import record, witness

MAX_WITNESS_BODY = 64 * 1024


def blueprint(node) -> Blueprint:
    bp = Blueprint("cead_evidence", __name__)

    def log():
        return record.log_of(node)

    def text(body: str, status: int = 200, content_type: str = "text/plain; charset=utf-8", cache: str = "no-store"):
        return Response(body, status=status, content_type=content_type, headers={"Cache-Control": cache})

    def as_json(body) -> Response:
        return Response(json.dumps(body, separators=(",", ":")), mimetype="application/json",
                        headers={"Cache-Control": "no-store"})

    def note(body: str) -> Response:
        """A checkpoint note, revalidated by ETag (a gateway's cache asks If-None-Match and gets a bodiless 304
        while the note, cosignatures included, is unchanged)."""
        import hashlib
        response = text(body, cache="no-cache")
        response.set_etag(hashlib.sha256(body.encode()).hexdigest()[:32])
        return response.make_conditional(request)

    @bp.get("/log/checkpoint")
    def checkpoint():
        return note(log().checkpoint())

    @bp.get("/log/witnessed-checkpoint")
    def witnessed_checkpoint():
        return note(log().latest_cosigned() or log().checkpoint())

    @bp.get("/log/checkpoints")
    def checkpoints():
        return as_json({"origin": log().origin, "checkpoints": log().checkpoints()})

    @bp.get("/log/tile/<path:rest>")
    def tile(rest: str):
        data = log().tile("tile/" + rest)
        full = ".p/" not in rest
        return Response(data, content_type="application/octet-stream",
                        headers={"Cache-Control": "public, max-age=31536000, immutable" if full else "no-store"})

    @bp.get("/log/evidence")
    def evidence():
        digest = request.args.get("digest", "")
        kind = request.args.get("kind") or None
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise CeadError("request.invalid", "Give ?digest= as 64 lower-case hex digits (a SHA-256).")
        return as_json(log().evidence(digest, kind))

    @bp.get("/log/proof/consistency")
    def consistency():
        try:
            old, new = int(request.args.get("old", "")), int(request.args.get("new", ""))
        except ValueError:
            raise CeadError("request.invalid", "Give ?old= and ?new= as tree sizes.") from None
        return as_json({"old": old, "new": new,
                        "proof": [base64.b64encode(h).decode() for h in log().consistency_proof(old, new)]})

    @bp.get("/log/transfers")
    def transfers():
        """A printable page: every decision this node's gateway logged, grouped by the approval it was made under
        (from the public log: nothing here is not already in /log/), in the look of the node's other pages: on a
        phone each decision is a box, each value under its column's name (``cead-boxes``, issuer/static/cead.css)."""
        from flask import render_template
        from markupsafe import Markup
        from ..pages import CSP
        from .log import decode_entry
        from .report import named, transfers_table, without_presentation
        groups: dict[tuple[int, str | None], list[dict]] = {}
        for index, data in log().entries(kind=record.RECEIPT):
            entry = decode_entry(data)
            meta = entry["meta"]
            key = (0, meta["approval"]) if meta.get("approval") else (2 if without_presentation(meta) else 1, None)
            groups.setdefault(key, []).append({**entry, "index": index})
        kinds = {0: "approval", 1: "refused", 2: "probe"}
        name = named(page_names(node))       # an organisation or a dataset by name where the node knows one
        ordered = [(kinds[rank], approval, Markup(transfers_table(rows, name, boxes=True)))   # escaped inside
                   for (rank, approval), rows in sorted(groups.items(), key=lambda item: item[0][0])]
        page = render_template("cead_transfers.html", did=node.did, groups=ordered)
        return Response(page, mimetype="text/html", headers={
            "Cache-Control": "no-store", "Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin"})

    def page_names(node):
        """``value -> name or None`` for the public page of transfers: with the wallet mounted, the names the node's
        pages use (``CEAD_DIRECTORY``: its own name, ``names.json``, catalogues, certifications from certifiers it
        trusts; ``known_publicly``, never a person's name from a delegation); the issuer alone, its own name and
        ``HOME/names.json`` (the shape ``cead audit --names`` takes)."""
        from flask import current_app
        from schemas import vocab
        make = current_app.config.get("CEAD_DIRECTORY")
        if make is not None:
            return make().known_publicly
        try:
            data = json.loads((node.home / "names.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        names = {vocab.expand(k): v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)} \
            if isinstance(data, dict) else {}
        names[node.did] = node.name
        return lambda value: names.get(vocab.expand(value)) or names.get(value)

    @bp.post("/witness/add-checkpoint")
    def add_checkpoint():
        body = request.get_data(cache=False)
        if len(body) > MAX_WITNESS_BODY:
            return text("Request too large.\n", 413)
        answer = witness.add_checkpoint(node, body)
        return text(answer.body, answer.status, answer.content_type)

    @bp.post("/witness/add-key")
    def add_key():
        body = request.get_data(cache=False)
        if len(body) > MAX_WITNESS_BODY:
            return text("Request too large.\n", 413)
        answer = witness.add_key(node, body)
        return text(answer.body, answer.status, answer.content_type)

    return bp
