"""WSGI middleware that puts the transfer decision in front of any Flask/WSGI data API.

    app.wsgi_app = CeadMiddleware(app.wsgi_app, decider, dataset_for=lambda environ: DATASET_IRI)

Before the app runs, every request is decided (``verifier.decision.Decider``): without a presentation it is
answered 401, when denied 403, both with a JSON body listing every reason. The 401 also publishes what to present:
``presentation_definition`` (DIF Presentation Exchange 2.0, ``verifier.definition``) for the endpoint's dataset.
When allowed, the decision is at ``environ["cead.decision"]`` for the app to log. For approvals whose privacy
protocol constrains aggregate outputs, the response body is checked before it leaves and replaced by a 403 if it
fails.
"""
from __future__ import annotations

import io
import json
from http import HTTPStatus
import logging
from typing import Callable, Iterable
from urllib.parse import parse_qs

from werkzeug.datastructures import EnvironHeaders
from werkzeug.wsgi import get_current_url

from .decision import PUSH_METHODS, Decider, Decision
from .gateway import RECEIPT_HEADER, decide_from_headers, decision_headers
from .receipts import seal_payload
from .definition import publish
from .results import CeadError, Problem
from .serving import read_bounded

log = logging.getLogger(__name__)

ENVIRON_KEY = "cead.decision"
MAX_BODY = 16 * 1024 * 1024


def _json_response(start_response, status: int, decision: Decision, extra: dict[str, str] | None = None,
                   published: dict | None = None):
    body = json.dumps({**decision.to_dict(), **(published or {})}, separators=(",", ":")).encode()
    phrase = HTTPStatus(status).phrase   # 401, 403, 413, and 503 when the replay guard cannot record
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
               *decision_headers(decision).items(), *(extra or {}).items()]
    start_response(f"{status} {phrase}", headers)
    return [body]


def request_url(environ: dict) -> str:
    """The URL the client used, for the request binding: werkzeug's rebuilt scheme, host and path, and the query
    string exactly as it arrived (``QUERY_STRING`` is never decoded by the server; re-encoding it, as
    ``get_current_url`` does, would turn ``since=2026-01-01T00%3A00%3A00Z`` into another URL than the one the
    client bound its presentation to)."""
    query = environ.get("QUERY_STRING", "")
    return get_current_url(environ, strip_querystring=True) + (f"?{query}" if query else "")


class CeadMiddleware:
    """Decide each request before ``app`` sees it.

    ``dataset_for(environ)`` names the dataset IRI the requested endpoint serves (None: take it from the
    transfer manifest); ``public_url(environ)`` gives the URL the client used when the app sits behind a proxy
    (default: the URL rebuilt from the WSGI environ); ``push_for(environ)`` says whether the endpoint receives the
    table in the request body (default: POST, PUT and PATCH do) — an endpoint that answers a POST query with a
    table must say False here, or its response would not be checked.
    """

    def __init__(self, app, decider: Decider, *, dataset_for: Callable[[dict], str | None] | None = None,
                 check_response_payload: bool = True, public_url: Callable[[dict], str] | None = None,
                 max_body: int = MAX_BODY, push_for: Callable[[dict], bool] | None = None):
        self.app = app
        self.decider = decider
        self.dataset_for = dataset_for
        self.check_response_payload = check_response_payload
        self.public_url = public_url or request_url
        self.max_body = max_body
        self.push_for = push_for or (lambda environ: environ["REQUEST_METHOD"].upper() in PUSH_METHODS)

    def _read_body(self, environ) -> bytes | None:
        if environ.get("wsgi.input_terminated") and "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            # a chunked body has no Content-Length: read it to its end (bounded), so that it is bound and checked
            # like any other body instead of passing as "no body" while the app still reads it
            body = read_bounded(environ["wsgi.input"], self.max_body)
            if body is None:
                raise OverflowError
            environ["wsgi.input"] = io.BytesIO(body)
            return body or None
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length <= 0:
            return None
        if length > self.max_body:
            raise OverflowError
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)  # the app reads it again
        return body

    def __call__(self, environ, start_response) -> Iterable[bytes]:
        try:
            body = self._read_body(environ)
        except OverflowError:
            decision = self.decider.deny(Problem("request.too_large",
                                                 f"The request body is larger than {self.max_body} bytes."))
            return _json_response(start_response, 413, decision)
        dataset = self.dataset_for(environ) if self.dataset_for else None
        push = bool(self.push_for(environ))
        status, decision = decide_from_headers(self.decider, EnvironHeaders(environ), environ["REQUEST_METHOD"],
                                          lambda: self.public_url(environ), body, dataset,
                                          response_checked=self.check_response_payload, push=push,
                                          carries_no_rows=not self.check_response_payload)
        environ[ENVIRON_KEY] = decision
        if status == 401:
            return _json_response(start_response, status, decision, {"WWW-Authenticate": 'VP realm="cead"'},
                                  self._published(environ, dataset))
        if status != 200:
            return _json_response(start_response, status, decision)
        check = self.check_response_payload and self.decider.response_check_needed(decision, push)
        # Streamed as it comes: a push (what moved was the request body), an endpoint without receipts, and an
        # endpoint that declares its answer is no table (``check_response_payload=False``: an event stream, a
        # listing), whose receipt then names the decision but no payload hash (a stream has no end to hash).
        if not check and (push or self.decider.receipt_signer is None or not self.check_response_payload):
            if decision.receipt:   # the receipt travels with the answer (the recipient's wallet keeps a copy)
                def with_receipt(status, headers, exc_info=None):
                    return start_response(status, [*headers, (RECEIPT_HEADER, decision.receipt)], exc_info)
                return self.app(environ, with_receipt)
            return self.app(environ, start_response)
        return self._checked(environ, start_response, decision, check)   # a pull's receipt names what it sent

    def _published(self, environ, dataset: str | None) -> dict:
        """What the pipeline should present: the definition for the endpoint's dataset (``dataset_for``, else
        ``?dataset=``; ``?purpose=`` optional), or the problem that prevents one (``presentation_definition_error``)."""
        query = parse_qs(environ.get("QUERY_STRING", ""))
        dataset = dataset or next(iter(query.get("dataset", [])), None)
        if dataset is None:
            return {}
        try:
            return publish(self.decider.policy, dataset, next(iter(query.get("purpose", [])), None),
                           vocabulary=self.decider.vocabulary)
        except CeadError as exc:
            return {"presentation_definition_error": exc.problem.to_dict()}
        except Exception:  # the 401 itself must still be answered
            log.exception("internal error while building a presentation definition")
            return {"presentation_definition_error": Problem(
                "verifier.internal_error", "The presentation definition could not be built.").to_dict()}

    def _checked(self, environ, start_response, decision: Decision, check: bool = True) -> Iterable[bytes]:
        """Run the app with its response buffered, and release it only if the payload check passes."""
        captured: dict = {}

        def capture(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers
            return lambda data: chunks.append(data)

        chunks: list[bytes] = []
        result = self.app(environ, capture)
        try:
            chunks.extend(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        status = captured.get("status", "500 Internal Server Error")
        if not status.startswith("2"):
            headers = captured.get("headers", [])
            if seal_payload(self.decider, decision, None):   # allowed, but the app sent no data: say so
                headers = [*headers, (RECEIPT_HEADER, decision.receipt)]
            start_response(status, headers)
            return chunks
        headers = captured.get("headers", [])
        content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
        problems = self.decider.check_response(decision, b"".join(chunks), content_type) if check else []
        if problems:  # the decider has turned the decision into a denial
            return _json_response(start_response, 403, decision)
        if decision.output_receipt:   # the output-checking receipt travels with the output
            from .decision.protocol import OUTPUT_RECEIPT_HEADER
            headers = [*headers, (OUTPUT_RECEIPT_HEADER, decision.output_receipt)]
        if seal_payload(self.decider, decision, b"".join(chunks), content_type):
            headers = [(k, v) for k, v in headers if k.lower() != RECEIPT_HEADER.lower()]
            headers.append((RECEIPT_HEADER, decision.receipt))
        start_response(status, headers)
        return chunks
