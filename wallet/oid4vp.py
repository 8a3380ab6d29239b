"""Answer an OpenID for Verifiable Presentations 1.0 request, as the holder's wallet.

``respond(wallet, request_uri, fetcher=...)`` reads an ``openid4vp://`` request passed by value (``client_id`` with
the ``redirect_uri`` prefix, ``response_mode`` ``direct_post``, a ``response_uri`` equal to that client identifier's
URI, ``nonce``, ``state``, ``dcql_query``), picks from the wallet one usable credential for each query (every type
asked for; in the format asked for), presents them in a ``vp+jwt`` bound to the request (``nonce``, and ``aud`` the
full client identifier) and POSTs ``vp_token`` and ``state`` to the response URI, without following redirects.
Requests by reference (``request_uri``, a signed request object) are refused with ``oid4vp.unsupported``: this wallet
answers only requests whose whole content it can show to its user before answering.
"""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from schemas.values import strict_json
from verifier.http import Fetcher, unreachable_reason
from verifier.results import CeadError

from .present import build_presentation

MAX_URI = 16 * 1024


def parse_request(uri: str) -> dict:
    """The authorisation request's parameters, checked (``oid4vp.invalid`` / ``oid4vp.unsupported``)."""
    if not isinstance(uri, str) or len(uri) > MAX_URI:
        raise CeadError("oid4vp.invalid", "A presentation request is an openid4vp:// link.")
    parts = urlsplit(uri.strip())
    if parts.scheme not in ("openid4vp", "https"):
        raise CeadError("oid4vp.invalid", f"Not a presentation request (scheme {parts.scheme!r}); it starts "
                        "openid4vp://")
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    if "request_uri" in query or "request" in query:
        raise CeadError("oid4vp.unsupported", "Signed request objects (request / request_uri) are not supported by "
                        "this wallet; ask the verifier for a request by value.")
    missing = [k for k in ("client_id", "response_type", "response_mode", "response_uri", "nonce", "state",
                           "dcql_query") if not query.get(k)]
    if missing:
        raise CeadError("oid4vp.invalid", f"The request lacks {', '.join(missing)}.")
    if query["response_type"] != "vp_token" or query["response_mode"] != "direct_post":
        raise CeadError("oid4vp.unsupported", "This wallet answers response_type vp_token with response_mode "
                        "direct_post only.")
    if not query["client_id"].startswith("redirect_uri:") or \
            query["client_id"][len("redirect_uri:"):] != query["response_uri"]:
        raise CeadError("oid4vp.invalid", "With an unsigned request the client_id must be redirect_uri:<the "
                        "response_uri> (OpenID4VP 1.0 s.5.9.3), so the answer goes only where the request says.")
    if not query["response_uri"].startswith("https://"):
        raise CeadError("oid4vp.invalid", "The response_uri must be https.")
    try:
        dcql = strict_json(query["dcql_query"], "the dcql_query")
    except (ValueError, RecursionError, TypeError):
        raise CeadError("oid4vp.invalid", "dcql_query is not JSON.") from None
    if not (isinstance(dcql, dict) and isinstance(dcql.get("credentials"), list) and dcql["credentials"]):
        raise CeadError("oid4vp.invalid", "dcql_query names no credentials.")
    query["dcql_query"] = dcql
    return query


def _choose(wallet, q: dict):
    """One usable held credential (its wallet record) matching a DCQL credential query (types; format)."""
    fmt = q.get("format")
    wanted = (q.get("meta") or {}).get("type_values") or []
    if fmt not in ("jwt_vc_json", "ldp_vc") or not wanted:
        raise CeadError("oid4vp.unsupported", f"Query {q.get('id')!r}: only jwt_vc_json or ldp_vc queries by "
                        "type_values are answered.")
    for record in wallet.search(usable=True):
        if (record.format == "jwt") != (fmt == "jwt_vc_json"):
            continue
        have = set(record.type_list)
        if any(set(w) <= have for w in wanted):
            return record
    raise CeadError("oid4vp.no_credential", f"This wallet holds no usable credential of {wanted} as {fmt}.")


def respond(wallet, uri: str, *, fetcher: Fetcher | None = None, session: requests.Session | None = None) -> dict:
    """Answer the request; returns ``{"verifier": response_uri, "presented": [credential ids], "answer": ...}``.
    A verifier's refusal is ``oid4vp.refused`` with its reason."""
    fetcher = fetcher or Fetcher()
    req = parse_request(uri)
    token: dict[str, list] = {}
    presented = []
    for q in req["dcql_query"]["credentials"]:
        record = _choose(wallet, q)
        vp = build_presentation(wallet.holder, wallet.key, wallet.kid, [record.credential], format="jwt",
                                audience=req["client_id"], nonce=req["nonce"], lifetime=300)
        token[q["id"]] = [vp]
        presented.append(record.credential_id)
    fetcher.check(req["response_uri"])
    try:
        # the response_uri is the verifier's choice: the fetcher's own session checks the connected peer too
        response = (session or fetcher.session()).post(
            req["response_uri"], data={"vp_token": json.dumps(token), "state": req["state"]},
            allow_redirects=False, timeout=fetcher.timeout, verify=fetcher.ca_bundle or True)
    except requests.RequestException as exc:
        raise CeadError("oid4vp.unreachable",
                        f"Could not reach {req['response_uri']}: {unreachable_reason(exc)}.") from None
    try:
        answer: Any = strict_json(response.content, "the verifier's answer")
    except (ValueError, RecursionError):
        answer = None
    if response.status_code != 200:
        reason = answer.get("error_description") if isinstance(answer, dict) else None
        raise CeadError("oid4vp.refused", f"The verifier refused the presentation: "
                        f"{reason or 'HTTP ' + str(response.status_code)}", status=response.status_code)
    return {"verifier": req["response_uri"], "presented": presented, "answer": answer}
