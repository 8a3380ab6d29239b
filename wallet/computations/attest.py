"""Building and co-signing run attestations (``schemas.attestation.RunAttestation``).

Every compute party signs the same unsigned attestation with its own key; the proofs form a Data Integrity proof
set (each proof signs the document without the proof set), so they can be made independently and combined, the
issuer's first.
"""
from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from issuer.keys import PrivateKey
from issuer.signing import add_proof
from schemas.attestation import RunAttestation
from schemas.errors import CeadError


@dataclass(frozen=True)
class Signer:
    """A node's identity for a computation: its DID, signing key and verification method (DID URL)."""
    did: str
    key: PrivateKey
    kid: str

    @classmethod
    def from_node(cls, node) -> "Signer":
        """The node's organisation DID and active Ed25519 key (the node's key must be unlocked)."""
        return cls(node.did, node.key, node.verification_method_id)


def new_run_id() -> str:
    return f"urn:cead:run:{uuid.uuid4()}"


def now_utc() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def unsigned_attestation(issuer: str, **subject: Any) -> dict:
    """The unsigned credential; ``subject`` holds the RunAttestation fields (snake_case or camelCase).
    CeadError ``schema.invalid`` if they do not make a valid attestation."""
    from pydantic import ValidationError
    from schemas.models import describe
    try:
        model = RunAttestation.model_validate(subject)
    except ValidationError as exc:
        raise CeadError("schema.invalid", f"Run attestation: {describe(exc)}") from None
    return model.to_credential(issuer, valid_from=model.to_json()["completedAt"])


def sign(document: dict, signer: Signer) -> dict:
    """The proof ``signer`` adds to ``document`` (a dict: one Data Integrity proof over the unsigned document)."""
    unsigned = {k: v for k, v in document.items() if k != "proof"}
    return add_proof(unsigned, signer.key, signer.kid)["proof"]


def combine(document: dict, proofs: list[dict]) -> dict:
    """``document`` with the proof set ``proofs`` (the issuer's first)."""
    out = copy.deepcopy({k: v for k, v in document.items() if k != "proof"})
    out["proof"] = list(proofs) if len(proofs) != 1 else proofs[0]
    return out


KEY_PASSPHRASE_ENV = "CEAD_COMPUTATION_KEY_PASSPHRASE"


def write_key(folder, name: str, key: PrivateKey) -> tuple[str, str]:
    """Hand a node's key to a computation process: written encrypted (PKCS#8) with a fresh one-time passphrase,
    readable by this user only. Returns ``(path, passphrase)``; give the passphrase to the process in its
    environment (``KEY_PASSPHRASE_ENV``), never on its command line."""
    import os
    import secrets
    from pathlib import Path
    passphrase = secrets.token_urlsafe(24)
    path = Path(folder) / f"{name}.pem"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.to_pem(passphrase.encode()))
    return str(path), passphrase


def read_key(path: str) -> PrivateKey:
    """The key ``write_key`` wrote, with the passphrase from the environment (an unencrypted file without it)."""
    import os
    from pathlib import Path
    passphrase = os.environ.get(KEY_PASSPHRASE_ENV)
    return PrivateKey.from_pem(Path(path).read_bytes(), passphrase.encode() if passphrase else None)


class MirrorFetcher:
    """Fetches ``https://<host>/<path>`` from ``<base>/<host>/<path>``: a mirror of DID documents and status lists
    for parties whose did:web names are not real hosts (the worked examples' ``did:web:fife.example``, served on
    127.0.0.1 by the tests). Everything else about fetching (HTTPS, limits) is the wrapped ``Fetcher``'s."""

    def __init__(self, base: str, fetcher):
        self.base = base.rstrip("/")
        self.fetcher = fetcher

    def get(self, url: str, *args, **kwargs):
        return self.fetcher.get(f"{self.base}/{url.split('://', 1)[1]}", *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.fetcher, name)


def network_settings(network) -> dict:
    """The network settings a computation's process is given in its config (``network``: the fields of config.yaml's
    ``network`` section): from a ``verifier.policy.Network`` (``node.network``), a mapping with those fields, or a
    ``verifier.http.Fetcher`` (``node.fetcher()``). None: the defaults (HTTPS only, private addresses refused).
    Raises ``computation.config_invalid`` naming what is wrong."""
    from pydantic import ValidationError

    from verifier.http import Fetcher
    from verifier.policy import Network, format_error
    if isinstance(network, Fetcher):
        network = {"allow_http": network.allow_http, "allow_private": network.allow_private,
                   "ca_bundle": network.ca_bundle, "timeout": network.timeout}
    if network is None:
        network = {}
    if isinstance(network, Network):
        return network.model_dump()
    if not isinstance(network, dict):
        raise CeadError("computation.config_invalid", "The computation's network settings must be the node's "
                        f"(node.network, node.fetcher() or a mapping of its fields), not {type(network).__name__} "
                        f"{str(network)[:100]!r}.")
    try:
        return Network.model_validate(network).model_dump()
    except ValidationError as exc:
        raise CeadError("computation.config_invalid", f"The computation's network settings: {format_error(exc)}") \
            from None


def node_verifier(network, *, did_web_base: str | None = None):
    """The Verifier a node taking part in a computation checks credentials with: DIDs resolved and status lists
    fetched under the node's own network rules (``network``: ``node.network``, ``node.fetcher()``, or a mapping of
    the ``network`` fields of config.yaml, as given to a computation's process; HTTPS, its CA bundle, and loopback
    or private addresses refused, also on the connected socket, unless ``allow_private``), status lists refetched on
    every check so a revoked or suspended approval stops a run at once. ``did_web_base``: fetch through a
    ``MirrorFetcher`` at that https origin (the worked examples)."""
    from verifier.compose import fetcher_for
    from verifier.credential import Verifier
    from verifier.did import Resolver
    from verifier.http import Fetcher, private_fix
    from verifier.policy import Network
    from verifier.status import StatusLists
    fix = private_fix("network.allow_private: true in the network settings the computation runs under (the node's "
                      "config.yaml, which `cead init --allow-private-addresses` sets, or the process's config)")
    fetcher = network if isinstance(network, Fetcher) else fetcher_for(Network(**network_settings(network)),
                                                                        private_fix=fix)
    if did_web_base:
        fetcher = MirrorFetcher(did_web_base, fetcher)
    return Verifier(resolver=Resolver(fetcher=fetcher), status=StatusLists(fetcher, ttl=0))
