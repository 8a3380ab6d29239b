"""The verifier HTTP service behind `cead verifier serve`: VC-API verification and gateway authorization.

Endpoints (no database, no private key; a receipt key is optional):

- ``POST /credentials/verify`` and ``POST /presentations/verify``: VC-API. Check any issuer's credential or
  presentation generically (proofs, validity period, status; ``options.challenge`` and ``options.domain`` for a
  presentation). No trust policy is applied. 200 when verified, 400 otherwise, with
  ``{"verified", "checks", "warnings", "errors", "problemDetails"}``.
- ``GET|POST|... /authz``: nginx ``auth_request``. The original request comes from ``X-Original-Method``,
  ``X-Original-URI``, ``X-Original-Host`` and ``X-Original-Proto``; the presentation from ``Cead-Presentation``
  (or ``Authorization: VP ...``). 200 allow, 401 no presentation, 403 deny; reasons in ``Cead-Decision-Reasons``.
- ``ANY /envoy/<path>``: Envoy ``ext_authz`` in HTTP mode (configure ``path_prefix: /envoy``); the original
  path follows the prefix, the host is the ``Host`` header and the scheme ``X-Forwarded-Proto``. 200 or 403.
- ``GET /presentation-definition?dataset=IRI[&purpose=IRI]``: what a pipeline must present for that dataset,
  ``{"dataset", "purpose"?, "presentation_definition"}`` (DIF Presentation Exchange 2.0); 400 for a missing or bad
  IRI, 404 for a dataset the trust policy names no controller for, with ``{"problems": [...]}``.
- ``ANY /proxy/<original target>`` (with ``--upstream URL``): the checking reverse proxy (``verifier.proxy``): the
  request is decided as the middleware decides it, forwarded to the data API, and its answer checked against the
  approval (minimum cell count, pseudonymisation...) before it is returned; a failing table is replaced by a 403.
  For pulls under a threshold behind nginx or Envoy, which cannot give ``/authz`` the response.
- ``GET /metrics`` (Prometheus text format) and ``GET /healthz``.

See docs/gateway.md for nginx and Envoy configuration.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

from flask import Flask, Response, current_app, request
from werkzeug.datastructures import EnvironHeaders
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wsgi import get_host

from schemas.values import strict_json

from .decision import Decider
from .gateway import decide_from_headers, decision_headers, nginx_authz
from .definition import publish
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE, Metrics
from .proxy import PREFIX as PROXY_PREFIX, CheckingProxy
from .results import CeadError, Problem, VerificationResult

log = logging.getLogger(__name__)

MAX_BODY = 2 * 1024 * 1024      # VC-API request bodies and forwarded (Envoy) bodies
ENVOY_PREFIX = "/envoy"


def _json(status: int, body: dict, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status=status, headers=headers or {},
                    mimetype="application/json")


# ---- VC-API result shape ---------------------------------------------------------------------------------------

_CHECKS = ("proof", "validity", "status")
# problems that mean the input is no presentation Cead can read (VC-API's 400), not a failed verification
UNREADABLE = frozenset({"presentation.malformed", "jose.malformed", "encoding.invalid"})


def vc_api_result(result: VerificationResult, extra_checks: tuple[str, ...] = ()) -> dict:
    """A VC-API verification response: the checks made, warnings, errors (and ProblemDetails)."""
    errors = [p.to_dict() for p in result.problems]
    for i, cred in enumerate(result.credentials):
        errors += [{**p.to_dict(), "credential": i} for p in cred.problems]
    return {
        "verified": result.verified,
        "checks": [*_CHECKS, *extra_checks],
        "warnings": [p.to_dict() for p in result.warnings],
        "errors": errors,
        "problemDetails": [{"type": f"urn:cead:problem:{e['code']}", "title": e["code"], "detail": e["message"]}
                           for e in errors],
    }


# ---- the views (URL rules in create_app) -----------------------------------------------------------------------

SERVICE = "cead_verifier"       # the key in app.extensions


@dataclass(frozen=True)
class Service:
    """What the service's views work on, kept in ``app.extensions["cead_verifier"]`` by :func:`create_app` and read
    through :func:`service` while handling a request."""
    decider: Decider
    envoy_prefix: str
    metrics: Metrics    # the decider's metrics as the app was made: what GET /metrics renders


def service() -> Service:
    """What the app handling the current request verifies and decides with."""
    return current_app.extensions[SERVICE]


def bad_request(message: str, code: str = "request.invalid") -> Response:
    problem = {"code": code, "message": message}
    return _json(400, {"verified": False, "checks": [], "warnings": [], "errors": [problem],
                       "problemDetails": [{"type": f"urn:cead:problem:{code}", "title": code, "detail": message}]})


def body_json() -> dict:
    try:
        data = strict_json(request.get_data(cache=False), "the request body")
    except (ValueError, UnicodeDecodeError):
        data = None
    except RecursionError:
        raise CeadError("request.invalid", "The request body is JSON nested too deeply.") from None
    if not isinstance(data, dict):
        raise CeadError("request.invalid", "The request body must be a JSON object.")
    options = data.get("options", {})
    if options is not None and not isinstance(options, dict):
        raise CeadError("request.invalid", "'options' must be a JSON object.")
    return data


def verify_credential():
    try:
        data = body_json()
        if "verifiableCredential" not in data:
            raise CeadError("request.invalid", "The body needs 'verifiableCredential'.")
        credential = data["verifiableCredential"]   # an EnvelopedVerifiableCredential is unwrapped by the verifier
        if not isinstance(credential, dict):
            # VC-API: a credential is a JSON object; a JWT travels as an EnvelopedVerifiableCredential
            raise CeadError("request.invalid", "'verifiableCredential' must be a JSON object; send a vc+jwt as "
                            "{\"@context\": \"https://www.w3.org/ns/credentials/v2\", \"type\": "
                            "\"EnvelopedVerifiableCredential\", \"id\": \"data:application/vc+jwt,<jwt>\"}.")
    except CeadError as exc:
        return bad_request(exc.message, exc.code)
    result = service().decider.verify_credential(credential)
    return _json(200 if result.verified else 400, vc_api_result(result))


def verify_presentation():
    try:
        data = body_json()
        options = data.get("options") or {}
        challenge, domain = options.get("challenge"), options.get("domain")
        if not all(v is None or isinstance(v, str) for v in (challenge, domain)):
            raise CeadError("request.invalid", "options.challenge and options.domain must be strings.")
        if "verifiablePresentation" in data:
            vp = data["verifiablePresentation"]   # so is an EnvelopedVerifiablePresentation
            if not isinstance(vp, (dict, str)):
                raise CeadError("request.invalid", "'verifiablePresentation' must be a JSON object (or an "
                                "EnvelopedVerifiablePresentation around a vp+jwt).")
        elif isinstance(data.get("presentation"), dict):  # proofless: verify the credentials only
            vp = None
        else:
            raise CeadError("request.invalid", "The body needs 'verifiablePresentation' (or 'presentation').")
    except CeadError as exc:
        return bad_request(exc.message, exc.code)
    # VC-API (VCALM): 200 whenever the verification ran, whatever it found (``verified`` says); 400 only for
    # input that could not be verified at all: not a presentation, or not one in any form Cead reads
    decider = service().decider
    if vp is None:
        result, extra = decider.verify_proofless(data["presentation"]), ()
    else:
        result = decider.verify_presentation(vp, challenge=challenge, domain=domain)
        extra = tuple(name for name, v in (("challenge", challenge), ("domain", domain)) if v is not None)
    unreadable = any(p.code in UNREADABLE for p in result.problems)
    return _json(400 if unreadable else 200, vc_api_result(result, extra))


def nginx_authz_route():   # answered by AuthzEndpoint in front of Flask; here for Flask's 405s and url_map
    status, decision = nginx_authz(service().decider, request.headers, request.scheme, request.host)
    return _json(status, decision.to_dict(), decision_headers(decision))


def envoy_authz(path: str):
    envoy_prefix = service().envoy_prefix
    original = request.full_path if request.query_string else request.path
    uri = original[len(envoy_prefix):] or "/"
    proto = request.headers.get("X-Forwarded-Proto", request.scheme)
    body = request.get_data(cache=False) or None
    status, decision = decide_from_headers(service().decider, request.headers, request.method,
                                           f"{proto}://{request.host}{uri}", body)
    return _json(status, decision.to_dict(), decision_headers(decision))


def presentation_definition():
    decider = service().decider
    try:
        if any(len(request.args.getlist(name)) > 1 for name in ("dataset", "purpose")):
            raise CeadError("definition.query_invalid", "Give one dataset and at most one purpose.")
        published = publish(decider.policy, request.args.get("dataset"), request.args.get("purpose"),
                            vocabulary=decider.vocabulary)
    except CeadError as exc:
        status = 404 if exc.code == "definition.dataset_unknown" else 400
        return _json(status, {"problems": [exc.problem.to_dict()]})
    return _json(200, published)


def metrics_endpoint():
    return Response(service().metrics.render(), mimetype=None, headers={"Content-Type": METRICS_CONTENT_TYPE})


def healthz():
    return _json(200, {"status": "ok", "time": int(time.time())})


def http_error(exc: HTTPException):
    """Every HTTP error (unknown path, method not served, body too large) is JSON with a stable code."""
    if exc.code == 413:
        return bad_request(f"The request body is larger than {MAX_BODY} bytes.", "request.too_large")
    codes = {404: "request.not_found", 405: "request.method_not_allowed"}
    return _json(exc.code or 400, {"problems": [{"code": codes.get(exc.code, "request.invalid"),
                                                 "message": exc.description or exc.name}]},
                 {k: v for k, v in exc.get_headers() if k == "Allow"})


def unexpected(exc: Exception):
    """A bug: JSON, never a stack trace; nothing is allowed (the gateway endpoints decide in a guard)."""
    log.exception("unexpected error in the verifier service")
    return _json(500, {"problems": [{"code": "verifier.internal_error",
                                     "message": "Unexpected error in the verifier; see its log."}]})


# ---- the app ---------------------------------------------------------------------------------------------------

ENVOY_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def create_app(decider: Decider, *, envoy_prefix: str = ENVOY_PREFIX, upstream: str | None = None,
               upstream_ca: str | None = None, proxy_prefix: str = PROXY_PREFIX) -> Flask:
    """The service. ``upstream`` (the data API's base URL) turns on the checking reverse proxy at ``proxy_prefix``
    (``verifier.proxy``): requests there are decided, forwarded and their answers checked before they leave."""
    app = Flask("cead-verifier")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    # never answer a gateway with a redirect to this service's own URLs (werkzeug merges "//" with a 308): an
    # original path with "//" in it is a 404 (which Envoy treats as a denial), never a Location to follow
    app.url_map.merge_slashes = False
    app.extensions[SERVICE] = Service(decider, envoy_prefix, decider.metrics)
    app.add_url_rule("/credentials/verify", view_func=verify_credential, methods=["POST"])
    app.add_url_rule("/presentations/verify", view_func=verify_presentation, methods=["POST"])
    app.add_url_rule("/authz", view_func=nginx_authz_route, methods=sorted(AUTHZ_METHODS))
    app.add_url_rule(f"{envoy_prefix}/<path:path>", view_func=envoy_authz, methods=ENVOY_METHODS)
    app.add_url_rule(f"{envoy_prefix}/", view_func=envoy_authz, defaults={"path": ""}, methods=ENVOY_METHODS)
    app.add_url_rule("/presentation-definition", view_func=presentation_definition, methods=["GET"])
    app.add_url_rule("/metrics", view_func=metrics_endpoint, methods=["GET"])
    app.add_url_rule("/healthz", view_func=healthz, methods=["GET"])
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected)
    # the checking reverse proxy (for pulls whose table must be checked behind nginx or Envoy): in front of Flask,
    # so that the forwarded request and answer are streamed as they are, with the middleware's limits
    app.wsgi_app = CheckingProxy(AuthzEndpoint(app.wsgi_app, decider), decider, upstream, prefix=proxy_prefix,
                                 ca_bundle=upstream_ca)
    return app


AUTHZ_PATH = "/authz"
AUTHZ_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_INTERNAL_ERROR = json.dumps({"problems": [{"code": "verifier.internal_error",
                                            "message": "Unexpected error in the verifier; see its log."}]},
                             separators=(",", ":")).encode()


class AuthzEndpoint:
    """WSGI, in front of Flask: ``/authz`` (nginx ``auth_request``, one request per transfer) answered straight from
    the environ, the same answer Flask's route gives (:func:`verifier.gateway.nginx_authz`: status, JSON body,
    decision headers; no body for HEAD) without Flask's request context, URL matching and response object, which
    cost about a third as much as the decision itself (docs/performance.md). Any other path or method goes on to
    ``app``. An unexpected error is a 500 with a JSON problem, as the service's error handler answers."""

    def __init__(self, app, decider: Decider):
        self.app, self.decider = app, decider

    def __call__(self, environ, start_response):
        method = environ.get("REQUEST_METHOD")
        if environ.get("PATH_INFO") != AUTHZ_PATH or method not in AUTHZ_METHODS:
            return self.app(environ, start_response)
        try:
            status, decision = nginx_authz(self.decider, EnvironHeaders(environ), environ["wsgi.url_scheme"],
                                           get_host(environ))
            body = json.dumps(decision.to_dict(), separators=(",", ":")).encode()
            extra = decision_headers(decision)
        except Exception:   # a bug: JSON, never a stack trace; nothing is allowed
            log.exception("unexpected error in the verifier service")
            status, body, extra = 500, _INTERNAL_ERROR, {}
        start_response(f"{status} {HTTP_STATUS_CODES[status].upper()}",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *extra.items()])
        return [] if method == "HEAD" else [body]


__all__ = ["create_app", "vc_api_result"]
