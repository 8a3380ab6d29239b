"""A recipient's ingest endpoint (e.g. a Scottish Government collection for data returns): ``POST
/ingest/<collection>?release=<id>`` with the release as the body, decided by the recipient's own gateway
(``CeadMiddleware``: the presenting provider must hold an approval naming it for the collection's dataset) before
anything is stored. Each accepted release is written to ``<store>/<collection>/<release>.csv``; the answer carries
the gateway's decision receipt (``Cead-Receipt``) when its trust policy names a receipt key.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from werkzeug.wrappers import Request, Response

from verifier.decision import DECISION_HEADER
from verifier.middleware import ENVIRON_KEY, CeadMiddleware

from .sources import RELEASE_ID

COLLECTION = re.compile(r"^/ingest/([a-z0-9][a-z0-9-]{0,62})$")


def ingest_app(decider, collections: dict[str, str], store: str | Path, *, public_url=None):
    """A WSGI app: ``collections`` maps a collection name to the dataset IRI its gateway checks approvals for."""
    store = Path(store)

    def route(environ):
        match = COLLECTION.match(environ.get("PATH_INFO", ""))
        return match.group(1) if match and match.group(1) in collections else None

    def app(environ, start_response):
        request = Request(environ)
        name = route(environ)
        release = request.args.get("release", "")
        if not RELEASE_ID.match(release):
            body = {"problems": [{"code": "provider.release_not_found", "message": "Name the release: ?release=ID."}]}
            return Response(json.dumps(body), status=400, mimetype="application/json")(environ, start_response)
        decision = environ[ENVIRON_KEY]
        folder = store / name
        folder.mkdir(parents=True, exist_ok=True)
        data = request.get_data()
        partial = folder / f".{release}.part"
        partial.write_bytes(data)
        os.replace(partial, folder / f"{release}.csv")      # stored whole or not at all
        headers = {DECISION_HEADER: "allow"}   # the gateway (CeadMiddleware) adds its receipt to the answer itself
        answer = {"received": len(data), "collection": name, "release": release, "approval": decision.approval_id,
                  "from": decision.holder}
        return Response(json.dumps(answer), status=201, mimetype="application/json", headers=headers)(
            environ, start_response)

    gated = CeadMiddleware(app, decider, dataset_for=lambda environ: collections[route(environ)],
                           public_url=public_url)

    def outer(environ, start_response):
        if route(environ) is None or environ["REQUEST_METHOD"].upper() != "POST":
            body = {"problems": [{"code": "request.not_found", "message": "POST /ingest/<collection> only."}]}
            return Response(json.dumps(body), status=404, mimetype="application/json")(environ, start_response)
        return gated(environ, start_response)

    return outer
