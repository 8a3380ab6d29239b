"""A real OpenID provider for the sign-in tests: IdentityPython's ``pyop`` (Apache-2.0, maintained; an independent
implementation, not Authlib, which the node's client uses) behind a small Flask app, served over HTTPS on 127.0.0.1
by ``helpers_https.https_server``. It publishes a discovery document and a JWKS, and runs the authorisation code
flow with PKCE (pyop checks the code verifier) and client_secret_basic.

The person at the provider is ``op.user`` (as if already signed in to the organisation's single sign-on). To show
that the node refuses bad answers, ``op.misbehave`` makes the provider (or an attacker in its place) answer wrongly:

- ``"state"``: the redirect back carries a different state;
- ``"audience"``: the ID token is for another client (re-signed with the provider's own key);
- ``"issuer"``: the ID token names another issuer (re-signed);
- ``"nonce"``: the ID token carries another nonce (re-signed);
- ``"unsigned"``: the ID token is sent with ``alg: none`` and no signature;
- ``"forged"``: the ID token is signed with a key the provider does not publish;
- ``"expired"``: pyop itself issues tokens already expired (a negative lifetime).
"""
from __future__ import annotations

import base64
import json
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from Cryptodome.PublicKey import RSA
from flask import Flask, Response, jsonify, redirect, request
from jwkest.jwk import RSAKey
from oic.oic.message import IdToken
from pyop.authz_state import AuthorizationState
from pyop.exceptions import InvalidAuthenticationRequest, OAuthError
from pyop.provider import Provider
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

CLIENT_ID = "cead-node-test"
CLIENT_SECRET = "a test client secret, only for the local provider"


class LocalProvider:
    def __init__(self):
        self.base = None
        self.user = "ian"
        self.misbehave: str | None = None
        self.users = {
            "ian": {"name": "Ian Owner", "preferred_username": "ian@fife.example", "roles": ["Cead.IAO"]},
            "dee": {"name": "Dee Protection", "preferred_username": "dee@fife.example",
                    "roles": ["Cead.Analyst", "Cead.DPO"]},
            "nora": {"name": "Nora Nobody", "preferred_username": "nora@fife.example", "roles": ["Staff"]},
        }
        self.key = RSAKey(key=RSA.generate(2048), alg="RS256", kid="op-key-1", use="sig")
        self.other_key = RSAKey(key=RSA.generate(2048), alg="RS256", kid="op-key-1", use="sig")
        self.provider = None
        self.redirect_uris: list[str] = []

    # the issuer URL is known only once the server listens
    def start(self, base: str, redirect_uri: str) -> None:
        self.base = base
        self.redirect_uris = [redirect_uri]
        self._build(lifetime=3600)

    def _build(self, lifetime: int) -> None:
        config = {"issuer": self.base, "authorization_endpoint": self.base + "/authorize",
                  "token_endpoint": self.base + "/token", "jwks_uri": self.base + "/jwks",
                  "response_types_supported": ["code"], "subject_types_supported": ["public"],
                  "id_token_signing_alg_values_supported": ["RS256"], "scopes_supported": ["openid", "profile",
                                                                                           "email"],
                  "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                  "code_challenge_methods_supported": ["S256"]}
        clients = {CLIENT_ID: {"client_secret": CLIENT_SECRET, "redirect_uris": self.redirect_uris,
                               "response_types": ["code"], "token_endpoint_auth_method": "client_secret_basic"}}
        state = AuthorizationState(HashBasedSubjectIdentifierFactory("test salt"))
        self.provider = Provider(self.key, config, state, clients, Userinfo(self.users),
                                 id_token_lifetime=lifetime)

    def _claims(self, user_id, client_id):
        u = self.users[user_id]
        return {"name": u["name"], "preferred_username": u["preferred_username"], "roles": u["roles"]}

    def _tamper(self, id_token: str) -> str:
        claims = json.loads(base64.urlsafe_b64decode(id_token.split(".")[1] + "=="))
        if self.misbehave == "audience":
            claims["aud"] = "someone-elses-app"
        elif self.misbehave == "issuer":
            claims["iss"] = "https://login.example.net/another-tenant/v2.0"
        elif self.misbehave == "nonce":
            claims["nonce"] = "a nonce from another sign-in"
        elif self.misbehave == "unsigned":
            head = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
            body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
            return f"{head}.{body}."
        elif self.misbehave == "forged":
            return IdToken(**claims).to_jwt([self.other_key], "RS256")
        else:
            return id_token
        return IdToken(**claims).to_jwt([self.key], "RS256")

    def wsgi(self):
        app = Flask("test-oidc-provider")

        @app.get("/.well-known/openid-configuration")
        def discovery():
            return jsonify(self.provider.provider_configuration.to_dict())

        @app.get("/jwks")
        def jwks():
            return jsonify(self.provider.jwks)

        @app.get("/authorize")
        def authorize():
            if self.misbehave == "expired":
                self._build(lifetime=-600)
            try:
                auth_req = self.provider.parse_authentication_request(urlencode(request.args))
            except InvalidAuthenticationRequest as exc:
                return Response(f"bad authentication request: {exc}", status=400)
            if "code_challenge" not in auth_req:
                return Response("this provider requires PKCE", status=400)
            answer = self.provider.authorize(auth_req, self.user)
            params = answer.to_dict()
            if self.misbehave == "state":
                params["state"] = "not-the-state-that-was-sent"
            parts = urlsplit(auth_req["redirect_uri"])
            return redirect(urlunsplit(parts._replace(query=urlencode({**dict(parse_qsl(parts.query)),
                                                                      **params}))))

        @app.post("/token")
        def token():
            try:
                answer = self.provider.handle_token_request(request.get_data(as_text=True), request.headers,
                                                            extra_id_token_claims=self._claims)
            except OAuthError as exc:
                return jsonify({"error": exc.oauth_error, "error_description": str(exc)}), 400
            data = answer.to_dict()
            data["id_token"] = self._tamper(data["id_token"])
            return jsonify(data)

        return app
