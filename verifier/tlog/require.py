"""The trust-policy check that approvals and delegations are in their issuer's log (policy ``transparency``).

For each credential the policy names (the approval, the delegations of its chain), the gateway fetches from the
issuer's node ``/log/evidence?digest=<sha256 of the credential>`` and checks, failing closed:

1. the checkpoint is a C2SP signed note signed by an Ed25519 key of the issuer's DID document;
2. it is co-signed by at least ``min_witnesses`` of the witnesses the policy names, the newest of those
   cosignatures no older than ``max_age``;
3. the entry is a ``credential.issued`` entry by that issuer naming exactly this credential's digest, and the
   inclusion proof leads from it to the checkpoint's root;
4. (``require_key_logged``) the key that signed the credential was itself logged (``key.added``) the same way: a
   did:web re-key without a log entry is refused.

The issuer's node is found from its did:web: ``https://<host>[/<path>]/log/``. A did:key issuer has no log.

A warm decision makes no request: where each entry is, the hash tiles and the co-signed checkpoint are cached
(``verifier.tlog.cache``; the checkpoint for the policy's ``checkpoint_cache`` seconds, then revalidated by ETag),
and every check above runs on every decision from those cached bytes. A cached state that falls short (too few
cosignatures, too old, not yet covering the entry, a proof that fails) is fetched afresh once before denying.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import datetime
from urllib.parse import quote

from ..did import did_web_url, ed25519_keys, vm_public_key
from ..results import CeadError, Problem
from . import merkle, note as notes
from .cache import cache_for
from .checkpoint import Checkpoint, open_checkpoint
from .evidence import digest_hex

ISSUED = "credential.issued"
KEY_ADDED = "key.added"


def log_url(did: str) -> str:
    """Where a did:web organisation's node serves its log."""
    url = did_web_url(did)
    base = url[: -len(".well-known/did.json")] if url.endswith("/.well-known/did.json") else url[: -len("did.json")]
    return base.rstrip("/") + "/log"


def _problem(code: str, message: str, **detail) -> Problem:
    return Problem(code, message, detail)


def check_entry(evidence: dict, *, did: str, digest: str, kind: str, resolver, policy, now: datetime,
                what: str) -> list[Problem]:
    """Check one piece of evidence (the JSON of ``/log/evidence``) for ``digest`` (hex)."""
    t = policy.transparency
    try:
        note = evidence["checkpoint"]
        entry = base64.b64decode(evidence["entry"], validate=True)
        proof = [base64.b64decode(p, validate=True) for p in evidence["proof"]]
        index, size = int(evidence["index"]), int(evidence["size"])
        if not isinstance(note, str):
            raise TypeError
    except (KeyError, TypeError, ValueError, binascii.Error):
        return [_problem("transparency.evidence_invalid", f"The log evidence for {what} is malformed.")]
    doc = resolver.resolve(did)
    text = note.split("\n\n", 1)[0] + "\n"
    try:
        origin = Checkpoint.parse(text).origin
    except CeadError as exc:
        return [_problem("transparency.evidence_invalid", f"The log checkpoint for {what}: {exc.message}")]
    log_keys = [notes.NoteKey(origin, notes.ALG_ED25519, raw) for raw in ed25519_keys(doc)]
    witness_keys = [notes.NoteKey.parse(k) for k in t.witnesses]
    opened = None
    for log_key in log_keys:
        try:
            opened = open_checkpoint(note, log_key, witness_keys)
            break
        except CeadError as exc:
            if exc.code == "tlog.signature_invalid" and "not signed by the log key" in exc.message:
                continue
            return [_problem("transparency.checkpoint_invalid", f"The log checkpoint for {what}: {exc.message}")]
    if opened is None:
        return [_problem("transparency.checkpoint_invalid", f"The log checkpoint for {what} is not signed by a key "
                         f"of {did}.")]
    problems: list[Problem] = []
    if opened.checkpoint.size != size:
        problems.append(_problem("transparency.evidence_invalid", "The evidence names another tree size than its "
                                 "checkpoint."))
    try:
        merkle.verify_inclusion(merkle.leaf_hash(entry), index, opened.checkpoint.size, proof, opened.checkpoint.root)
    except CeadError as exc:
        problems.append(_problem("transparency.proof_invalid", f"{what}: {exc.message}"))
    try:
        parsed = json.loads(entry)
        digests = parsed.get("digests") or {}
        meta = parsed.get("meta") or {}
    except (ValueError, AttributeError):
        parsed, digests, meta = {}, {}, {}
    if parsed.get("kind") != kind or digest not in digests.values() or (kind == ISSUED and meta.get("issuer") != did):
        problems.append(_problem("transparency.not_logged", f"The issuer's log holds no {kind} entry for {what}."))
    cosigned = [w for w in opened.witnesses if w.timestamp is not None]
    # each witness once, however many of its keys co-signed (after a witness rotates its key the policy names both,
    # and a checkpoint submitted again carries a cosignature by each)
    names = list(dict.fromkeys(w.key.name for w in cosigned))
    if len(names) < t.min_witnesses:
        problems.append(_problem("transparency.witnesses_insufficient",
                                 f"The log checkpoint for {what} is co-signed by {len(names)} of the witnesses the "
                                 f"trust policy names; it needs {t.min_witnesses}.",
                                 witnesses=names, needed=t.min_witnesses))
    elif t.min_witnesses:
        newest = max(w.timestamp for w in cosigned)
        age = now.timestamp() - newest
        if age > t.max_age:
            problems.append(_problem("transparency.checkpoint_stale",
                                     f"The newest witness cosignature of the log checkpoint for {what} is "
                                     f"{int(age)} s old; the trust policy allows {t.max_age} s.", age=int(age)))
        elif age < -policy.clock_skew:
            problems.append(_problem("transparency.checkpoint_stale", f"A witness cosignature for {what} is dated "
                                     "in the future."))
    return problems


def fetch_evidence(fetcher, did: str, digest: str, kind: str) -> dict:
    url = f"{log_url(did)}/evidence?digest={digest}&kind={quote(kind)}"
    try:
        result = fetcher.get(url, accept="application/json")
    except CeadError as exc:
        status = exc.detail.get("status") if isinstance(exc.detail, dict) else None
        if status == 404:
            raise CeadError("transparency.not_logged", f"{did}'s log has no {kind} entry for this digest.") from None
        raise CeadError("transparency.unreachable", f"The log of {did} cannot be read: {exc.message}") from None
    try:
        value = json.loads(result.body)
    except ValueError:
        raise CeadError("transparency.evidence_invalid", f"The log of {did} did not answer with JSON.") from None
    if not isinstance(value, dict):
        raise CeadError("transparency.evidence_invalid", f"The log of {did} did not answer with an object.")
    return value


def checkpoint_url(did: str, policy) -> str:
    """Where the gateway reads the checkpoint it checks: the newest co-signed one when the policy needs witnesses."""
    return f"{log_url(did)}/{'witnessed-checkpoint' if policy.transparency.min_witnesses else 'checkpoint'}"


def _evidence(cache, fetcher, did: str, digest: str, kind: str, policy, *, force: bool = False
              ) -> tuple[dict, bool]:
    """The evidence for ``digest``: rebuilt from the cache when it can be (``(evidence, True)``), else from
    the log's ``/log/evidence`` (``(evidence, False)``), which then locates the entry for next time."""
    log = log_url(did)
    if cache is not None:
        try:
            got = cache.evidence_from_cache(log, checkpoint_url(did, policy), kind, digest,
                                            policy.transparency.checkpoint_cache, force=force)
        except CeadError as exc:
            if exc.code.startswith("http.") and exc.code != "http.status":
                raise CeadError("transparency.unreachable", f"The log of {did} cannot be read: {exc.message}") \
                    from None
            # a malformed tile, or a log that does not serve tiles or its co-signed checkpoint (an older node):
            # ask it for the whole evidence instead
            cache.forget_tiles(log)
            got = None
        if got is not None:
            return got[0], True
    evidence = fetch_evidence(fetcher, did, digest, kind)
    if cache is not None:
        try:
            index = int(evidence["index"])
            cache.remember_entry(log, kind, digest, index, base64.b64decode(evidence["entry"], validate=True))
            cache.remember_proof(log, index, int(evidence["size"]),
                                 [base64.b64decode(h, validate=True) for h in evidence["proof"]])
            if isinstance(evidence.get("checkpoint"), str):
                cache.remember_checkpoint(checkpoint_url(did, policy), evidence["checkpoint"])
        except (KeyError, TypeError, ValueError, binascii.Error):
            pass   # malformed: check_entry says so
    return evidence, False


def _checked(cache, fetcher, did: str, digest: str, kind: str, *, resolver, policy, now: datetime, what: str
             ) -> list[Problem]:
    """Fetch (or rebuild from the cache) and check one entry's evidence. A cached state that fails is not
    trusted to deny: the checkpoint is fetched afresh (and, for a failing proof or entry, the entry located again)
    and checked once more."""
    evidence, cached = _evidence(cache, fetcher, did, digest, kind, policy)
    problems = check_entry(evidence, did=did, digest=digest, kind=kind, resolver=resolver, policy=policy, now=now,
                           what=what)
    if problems and cache is not None:
        log = log_url(did)
        if any(p.code in ("transparency.proof_invalid", "transparency.not_logged", "transparency.evidence_invalid")
               for p in problems):
            cache.forget_entry(log, kind, digest)
            cache.forget_tiles(log)
        if cached:
            evidence, _ = _evidence(cache, fetcher, did, digest, kind, policy, force=True)
            problems = check_entry(evidence, did=did, digest=digest, kind=kind, resolver=resolver, policy=policy,
                                   now=now, what=what)
    return problems


def check_credential(cred, role: str, *, policy, resolver, fetcher, now: datetime, cache=None) -> list[Problem]:
    """The transparency checks of one verified credential (``decision.context.Cred``). ``cache``: a
    ``verifier.tlog.cache.LogCache`` (None: fetch everything from the log)."""
    did = cred.issuer
    what = f"the {role} {cred.id or ''}".strip()
    if not isinstance(did, str) or not did.startswith("did:web:"):
        return [_problem("transparency.no_log", f"{what} was issued by {did}, which has no log (only did:web "
                         "organisations run one); the trust policy requires logged credentials.")]
    out: list[Problem] = []
    try:
        out += _checked(cache, fetcher, did, digest_hex(cred.digest), ISSUED, resolver=resolver, policy=policy,
                        now=now, what=what)
        if policy.transparency.require_key_logged and cred.result.verification_method:
            vm = resolver.dereference(cred.result.verification_method)
            multikey = vm_public_key(vm).to_multikey()
            key_digest = hashlib.sha256(multikey.encode()).hexdigest()
            out += [Problem("transparency.key_not_logged", p.message, p.detail) if p.code == "transparency.not_logged"
                    else p for p in _checked(cache, fetcher, did, key_digest, KEY_ADDED, resolver=resolver,
                                             policy=policy, now=now,
                                             what=f"the key {cred.result.verification_method}")]
    except CeadError as exc:
        code = exc.code if exc.code.startswith("transparency.") else "transparency.unreachable"
        if code == "transparency.not_logged" and "key.added" in exc.message:
            code = "transparency.key_not_logged"
        out.append(Problem(code, f"{what}: {exc.message}", {"credential": cred.id}))
    return out


def check_logged(attempt) -> list[Problem]:
    """Decision stage (``verifier.decision.APPROVAL_STAGES``): nothing unless the policy has ``transparency``."""
    ctx = attempt.ctx
    t = getattr(ctx.policy, "transparency", None)
    if t is None:
        return []
    resolver = ctx.verifier.resolver
    fetcher = resolver.fetcher
    cache = cache_for(ctx.verifier, fetcher, t.cache_bytes) if t.cache_bytes else None
    creds = []
    if "approval" in t.require_for:
        creds.append((attempt.approval, "approval"))
    if "delegation" in t.require_for:
        creds += [(link, "delegation") for link in attempt.links]
    out: list[Problem] = []
    for cred, role in creds:
        if not cred.result.verified:
            continue   # already a reason; nothing to look up
        out += check_credential(cred, role, policy=ctx.policy, resolver=resolver, fetcher=fetcher, now=ctx.now,
                                cache=cache)
    return out



