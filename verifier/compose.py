"""Composition in one place: build a verifier from a trust policy.

``build_verifier(policy)`` wires the parts a verifier is given rather than reaches for: a fetcher (with the
policy's network rules; pass your own to control every byte fetched), a DID resolver (one method per DID method;
did:web fetches only through that fetcher, with single flight and a bounded cache), the cryptosuite registry, a
status checker (``StatusLists``, which verifies each list with its own status-less verifier sharing the resolver:
nothing holds anything back), and a ``VerificationContext`` (clock, skew, loader, limits). The decision
(``verifier.decision.Decider``), the wallet (``wallet.store.make_verifier``) and the issuer (co-signing) build
their verifiers here.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any, Callable

from .context import Limits, VerificationContext, utc_now
from .credential import Verifier
from .did import Resolver
from .http import Fetcher, private_fix
from .policy import TrustPolicy

# Where a verifier built from a trust policy is allowed private addresses (http.address_refused says it).
POLICY_PRIVATE_FIX = private_fix("network.allow_private: true in the trust policy (docs/trust-policy.md); a service "
                                 "(`cead verifier serve`, `cead provider serve`) reads its policy when it starts, so "
                                 "restart it")


def fetcher_for(network: Any, base=None, private_fix: str | None = None) -> Fetcher:
    """A ``Fetcher`` with a policy's network settings; ``base`` resolves a relative CA bundle path; ``private_fix``
    (default: the trust policy's setting) is what ``http.address_refused`` tells the reader to change."""
    ca = getattr(network, "ca_bundle", None)
    if ca and base is not None:
        ca = str(base(ca))
    return Fetcher(allow_http=network.allow_http, allow_private=network.allow_private, ca_bundle=ca,
                   timeout=network.timeout, private_fix=private_fix or POLICY_PRIVATE_FIX)


def build_verifier(policy: TrustPolicy | None = None, *, fetcher: Fetcher | None = None, resolver=None,
                   status: Any = True, metrics=None, clock: Callable | None = None, suites=None,
                   caching: bool = True, loader: Callable | None = None, limits: Limits | None = None) -> Verifier:
    """A verifier for ``policy`` (default: an empty trust policy).

    ``fetcher``: default one with the policy's network rules; ``resolver``: default did:key, did:jwk and did:web
    through the fetcher, cached per the policy; ``status``: True for ``StatusLists`` per the policy, False for no
    status checks, or a status checker of your own; ``caching``: a ``CachingVerifier`` (proof results cached by
    the exact credential digest; status checked every time) rather than a plain ``Verifier``; ``clock`` (default:
    the system's UTC time), ``loader`` (a pyld-shaped JSON-LD document loader; default: pinned and registered
    contexts only) and ``limits`` (``verifier.context.Limits``) make the ``VerificationContext`` every check of this
    verifier, its status-list client and a ``Decider`` built on it use.
    """
    from .decision.caches import CachingVerifier
    policy = policy or TrustPolicy()
    caches = policy.caches
    record = (lambda cache: (lambda hit: metrics.record_cache(cache, hit))) if metrics is not None else \
        (lambda cache: None)
    fetcher = fetcher or fetcher_for(policy.network, policy.path)
    context = VerificationContext(clock=clock or utc_now, skew=policy.skew, loader=loader,
                                  limits=limits if limits is not None else Limits())
    if resolver is None:
        resolver = Resolver(fetcher, ttl=caches.did_documents.ttl, cache_size=caches.did_documents.size,
                            on_cache=record("did_documents"))
    if caching:
        verifier: Verifier = CachingVerifier(resolver, skew=policy.skew, cache_size=caches.proofs.size,
                                             ttl=caches.proofs.ttl, metrics=metrics, suites=suites, context=context)
    else:
        verifier = Verifier(resolver, skew=policy.skew, suites=suites, context=context)
    if status is True:
        status = status_lists_for(policy, fetcher, verifier, metrics)
    if status:
        attach_status(verifier, status)
    return verifier


def status_lists_for(policy: TrustPolicy, fetcher: Fetcher, verifier: Verifier, metrics=None):
    """The status-list client for ``policy``: lists verified by a status-less copy of ``verifier``."""
    from .status import StatusLists
    caches = policy.caches
    on_cache = (lambda hit: metrics.record_cache("status_lists", hit)) if metrics is not None else None
    return StatusLists(fetcher, verifier=verifier.without_status(), on_cache=on_cache, ttl=caches.status_lists.ttl,
                       max_staleness=timedelta(seconds=policy.max_status_staleness),
                       cache_size=caches.status_lists.size, wall_clock=verifier.context.now)


def attach_status(verifier: Verifier, status: Any) -> None:
    """Give ``verifier`` its status checker (a ``StatusLists`` without a verifier gets a status-less copy of this
    one: the list client never holds the verifier that holds it)."""
    from .decision.caches import CachingVerifier
    if hasattr(status, "verifier") and status.verifier is None:
        status.verifier = verifier.without_status()
    if isinstance(verifier, CachingVerifier):
        verifier.status_lists = status
    else:
        verifier.status = status
