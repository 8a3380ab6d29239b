"""The issuer's HTTP API (Flask app factory).

Public: ``GET /.well-known/did.json`` (and ``/<path>/did.json`` for a path did:web), ``GET /status/<id>`` (the
signed status list credential, with ``Cache-Control`` and ``ETag``; ``If-None-Match`` -> 304).
Bearer token: ``POST /credentials/issue`` (VC-API; 201 with ``{"verifiableCredential": ...}``) and
``POST /credentials/status`` (VC-API; revoke, suspend, reinstate; committed before the reply).
Every error is JSON ``{"error": {"code", "message"}}`` with a 4xx status; never a stack trace.
"""
from __future__ import annotations

import json
import logging

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from schemas.values import strict_json
from verifier.results import CeadError
from verifier.serving import read_bounded

from . import catalogue, idempotency, issuing, offers, oid4vp, pages, statuslist, tokens

MAX_BODY = 256 * 1024
RETRY_AFTER = 5   # seconds a client is asked to wait after a 503 (the database did not answer within its bounds)
log = logging.getLogger("cead.issuer")


def _json(status: int, body: dict, headers: dict | None = None) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status=status, headers=headers or {},
                    mimetype="application/json")


def _error(status: int, code: str, message: str, detail: dict | None = None,
           headers: dict | None = None) -> Response:
    err = {"code": code, "message": message}
    if detail:
        err["detail"] = detail
    if status == 503 and not (headers or {}).get("Retry-After"):   # a 503 always says when to come back
        headers = {**(headers or {}), "Retry-After": str(RETRY_AFTER)}
    return _json(status, {"error": err}, headers)


def create_app(node, *, max_body: int = MAX_BODY, cache_seconds: int = 60) -> Flask:
    app = Flask("cead.issuer")
    app.config["MAX_CONTENT_LENGTH"] = max_body
    app.config["CEAD_NODE"] = node

    @app.errorhandler(CeadError)
    def _cead_error(exc: CeadError):
        status = issuing.VC_API_STATUS.get(exc.code, 400)
        if exc.code == "status.list_not_ready":
            return _error(503, exc.code, exc.message,
                          headers={"Retry-After": str(exc.detail.get("retry_after", RETRY_AFTER))})
        if status >= 500:
            log.error("issuer error %s: %s", exc.code, exc.message)
            return _error(status, exc.code, "The issuer cannot sign right now; see the node's log.")
        return _error(status, exc.code, exc.message, dict(exc.detail) or None)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        codes = {404: "request.not_found", 405: "request.method_not_allowed", 413: "request.too_large"}
        message = f"The request body is larger than {max_body} bytes." if exc.code == 413 else exc.description
        return _error(exc.code or 400, codes.get(exc.code, "request.invalid"), message)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        from . import db
        if db.is_database_error(exc):
            coded = db.database_error(exc)
            log.error("issuer database error %s: %s", coded.code, coded.message)
            if coded.code == "db.unavailable":
                return _error(503, coded.code, "The node's database is unavailable or did not answer in time. "
                              "Try again later; an issuing request retried with the same Idempotency-Key returns "
                              "its credential if it was stored.")
        log.exception("unexpected error in the issuer API")
        return _error(500, "server.error", "Unexpected error; nothing was signed or stored.")

    def read_body() -> bytes:
        """The request body, at most ``max_body`` bytes (413 ``request.too_large`` beyond). A body without a
        Content-Length (chunked) is read from the stream up to one byte past the limit: Werkzeug would cut it at
        the limit without saying so, and the cut JSON would be reported as malformed."""
        environ = request.environ
        if request.content_length is None and environ.get("wsgi.input_terminated"):
            body = read_bounded(environ["wsgi.input"], max_body)
            if body is None:
                raise RequestEntityTooLarge()
            return body
        return request.get_data(cache=False)   # Content-Length over the limit: 413 from Werkzeug

    def body_json() -> dict:
        if not request.is_json:
            raise CeadError("request.content_type", "Send the body as application/json.")
        try:
            data = strict_json(read_body() or b"", "the request body")
        except (ValueError, UnicodeDecodeError):
            raise CeadError("request.malformed_json", "The request body is not valid JSON.") from None
        except RecursionError:
            raise CeadError("request.malformed_json", "The request body is JSON nested too deeply.") from None
        if not isinstance(data, dict):
            raise CeadError("request.invalid", "The request body must be a JSON object.")
        return data

    def did_document():
        return _json(200, node.did_document(), {"Cache-Control": f"public, max-age={cache_seconds}"})

    app.add_url_rule("/.well-known/did.json", "did", did_document)
    if node.config.get("path"):
        app.add_url_rule(f"/{node.config['path'].strip('/')}/did.json", "did_path", did_document)

    @app.get("/status/<int:list_id>")
    def status_list(list_id: int):
        published = statuslist.publish(node, list_id)
        headers = {"ETag": published.etag, "Cache-Control": f"public, max-age={cache_seconds}, must-revalidate"}
        if published.etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
            return Response(status=304, headers=headers)
        return Response(published.body, status=200, headers=headers, mimetype=published.media_type)

    @app.post("/credentials/issue")
    def issue():
        token = tokens.authenticate(node.engine, request.headers.get("Authorization"))
        body = body_json()
        if "credential" not in body:
            raise CeadError("request.invalid", "The request needs a 'credential' object.", field="credential")
        issued = issuing.issue(node, body["credential"], body.get("options"), issued_by=token.name,
                               scopes=token.scopes.split(","),
                               idempotency_key=request.headers.get(idempotency.HEADER))
        return _json(201, issued.response(), {"Idempotent-Replayed": "true"} if issued.replayed else None)

    @app.post("/credentials/status")
    def status():
        token = tokens.authenticate(node.engine, request.headers.get("Authorization"))
        tokens.require(token, "status:change")
        credential_id, action = issuing.parse_status_request(body_json())
        return _json(200, issuing.change_status(node, credential_id, action, by=token.name,
                                                scopes=token.scopes.split(",")))

    from .evidence import routes as evidence_routes
    app.register_blueprint(evidence_routes.blueprint(node))   # /log/ (C2SP tlog-tiles) and /witness/ (issue 15)
    app.register_blueprint(offers.blueprint(node))  # OID4VCI: a person's wallet collects an offered credential
    app.register_blueprint(catalogue.blueprint(node))   # the approvals in force per dataset, for catalogues
    app.register_blueprint(oid4vp.blueprint(node))  # OID4VP: a person's wallet answers this node's request
    app.register_blueprint(pages.blueprint(node))   # the landing page and the DPO's pages (HTML)
    from .ledger import blueprint as ledger_blueprint
    app.register_blueprint(ledger_blueprint(node, body_json))   # the privacy-budget ledger, for local gateways
    return app
