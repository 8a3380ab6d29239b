"""Issuing independent of HTTP: check a credential request, sign it, record it; change a credential's status.

``issue`` and ``change_status`` are what both the Flask app and the command line call. Every refusal is a
``CeadError`` with a stable code and an HTTP status in ``HTTP_STATUS``; nothing is signed or stored when one is
raised (allocation, signing and the register row share one database transaction).
"""
from __future__ import annotations

import copy
import csv
import io
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, Iterable

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from schemas.models import CREDENTIAL_MODELS, credential_digest
from schemas.values import as_list, id_of, parse_datetime, types_of
from verifier.credential import is_datetime_stamp
from verifier.jose import JWT_CLAIMS
from verifier.keys import ED25519, JOSE_ALGS
from verifier.results import CeadError
from verifier.suites import DEFAULT_SUITES

from . import db, idempotency, statuslist
from .signing import sign_jwt

V2_CONTEXT = "https://www.w3.org/ns/credentials/v2"
V1_CONTEXT = "https://www.w3.org/2018/credentials/v1"
GENERAL_SCOPE = "issue:any"   # any other well-formed credential, signed as this node (docs/issuer.md)
TYPE_SCOPES = {
    "OrganisationCertificationCredential": "issue:certification",
    "DelegatedAuthorityCredential": "issue:delegation",
    "DataSharingApprovalCredential": "issue:approval",
}
# the kinds a DPO issues, by the names the command line and the pages use
KINDS = {"certification": "OrganisationCertificationCredential",
         "delegation": "DelegatedAuthorityCredential",
         "approval": "DataSharingApprovalCredential"}
GUARDED_TYPES = ("DelegatedAuthorityCredential", "DataSharingApprovalCredential")
CRYPTOSUITES = DEFAULT_SUITES.names(signing=True)   # the suites this node signs with (verifier.suites)
JWT_FORMAT = "vc+jwt"
# Top-level names a request may not carry: JWT claims (the node derives what it signs from the credential itself) and
# the VC 1.1 JWT claims ``vc``/``vp``, which VC-JOSE-COSE forbids and which a VC 1.1 reader would take as the whole
# credential instead of what this node checked.
RESERVED_CLAIMS = ("vc", "vp") + tuple(JWT_CLAIMS)
ACTIONS = {"revoke": ("revocation", True, "revoked"), "suspend": ("suspension", True, "suspended"),
           "reinstate": ("suspension", False, "active")}
# The issue request's options (docs/issuer.md). Any other key is refused (options.invalid naming it): a misspelt
# option silently ignored would change what is signed, or skip the guard rail (``delegaton``).
OPTIONS = ("cryptosuite", "format", "alg", "credentialStatus", "delegation", "upstream")
# VC-API IssueCredentialOptions this node accepts without acting on them: ``mandatoryPointers`` (a list of JSON
# pointers: the node's cryptosuites disclose every claim, so every pointer is always revealed) and ``credentialId``
# (only when it is the credential's own ``id``, which is what VC-API defaults it to).
IGNORED_OPTIONS = ("mandatoryPointers", "credentialId")
# Standard keys (VC-API, and older VC-API drafts) that the node refuses, with the reason.
UNSUPPORTED_OPTIONS = {
    "created": "the node dates its proof when it signs",
    "challenge": "an issued credential's proof is not bound to a challenge (that is for presentations)",
    "domain": "an issued credential's proof is not bound to a domain (that is for presentations)",
    "proofId": "the node does not name its proofs",
    "previousProof": "the node does not make proof chains",
    "verificationMethod": "the node signs with its current key for the format",
    "proofPurpose": "the node's proofs are always assertionMethod",
    "type": "use cryptosuite or format",
}
STATUS_OPTIONS = ("type", "statusPurpose")

# HTTP status for each refusal code on the node's pages (anything else that is a CeadError -> 400).
HTTP_STATUS = {
    "tlog.not_found": 404, "tlog.tile_path_invalid": 404, "tlog.proof_invalid": 400,
    "delegation.not_in_force": 422,
    "auth.missing": 401, "auth.invalid": 401, "auth.scope": 403, "auth.not_local": 403,
    "credential.type_unknown": 422, "credential.issuer_mismatch": 422, "scope.too_wide": 422,
    "delegation.invalid": 422, "credential.duplicate_id": 409, "credential.not_found": 404,
    "status.no_entry": 409, "status.revoked_permanent": 409, "status.period_over": 409, "status.list_not_found": 404,
    "schema.invalid": 422, "key.locked": 500, "key.missing": 500, "node.public_url_missing": 500,
    "db.unavailable": 503, "db.error": 500, "idempotency.key_reused": 422, "idempotency.key_invalid": 400,
}
# The VC-API endpoints follow VC-API (VCALM) exactly: it lists 201 and 400 for /credentials/issue and 200, 400 and
# 404 for /credentials/status, so every refusal of the request itself is a 400 there (its code says which);
# authentication is 401/403, a missing credential or list 404, the node's own faults 5xx.
VC_API_STATUS = {code: status for code, status in HTTP_STATUS.items() if status not in (409, 422)}


@dataclass
class Issued:
    id: str
    format: str
    credential: dict | str          # the signed credential (dict) or the compact JWT
    verifiable_credential: dict     # what VC-API returns: the credential, or an EnvelopedVerifiableCredential
    replayed: bool = False          # the stored reply to an earlier attempt of the same request

    def response(self) -> dict:
        return {"verifiableCredential": self.verifiable_credential}


_KIND_OF_ALG = {alg: kind for kind, alg in JOSE_ALGS.items()}   # EdDSA -> Ed25519, ES384 -> P-384, ...


def _fail(code: str, message: str, **detail: Any) -> CeadError:
    return CeadError(code, message, **detail)


def build_credential(node, cead_type: str, data: dict, *, valid_until: str | None = None) -> dict:
    """An unsigned credential of ``cead_type`` for this node to issue, from ``data``: a whole credential (whose type
    must match) or just its ``credentialSubject`` (built by the typed model, which names any field that does not
    fit). The command line and the DPO pages both come here; ``issue`` then checks and signs it."""
    if "credentialSubject" in data:
        if cead_type not in types_of(data):
            raise _fail("credential.type_unknown", f"The credential given is not a {cead_type}.", field="type")
        credential = dict(data)
        if valid_until:
            credential["validUntil"] = valid_until
        return credential
    model = CREDENTIAL_MODELS[cead_type]
    subject = model.from_credential({"type": [cead_type], "credentialSubject": data})
    return subject.to_credential(node.did, valid_until=valid_until)


def _printable(text: str) -> str:
    """``text`` safe to print and to put in JSON: an unpaired surrogate shown as ``\\ud800``."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:      # an unpaired surrogate ("\ud800"): no UTF-8, so nothing can sign or read it
        return False
    return True


def not_unicode(value: Any) -> str | None:
    """The path (``credentialSubject.legalName``, ``recipients[0]``) of the first string or object key in
    ``value`` that is not valid Unicode (an unpaired surrogate), or None. Iterative: any nesting depth."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if not _is_unicode(item):
                return path or "(the value)"
        elif isinstance(item, dict):
            children = []
            for key, child in item.items():
                name = f"{path}.{_printable(str(key))}" if path else _printable(str(key))
                if isinstance(key, str) and not _is_unicode(key):
                    return name
                children.append((child, name))
            stack.extend(reversed(children))
        elif isinstance(item, (list, tuple)):
            stack.extend(reversed([(child, f"{path}[{i}]") for i, child in enumerate(item)]))
    return None


def check_request(node, credential: Any, options: Any) -> tuple[dict, dict, str | None]:
    """Validate an issue request; returns ``(credential copy, options, cead type)``: the cead type is None for a
    credential of another type (the general profile)."""
    if not isinstance(credential, dict):
        raise _fail("request.invalid", "The request needs a 'credential' JSON object.", field="credential")
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise _fail("options.invalid", "'options' must be a JSON object.", field="options")
    for value, code, where in ((credential, "credential.invalid", ""), (options, "options.invalid", "options.")):
        path = not_unicode(value)
        if path is not None:
            raise _fail(code, f"'{where}{path}' is not valid Unicode (it holds an unpaired surrogate such as "
                        "\\ud800, which has no UTF-8 form and cannot be signed).", field=where + path)
    credential = copy.deepcopy(credential)
    types = types_of(credential)
    if len(types) != len(as_list(credential.get("type"))):
        raise _fail("credential.invalid", "'type' must be a string or a list of strings.", field="type")
    if "VerifiableCredential" not in types:
        raise _fail("credential.invalid", "'type' must include VerifiableCredential.", field="type")
    cead_types = [t for t in types if t in TYPE_SCOPES]
    if len(cead_types) > 1:
        raise _fail("credential.type_unknown", f"A credential is one of {', '.join(TYPE_SCOPES)}, not several "
                    f"({', '.join(cead_types)}).", field="type")
    cead_type = cead_types[0] if cead_types else None
    contexts = credential.get("@context")
    # Cead's own types are VC 2.0; any other credential (the general profile, scope issue:any) may be VC 1.1 too.
    allowed = (V2_CONTEXT,) if cead_type else (V2_CONTEXT, V1_CONTEXT)
    if not isinstance(contexts, list) or not contexts or contexts[0] not in allowed:
        raise _fail("credential.invalid", f"'@context' must be a list starting with {' or '.join(allowed)}.",
                    field="@context")
    version = 2 if contexts[0] == V2_CONTEXT else 1
    for forbidden in ("proof", "credentialStatus"):
        if forbidden in credential:
            raise _fail("credential.invalid", f"Do not send '{forbidden}'; the issuer adds it.", field=forbidden)
    for claim in RESERVED_CLAIMS:
        if claim in credential:
            raise _fail("credential.invalid", f"Do not send the JWT claim '{claim}': the node signs the credential "
                        "itself (VC-JOSE-COSE), from its issuer, id and validity.", field=claim)
    issuer = id_of(credential.get("issuer", node.did))
    if isinstance(credential.get("issuer"), dict) and "@id" in credential["issuer"]:
        issuer = credential["issuer"]["@id"] if "id" not in credential["issuer"] else None
    if issuer != node.did:
        raise _fail("credential.issuer_mismatch", f"This node issues as {node.did}, not {issuer!r}.",
                    field="issuer")
    if isinstance(credential.get("issuer"), dict):
        credential["issuer"]["id"] = node.did
    else:
        credential["issuer"] = node.did
    _check_subject(credential.get("credentialSubject"), several=cead_type is None)
    _check_validity(credential, version)
    cid = credential.setdefault("id", f"urn:uuid:{uuid.uuid4()}")
    if not isinstance(cid, str):   # whether it is a URL is the verifier's rule, checked below with the others
        raise _fail("credential.invalid", "'id' must be a URL (e.g. urn:uuid:...).", field="id")
    if cead_type:
        _validate_model(credential, cead_type)
    _check_subject_dids(credential.get("credentialSubject"))
    _check_as_a_verifier_would(credential, general=cead_type is None)
    _check_options(node, options, credential)
    if version == 1:
        if options.get("format") == JWT_FORMAT:
            raise _fail("options.invalid", "VC-JOSE-COSE (format vc+jwt) secures VC 2.0 credentials only; sign a VC "
                        "1.1 credential with a Data Integrity cryptosuite.", field="format")
        if options.get("credentialStatus") is not None:
            raise _fail("options.invalid", "Bitstring Status List entries are VC 2.0 terms; a VC 1.1 credential is "
                        "issued without a status entry.", field="credentialStatus")
    from .lawful import check_lawful
    check_lawful(node, credential, options)   # the lawful-basis rulebook (verifier.lawful): nothing unlawful is signed
    return credential, options, cead_type


def _check_subject(subject: Any, *, several: bool) -> None:
    """A non-empty subject object; the general profile also takes a non-empty list of them (several subjects).
    Whether a subject needs an 'id' is the typed model's rule (an approval's subject is the arrangement)."""
    subjects = subject if several and isinstance(subject, list) and subject else [subject]
    if not all(isinstance(item, dict) and item for item in subjects):
        raise _fail("credential.invalid", "'credentialSubject' must be a non-empty object"
                    + (" or a non-empty list of them." if several else "."), field="credentialSubject")


SELF_CONTAINED_DIDS = ("did:key:", "did:jwk:")   # DIDs whose document is the DID itself: checkable offline


def _check_subject_dids(subject: Any, path: str = "credentialSubject", depth: int = 0) -> None:
    """Every did:key and did:jwk in the subject (a delegate, a recipient, a certified organisation...) must decode to
    a usable public key (``did.invalid``): a DID's syntax alone admits ``did:key:zzz``, and a credential naming a key
    no one can hold could never be presented. A did:web is checked for its syntax only (resolving it needs the
    network, and its document may not be published yet)."""
    if depth > 8:
        return
    if isinstance(subject, dict):
        for key, value in subject.items():
            _check_subject_dids(value, f"{path}.{key}", depth + 1)
    elif isinstance(subject, list):
        for n, value in enumerate(subject):
            _check_subject_dids(value, f"{path}[{n}]", depth + 1)
    elif isinstance(subject, str) and subject.startswith(SELF_CONTAINED_DIDS):
        from verifier.did import Resolver
        try:
            Resolver().resolve(subject.partition("#")[0])
        except CeadError as exc:
            raise _fail("did.invalid", f"'{path}' is not a usable DID: {exc.message}", field=path) from None


def _check_validity(credential: dict, version: int) -> None:
    """The validity period, stamped now when absent: validFrom/validUntil (VC 2.0) or issuanceDate/expirationDate
    (VC 1.1; the other pair is refused so that one credential has one reading of its period)."""
    names, other = (("validFrom", "validUntil"), ("issuanceDate", "expirationDate")) if version == 2 else \
        (("issuanceDate", "expirationDate"), ("validFrom", "validUntil"))
    for name in other:
        if name in credential:
            said, other_version = ("2.0", "1.1") if version == 2 else ("1.1", "2.0")
            raise _fail("credential.invalid", f"'{name}' is a VC {other_version} term; this credential's @context "
                        f"says VC {said}: use {names[0]}/{names[1]}.", field=name)
    start, end = names
    credential.setdefault(start, db.utcnow())
    window = {}
    for name in names:
        if name in credential:
            try:
                window[name] = parse_datetime(credential[name])
                if not is_datetime_stamp(credential[name]):  # what is signed must read the same everywhere
                    raise ValueError(f"{str(credential[name])[:60]!r} is not of the form 2025-01-01T00:00:00Z")
            except ValueError as exc:
                raise _fail("credential.invalid", f"'{name}' must be an XML Schema dateTimeStamp string (with Z or "
                            f"an offset): {exc}.", field=name) from None
    if end in window and window[end] < window[start]:
        raise _fail("credential.invalid", f"'{end}' is before '{start}'.", field=end)


def _check_as_a_verifier_would(credential: dict, *, general: bool = False) -> None:
    """Never sign what verifiers will refuse: the same data-model, context and credentialSchema checks they run.

    In the general profile a ``credentialSchema`` this node does not know is signed as given (VC Data Model 2.0:
    validating against it is the verifier's business, and Cead's verifier fetches no schema, so it reports such a
    credential as not validated rather than forged)."""
    from verifier.credential import Verifier
    problems = [p for p in Verifier().check_document(credential)
                if not (general and p.code == "credential.schema_unknown")]
    if problems:
        raise _fail("credential.invalid", "Verifiers would refuse this credential: "
                    + "; ".join(f"{p.code}: {p.message}" for p in problems),
                    problems=[p.to_dict() for p in problems])


def _validate_model(credential: dict, cead_type: str) -> None:
    """Check the subject against the vocabulary's typed model (raises ``schema.invalid`` naming the field)."""
    from schemas.models import model_for
    model = model_for(credential)
    if model is None:
        raise _fail("credential.type_unknown", f"No model for {cead_type}.", field="type")
    model.from_credential(credential)


def _check_option_keys(options: dict, credential: dict) -> None:
    """Refuse option keys this node does not take (naming the key, and the option meant when it looks misspelt)."""
    import difflib
    for key in options:
        if key in OPTIONS:
            continue
        name = _printable(str(key))[:80]
        if key in UNSUPPORTED_OPTIONS:
            raise _fail("options.invalid", f"options.{name} is not supported: {UNSUPPORTED_OPTIONS[key]}.",
                        field=name)
        if key == "mandatoryPointers":
            pointers = options[key]
            if not isinstance(pointers, list) or not all(isinstance(p, str) for p in pointers):
                raise _fail("options.invalid", "options.mandatoryPointers must be a list of JSON pointers (strings).",
                            field=name)
            continue
        if key == "credentialId":
            if options[key] != credential.get("id"):
                raise _fail("options.invalid", "options.credentialId must be the credential's own 'id' (this node "
                            "refers to a credential by its id); leave it out, or set credential.id.", field=name)
            continue
        guess = difflib.get_close_matches(str(key), OPTIONS + IGNORED_OPTIONS, n=1)
        raise _fail("options.invalid", f"Unknown option {name!r}"
                    + (f" (did you mean {guess[0]!r}?)" if guess else "")
                    + f"; this node takes {', '.join(OPTIONS)} (and VC-API's {', '.join(IGNORED_OPTIONS)}).",
                    field=name)


def _check_options(node, options: dict, credential: dict | None = None) -> None:
    _check_option_keys(options, credential or {})
    fmt = options.get("format")
    if fmt is not None and fmt not in (JWT_FORMAT, "ldp_vc"):
        raise _fail("options.invalid", f"Unknown format {fmt!r}; use {JWT_FORMAT} or omit it.", field="format")
    suite = options.get("cryptosuite")
    if suite is not None and suite not in CRYPTOSUITES:
        raise _fail("options.invalid", f"Unknown cryptosuite {suite!r}; use {' or '.join(CRYPTOSUITES)}.",
                    field="cryptosuite")
    if fmt == JWT_FORMAT and suite is not None:
        raise _fail("options.invalid", "Choose either a cryptosuite or format vc+jwt, not both.", field="format")
    alg = options.get("alg")
    if alg is not None and (fmt != JWT_FORMAT or alg not in _KIND_OF_ALG):
        raise _fail("options.invalid", f"'alg' is one of {', '.join(_KIND_OF_ALG)} and only with format vc+jwt.",
                    field="alg")
    if alg is not None and not node.has_key(_KIND_OF_ALG[alg]):
        kind = _KIND_OF_ALG[alg]
        raise _fail("options.invalid", f"This node has no {kind} key, so it cannot sign with {alg} (a did:key node "
                    f"has only its Ed25519 key; a did:web node adds one with `cead key rotate --kind {kind}`); "
                    "use alg EdDSA.", field="alg")
    _purposes(options)


def _purposes(options: dict) -> list[str]:
    """Status purposes: revocation always; suspension when ``options.credentialStatus`` asks for it."""
    wanted = options.get("credentialStatus")
    if wanted is None:
        return ["revocation"]
    if not isinstance(wanted, dict) or wanted.get("type", "BitstringStatusListEntry") != "BitstringStatusListEntry":
        raise _fail("options.invalid", "options.credentialStatus must be {\"type\": \"BitstringStatusListEntry\", "
                    "\"statusPurpose\": [...]}.", field="credentialStatus")
    for key in wanted:
        if key not in STATUS_OPTIONS:
            name = _printable(str(key))[:80]
            raise _fail("options.invalid", f"Unknown option credentialStatus.{name}; it takes type and statusPurpose.",
                        field=f"credentialStatus.{name}")
    purposes = wanted.get("statusPurpose", ["revocation"])
    purposes = [purposes] if isinstance(purposes, str) else purposes
    if not isinstance(purposes, list) or any(p not in ("revocation", "suspension") for p in purposes):
        raise _fail("options.invalid", "statusPurpose may be revocation and/or suspension.",
                    field="credentialStatus")
    return ["revocation"] + (["suspension"] if "suspension" in purposes else [])


def check_delegation(node, credential: dict, cead_type: str, delegation: Any) -> None:
    """Guard rail: nothing is signed under a delegation that would not verify (its proof, and its chain back to the
    organisation it acts for: ``delegation.invalid``) or is not in force (``delegation.not_in_force``), and a child
    wider than the signer's own delegation is refused (``scope.too_wide``). ``delegation``: ``options.delegation``,
    the signer's own delegation (a credential as signed, or the id of one in HOME/delegations/), or a list of
    delegations, root first, ending with the signer's own: the chain it rests on (``issuer.delegation_chain``)."""
    if delegation is None:
        return
    if cead_type not in GUARDED_TYPES:   # given but meaningless: say so rather than ignore it
        raise _fail("options.invalid", f"options.delegation applies to delegations and approvals, not to a "
                    f"{cead_type or ' '.join(types_of(credential))}.", field="delegation")
    from .delegation_chain import check_chain, document_of
    items = delegation if isinstance(delegation, list) else [delegation]
    if not items:
        raise _fail("delegation.invalid", "options.delegation is an empty list; give the signer's own delegation "
                    "(last, after the delegations it rests on).")
    if len(items) > 16:
        raise _fail("delegation.invalid", "options.delegation holds more than 16 delegations; no chain is longer.")
    chain = [load_delegation(node, item) for item in items]
    signed = chain[-1]
    parent = document_of(signed)
    if "DelegatedAuthorityCredential" not in types_of(parent):
        raise _fail("delegation.invalid", "options.delegation must be a DelegatedAuthorityCredential.")
    subject = parent.get("credentialSubject")
    if not isinstance(subject, dict) or subject.get("id") != node.did:
        raise _fail("delegation.invalid", f"The delegation given is not held by this node ({node.did}).")
    # its proof and its chain to the controller verify, every link in force (suspended, revoked, expired or status
    # unknown: nothing is signed under it)
    check_chain(node, signed, chain[:-1])
    from schemas.models import DataSharingApproval, DelegatedAuthority
    from verifier import scope
    vocabulary = node.vocabulary   # with the node's own terms (config.yaml vocabulary), if any
    if cead_type == "DelegatedAuthorityCredential":
        child = DelegatedAuthority.from_credential(credential)
        # a parent given as a credential must be pinned by the child's parentDelegation (id and digest); a vc+jwt
        # is pinned by the digest of its compact form, which the scope algebra does not see, so it is compared here
        violations = scope.delegation_within(child, signed if isinstance(signed, dict) else
                                             DelegatedAuthority.from_credential(parent), vocabulary=vocabulary)
        ref = child.parent_delegation
        if not isinstance(signed, dict) and (ref is None or ref.id != parent.get("id")
                                             or ref.digest != credential_digest(signed)):
            violations.insert(0, scope.Violation("parentDelegation", "the parentDelegation id and digest do not "
                                                 "match the parent credential", [child.parent]))
    else:
        violations = scope.approval_within(DataSharingApproval.from_credential(credential),
                                           DelegatedAuthority.from_credential(parent), vocabulary=vocabulary)
    if violations:
        raise _fail("scope.too_wide", "Wider than the signer's own delegation: "
                    + "; ".join(f"{v.dimension}: {v.message}" for v in violations),
                    dimensions=[v.dimension for v in violations],
                    violations=[v.to_problem().to_dict() for v in violations])


_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def load_delegation(node, delegation: Any) -> dict | str:
    """A DelegatedAuthorityCredential as signed: given as an object (a Data Integrity credential, or a vc+jwt as an
    EnvelopedVerifiableCredential), a compact vc+jwt, or the id of one kept in HOME/delegations/. A vc+jwt is
    returned as its compact JWT (what its signature and digest are of)."""
    from .delegation_chain import document_of
    if isinstance(delegation, dict):
        return _signed_form(delegation)
    if isinstance(delegation, str):
        if _COMPACT_JWS.fullmatch(delegation.strip()):
            return delegation.strip()
        for path in sorted((node.home / "delegations").glob("*.json")):
            try:
                signed = _signed_form(json.loads(path.read_text()))
                if document_of(signed).get("id") == delegation:
                    return signed
            except (ValueError, AttributeError, CeadError):
                continue
        raise _fail("delegation.invalid", f"No delegation {delegation!r} in {node.home / 'delegations'}.")
    raise _fail("delegation.invalid", "options.delegation must be a credential object or the id of one (or a list "
                "of them, root first).")


def _signed_form(delegation: Any) -> dict | str:
    """A delegation object as signed: an EnvelopedVerifiableCredential becomes its compact JWT."""
    from verifier.credential import unwrap_enveloped
    try:
        return unwrap_enveloped(delegation)
    except CeadError as exc:
        raise _fail("delegation.invalid", f"options.delegation: {exc.message}") from None


def issue(node, credential: Any, options: Any = None, *, issued_by: str | None = None,
          scopes: Iterable[str] | None = None, idempotency_key: str | None = None) -> Issued:
    """Sign ``credential`` as this node and record it. ``scopes`` (None = all, for the DPO's command line).
    A retry of the same request (same ``idempotency_key``, or the same credential ``id``) returns the credential
    signed the first time (``issuer.idempotency``)."""
    idem_key, digest = idempotency.check_key(idempotency_key), idempotency.request_hash(credential, options)
    credential, options, cead_type = check_request(node, credential, options)
    needed = TYPE_SCOPES[cead_type] if cead_type else GENERAL_SCOPE
    if scopes is not None and needed not in set(scopes):
        what = cead_type or f"a credential of type {', '.join(types_of(credential))}"
        raise _fail("auth.scope", f"This token may not issue {what} (needs {needed}).", scope=needed)
    check_delegation(node, credential, cead_type, options.get("delegation"))
    fmt = JWT_FORMAT if options.get("format") == JWT_FORMAT else options.get("cryptosuite") or CRYPTOSUITES[0]
    kind = _KIND_OF_ALG.get(options.get("alg"), ED25519)
    replayed = _replay(node, idem_key, credential["id"], digest, issued_by)
    if replayed is not None:
        return replayed
    key, vm = node.signer(kind)       # read together: a rotation meanwhile cannot pair one key with the other's id
    try:
        with node.session() as s:
            if s.get(db.IssuedCredential, credential["id"]) is not None:
                raise _fail("credential.duplicate_id", f"A credential with id {credential['id']} was issued before.")
            # Cead's own types always carry a revocation entry; other credentials carry one only on request.
            purposes = _purposes(options) if cead_type or options.get("credentialStatus") is not None else []
            entries = [statuslist.allocate(s, node, credential["id"], p) for p in purposes]
            if entries:
                credential["credentialStatus"] = entries[0] if len(entries) == 1 else entries
            if fmt == JWT_FORMAT:
                signed: dict | str = sign_jwt(credential, key, vm)
                vc = {"@context": V2_CONTEXT, "id": f"data:application/vc+jwt,{signed}",
                      "type": "EnvelopedVerifiableCredential"}
            else:
                from .signing import add_proof
                signed = add_proof(credential, key, vm, cryptosuite=fmt)
                vc = signed
            subject = credential["credentialSubject"]
            subject = subject if isinstance(subject, dict) else subject[0]   # several subjects: the first named
            s.add(db.IssuedCredential(
                id=credential["id"], types=",".join(types_of(credential)),
                subject=subject.get("id") or " ".join(subject.get("recipients") or []) or None,
                subject_name=_subject_name(cead_type, subject),
                valid_from=credential.get("validFrom", credential.get("issuanceDate")),
                valid_until=credential.get("validUntil", credential.get("expirationDate")), format=fmt,
                verification_method=vm, digest=credential_digest(signed), status_entries=json.dumps(entries),
                issued_by=issued_by, **_public_terms(cead_type, subject)))
            idempotency.record(s, key=idem_key, credential_id=credential["id"], digest=digest, issued_by=issued_by,
                               response={"id": credential["id"], "format": fmt, "credential": signed,
                                         "verifiableCredential": vc})
            from .evidence import record   # in the node's log, committed with the register row (issue 15)
            record.issued(node, s, credential_id=credential["id"], types=types_of(credential),
                          digest=credential_digest(signed), verification_method=vm,
                          valid_from=credential.get("validFrom", credential.get("issuanceDate")),
                          valid_until=credential.get("validUntil", credential.get("expirationDate")))
            s.commit()
        idempotency.after_commit(credential["id"])
    except IntegrityError:   # a concurrent twin committed first: its reply, or a duplicate id
        replayed = _replay(node, idem_key, credential["id"], digest, issued_by)
        if replayed is not None:
            return replayed
        raise _fail("credential.duplicate_id", f"A credential with id {credential['id']} was issued before.") \
            from None
    return Issued(credential["id"], fmt, signed, vc)


def _subject_name(cead_type: str | None, subject: dict) -> str | None:
    """The subject's name as the credential states it, for the register: a delegation's ``name`` (the person or post
    delegated to), a certification's ``legalName``; None for anything else (an approval names its recipients by
    DID only)."""
    field = {"DelegatedAuthorityCredential": "name", "OrganisationCertificationCredential": "legalName"}.get(
        cead_type or "")
    value = subject.get(field) if field else None
    return value if isinstance(value, str) and value.strip() else None


def _public_terms(cead_type: str | None, subject: dict) -> dict:
    """An approval's datasets and purposes for the register (public metadata: issuer.catalogue publishes the
    approvals in force per dataset)."""
    if cead_type != "DataSharingApprovalCredential":
        return {}
    return {name: json.dumps([v for v in subject.get(name) or [] if isinstance(v, str)])
            for name in ("datasets", "purposes")}


def _replay(node, key, credential_id: str, digest: str, issued_by: str | None) -> Issued | None:
    with node.session() as s:
        stored = idempotency.replay(s, key=key, credential_id=credential_id, digest=digest, issued_by=issued_by)
    if stored is None:
        return None
    return Issued(stored["id"], stored["format"], stored["credential"], stored["verifiableCredential"],
                  replayed=True)


def cosign(node, credential: Any, *, verifier=None) -> dict:
    """Co-sign a Data Integrity credential as this node: its proof is added to the credential's proof set (W3C Data
    Integrity: each proof signs the document without the proof set), with the cryptosuite of the issuer's proof.

    The credential must verify first (proofs, issuer, data model, schema, validity period; ``verifier`` defaults
    to one resolving DIDs with the node's network settings; status is checked by whoever relies on it). A vc+jwt
    credential carries its issuer's signature only and cannot be co-signed (``credential.not_cosignable``); the
    issuer, or a DID that has already signed, cannot co-sign (``credential.already_signed``).
    """
    from verifier.compose import build_verifier
    from .signing import add_proof
    if isinstance(credential, str) or "EnvelopedVerifiableCredential" in types_of(credential):
        raise _fail("credential.not_cosignable", "A vc+jwt credential carries only its issuer's signature and cannot "
                    "be co-signed; ask the issuer for a Data Integrity credential (eddsa-rdfc-2022 or "
                    "eddsa-jcs-2022).")
    if not isinstance(credential, dict) or not credential.get("proof"):
        raise _fail("credential.not_cosignable", "Only a credential its issuer has signed with a Data Integrity "
                    "proof can be co-signed.")
    result = (verifier or build_verifier(fetcher=node.fetcher(), status=False, caching=False)
              ).verify_credential(credential)
    if not result.verified:
        raise _fail("credential.unverified", "The credential does not verify, so it is not co-signed: "
                    + "; ".join(f"{p.code}: {p.message}" for p in result.problems[:5]),
                    problems=[p.to_dict() for p in result.problems])
    if node.did == result.issuer or node.did in result.co_signers:
        raise _fail("credential.already_signed", f"{node.did} has already signed this credential"
                    + (" as its issuer; a co-signer is someone else." if node.did == result.issuer else "."))
    issuer_proof = next((p for p in as_list(credential["proof"])
                         if p.get("verificationMethod") == result.verification_method), {})
    suite = issuer_proof.get("cryptosuite") if issuer_proof.get("cryptosuite") in CRYPTOSUITES else CRYPTOSUITES[0]
    key, vm = node.signer(ED25519)
    return add_proof(credential, key, vm, cryptosuite=suite)


def status_scope(types: Iterable[str]) -> str | None:
    """The issuing scope a status change of a credential with these types needs besides ``status:change``: none for an
    approval (an IAO suspends, reinstates and revokes approvals), the scope to issue it for anything else (a
    delegation: ``issue:delegation``; a certification: ``issue:certification``; another type: ``issue:any``), so one
    who may not issue a delegation may not reinstate one either (an IAO whose delegation the DPO suspended)."""
    cead = [TYPE_SCOPES[t] for t in types if t in TYPE_SCOPES]
    needed = cead[0] if cead else GENERAL_SCOPE
    return None if needed == TYPE_SCOPES["DataSharingApprovalCredential"] else needed


def _kind_words(types: list[str]) -> str:
    from schemas.words import kind_name
    named = [t for t in types if t != "VerifiableCredential"]
    return kind_name(named[0]).lower() if named else "credential"


def change_status(node, credential_id: str, action: str, *, by: str | None = None,
                  reason: str | None = None, scopes: Iterable[str] | None = None) -> dict:
    """Revoke, suspend or reinstate; committed before returning. Revocation is final. ``scopes`` (None = all, for
    the DPO's command line): besides ``status:change`` (checked by the caller), a credential other than an approval
    needs the scope to issue its kind (:func:`status_scope`), else ``auth.scope``. A credential whose period is over
    is neither suspended nor reinstated (:func:`period_over`, ``status.period_over``); it can still be revoked."""
    if action not in ACTIONS:
        raise _fail("request.invalid", f"Unknown status action {action!r}; use revoke, suspend or reinstate.")
    if not isinstance(credential_id, str) or not credential_id:
        raise _fail("request.invalid", "A credentialId is needed.", field="credentialId")
    purpose, value, new_status = ACTIONS[action]
    with node.session() as s:
        # locked until commit, so a revoke and a reinstate at once cannot leave the register and the list apart
        row = s.get(db.IssuedCredential, credential_id, with_for_update=True)
        if row is None:
            raise _fail("credential.not_found", f"This node has not issued {credential_id}.")
        needed = status_scope(row.types.split(","))
        if scopes is not None and needed is not None and needed not in set(scopes):
            raise _fail("auth.scope", f"You may not {action} {credential_id}: changing the status of a "
                        f"{_kind_words(row.types.split(','))} needs {needed}, the scope to issue one (ask the Data Protection "
                        "Officer).", scope=needed)
        if row.status == "revoked" and action != "revoke":
            raise _fail("status.revoked_permanent", f"{credential_id} is revoked; revocation cannot be undone.")
        refused = period_over(s, row, action)        # in this session: no second one while the row is locked
        if refused:
            raise _fail("status.period_over", refused)
        statuslist.set_status(s, credential_id, purpose, value)
        if row.status != new_status:
            row.status = new_status
            row.updated_at = db.utcnow()
            s.add(row)
            s.add(db.StatusEvent(credential_id=credential_id, action=action, by=by, reason=reason))
            changed = True
            from .evidence import record   # in the node's log, committed with the change (issue 15)
            record.status_changed(node, s, credential_id=credential_id, action=action, status=new_status)
        else:
            changed = False
        s.commit()
    if changed:
        from . import notifications
        event = {"revoke": "credential.revoked", "suspend": "credential.suspended",
                 "reinstate": "credential.reinstated"}[action]
        notifications.emit(node, event, {"credential": credential_id, "status": new_status, "by": by,
                                         "reason": reason}, subject=credential_id)
    return {"credentialId": credential_id, "status": new_status}


def parse_status_request(body: Any) -> tuple[str, str]:
    """VC-API ``POST /credentials/status`` body -> (credentialId, action: "revoke" | "suspend" | "reinstate").

    Two shapes are accepted:

    - the current VC-API ``UpdateCredentialStatusRequest``: ``{"credentialId": ID, "credentialStatus": {"type":
      "BitstringStatusListEntry", "statusPurpose": "revocation" | "suspension"}, "status": true | false}``
      (``type`` may also be ``BitstringStatusList``, as in the VC-API's own example). revocation + true revokes,
      suspension + true suspends, suspension + false reinstates; revocation + false is refused (revocation is final);
    - the earlier form ``{"credentialId": ID, "credentialStatus": [{"type": ..., "status": "revoked" | "suspended" |
      "active"}]}`` (a single object is accepted too).
    """
    if not isinstance(body, dict):
        raise _fail("request.invalid", "The request body must be a JSON object.")
    cid = body.get("credentialId")
    if not isinstance(cid, str) or not cid:
        raise _fail("request.invalid", "'credentialId' is missing.", field="credentialId")
    if "status" in body:
        return cid, _status_update_action(body)
    statuses = body.get("credentialStatus")
    statuses = [statuses] if isinstance(statuses, dict) else statuses
    if not isinstance(statuses, list) or len(statuses) != 1 or not isinstance(statuses[0], dict):
        raise _fail("request.invalid", "'credentialStatus' must hold one {type, status} object.",
                    field="credentialStatus")
    wanted = statuses[0].get("status")
    actions = {"revoked": "revoke", "suspended": "suspend", "active": "reinstate"}
    if not isinstance(wanted, str) or wanted not in actions:   # (a list or object is no status, and unhashable)
        raise _fail("request.invalid", "status must be revoked, suspended or active.", field="status")
    return cid, actions[wanted]


_STATUS_ENTRY_TYPES = ("BitstringStatusListEntry", "BitstringStatusList")


def _status_update_action(body: dict) -> str:
    """The action of a VC-API ``UpdateCredentialStatusRequest`` (top-level boolean ``status``)."""
    entry = body.get("credentialStatus")
    if not isinstance(entry, dict):
        raise _fail("request.invalid", "'credentialStatus' must be an object {type, statusPurpose}.",
                    field="credentialStatus")
    if entry.get("type") not in _STATUS_ENTRY_TYPES:    # (only strings can be in the tuple)
        raise _fail("request.invalid", "credentialStatus.type must be BitstringStatusListEntry.",
                    field="credentialStatus.type")
    purpose = entry.get("statusPurpose")
    if purpose not in ("revocation", "suspension"):
        raise _fail("request.invalid", "credentialStatus.statusPurpose must be revocation or suspension.",
                    field="credentialStatus.statusPurpose")
    status = body.get("status")
    if type(status) is not bool:   # (1, "true" and null are not booleans)
        raise _fail("request.invalid", "status must be true (set) or false (clear).", field="status")
    if purpose == "revocation" and not status:
        raise _fail("request.invalid", "Revocation is final: a revocation status cannot be cleared (status "
                    "false). Use statusPurpose suspension to suspend and reinstate.", field="status")
    return "revoke" if purpose == "revocation" else "suspend" if status else "reinstate"


# ---- the register ----------------------------------------------------------------------------------------------

REGISTER_FIELDS = ("id", "types", "subject", "subject_name", "issued_at", "valid_from", "valid_until", "format",
                   "verification_method", "status", "status_entries", "digest", "issued_by", "updated_at")


def register(node) -> list[db.IssuedCredential]:
    with node.session() as s:
        return list(s.exec(select(db.IssuedCredential).order_by(db.IssuedCredential.issued_at,
                                                                 db.IssuedCredential.id)))


def status_words(node, rows: Iterable[db.IssuedCredential], *, in_force: str = "active",
                 now=None) -> dict[str, str]:
    """Each register row's standing in plain words, by credential id, as a badge shows it
    (``schemas.words.status_words``): "revoked", "expired", "suspended", "not yet in force", else ``in_force``.
    The time a credential is in force is its validity narrowed by the ``notBefore``/``notAfter`` it states (an
    approval's window, a delegation's scope), read from the credential as issued (``IssueRecord``); the register's
    own ``valid_from``/``valid_until`` where that is not kept."""
    from schemas import words
    rows = list(rows)
    windows = in_force_windows(node, [r.id for r in rows])
    out = {}
    for r in rows:
        starts, ends = windows.get(r.id, (None, None))
        out[r.id] = words.status_words(r.status, valid_until=ends or r.valid_until,
                                       valid_from=starts or r.valid_from, now=now, in_force=in_force)
    return out


def in_force_windows(node, ids: list[str]) -> dict[str, tuple]:
    """``{credential id: (from, until)}`` for those of ``ids`` whose signed credential the node kept
    (``IssueRecord``): ``schemas.words.in_force_window`` of it."""
    if not ids:
        return {}
    with node.session() as s:
        return _in_force_windows(s, ids)


def _in_force_windows(s, ids: list[str]) -> dict[str, tuple]:
    """:func:`in_force_windows`, read in the session ``s`` (one the caller already holds)."""
    from schemas import words
    from verifier.jose import unverified_claims
    out = {}
    for chunk in range(0, len(ids), 500):
        for record in s.exec(select(db.IssueRecord).where(db.IssueRecord.credential_id.in_(
                ids[chunk:chunk + 500]))):
            try:
                signed = json.loads(record.response).get("credential")
                document = unverified_claims(signed) if isinstance(signed, str) else signed
            except (ValueError, AttributeError, CeadError):
                continue
            out[record.credential_id] = words.in_force_window(document)
    return out


def period_over(s, row: db.IssuedCredential | None, action: str, *, now=None) -> str | None:
    """Why ``action`` (suspend or reinstate) is refused for ``row``, a credential whose period is over (the badge
    "expired", as :func:`status_words` gives it: its validity, narrowed by the ``notBefore``/``notAfter`` it states,
    ended), else None. ``s`` is a session the caller holds (:func:`change_status` reads this while it has the row
    locked). Such a credential is no longer in force either way, so suspending it or lifting its suspension changes
    nothing a relying party may act on; revoking it is still allowed (final, and shown in the status list). The
    register offers no such button (``issuer.pages``); every path (the API, ``cead suspend``/``reinstate``, the
    pages) is refused by this, in these words."""
    from schemas import words
    if row is None or action not in ("suspend", "reinstate"):
        return None
    starts, ends = _in_force_windows(s, [row.id]).get(row.id, (None, None))
    if words.status_words(row.status, valid_until=ends or row.valid_until, valid_from=starts or row.valid_from,
                          now=now) != "expired":
        return None
    ended = words.moment_words(ends or row.valid_until)
    return (f"{words.kind_name(row.types.split(',')[-1])} {row.id} ended on {ended}: it is no longer in force, so "
            f"there is nothing to {action}. It can still be revoked, which is final.")


def register_csv(rows: Iterable[db.IssuedCredential]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(REGISTER_FIELDS)
    for row in rows:
        writer.writerow([_csv_safe(getattr(row, f)) for f in REGISTER_FIELDS])
    return out.getvalue()


def _csv_safe(value: Any) -> str:
    """Neutralise spreadsheet formulas (a subject id or name could start with '='): a cell starting with =, +, -, @,
    a tab or a carriage return (OWASP's list, as ``cead audit``'s CSV) is prefixed with a quote."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
