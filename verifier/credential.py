"""Verify credentials and presentations: proof (Data Integrity or VC-JOSE), data model, schema, issuer binding,
validity period and status. Public methods never raise for bad input; they return a ``VerificationResult``.

A credential is a JSON object secured with Data Integrity proofs, or a compact JWS string (``vc+jwt``; the VC 1.1
JWT encoding is accepted for older peers). Checks follow the VC Data Model 2.0 (and 1.1 for ``/2018/credentials/v1``
documents).
"""
from __future__ import annotations

import functools
import json
import logging
import re
import threading
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote

import jsonschema
try:   # the compiled (Rust) validator: a fast "is it valid?" before the reference validator (see _check_schemas)
    import jsonschema_rs
except ImportError:   # pragma: no cover  (a dependency; without it every document goes through jsonschema)
    jsonschema_rs = None
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

import schemas

from schemas.values import as_list, id_of, is_url, strict_json

from . import jose
from . import rdfc
from .dataintegrity import verify_proofs
from .context import MAX_CREDENTIALS, MAX_JSON, VerificationContext  # noqa: F401  (the defaults, re-exported)
from .did import Resolver
from .suites import DEFAULT_SUITES
from . import jsonld
from .results import CeadError, Problem, VerificationResult

log = logging.getLogger(__name__)

V2_CONTEXT = "https://www.w3.org/ns/credentials/v2"
V1_CONTEXT = "https://www.w3.org/2018/credentials/v1"
ENVELOPED_JWT_PREFIX = "data:application/vc+jwt,"
ENVELOPED_VP_PREFIX = "data:application/vp+jwt,"
# XML Schema 1.1 dateTime (ASCII digits, "T", seconds required; a time zone optional here). VC 2.0 validFrom/validUntil
# must be a dateTimeStamp, i.e. this with a time zone; ISO 8601 forms Python also reads (a bare date, "20250101T...",
# week dates, a space for "T", no seconds) are not dateTimes and are refused rather than read one way here and
# another way by other verifiers.
XSD_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
                          r"(Z|[+-][0-9]{2}:[0-9]{2})?")
# Data Integrity reports the request binding of a presentation as proof problems; use the presentation codes.
_PRESENTATION_PROOF_CODES = {"proof.challenge_mismatch": "presentation.nonce_mismatch",
                             "proof.domain_mismatch": "presentation.audience_mismatch",
                             "proof.expired": "presentation.expired"}


# ---- small helpers ----------------------------------------------------------------------------------------------
# VC Data Model 2.0 section 4.5: the objects of these properties "MUST have a type specified".
_TYPED_PROPERTIES = ("credentialStatus", "credentialSchema", "evidence", "refreshService", "termsOfUse")
# Subresource Integrity (W3C SRI section 3.5): hash-expression = hash-algo "-" base64-value
_SRI = re.compile(r"(sha256|sha384|sha512)-[A-Za-z0-9+/_\-]+={0,2}(\?[\x21-\x7e]*)?")


def _type_problem(value: Any, where: str) -> str | None:
    if "type" not in value:
        return f"{where} has no type (VC Data Model 2.0 section 4.5: it MUST have one)."
    types = value["type"]
    if not as_list(types) or not all(isinstance(t, str) and t for t in as_list(types)):
        return f"{where}.type must be a term or a URL (a string), or a list of them."
    return None


def property_problems(doc: dict, version: str) -> list[Problem]:
    """The VC Data Model rules for a credential's own properties that JSON-LD alone does not enforce: each ``id`` a
    single URL (section 4.4: the credential's, its issuer's, its subjects' and those of the objects below); each
    ``credentialStatus``, ``credentialSchema``, ``evidence``, ``refreshService`` and ``termsOfUse`` object with a
    ``type`` (section 4.5), a ``credentialSchema`` with an ``id`` (section 4.11); and ``relatedResource`` (VC 2.0
    section 5.3) one or more objects, each with a unique URL ``id`` and a ``digestSRI`` or ``digestMultibase``.
    Whether a related resource's digest matches is not checked: the verifier does not retrieve related resources."""
    found: list[str] = []

    def check_id(value: Any, where: str, required: bool = False, section: str = "4.4") -> None:
        if value is None and not required:
            return
        if isinstance(value, list):
            found.append(f"{where} must be a single URL, not a list (VC Data Model 2.0 section {section}).")
        elif not is_url(value):
            found.append(f"{where} {str(value)[:80]!r} is not a URL (VC Data Model 2.0 section {section})."
                         if value is not None else f"{where} is missing; it must be a URL.")

    if "id" in doc:
        check_id(doc["id"], "id", required=True)
    issuer = doc.get("issuer")
    if isinstance(issuer, dict) and "id" in issuer:
        check_id(issuer["id"], "issuer.id", required=True, section="4.7")
    elif isinstance(issuer, str) or (issuer is not None and not isinstance(issuer, dict)):
        check_id(issuer, "issuer", required=True, section="4.7")
    subjects = doc.get("credentialSubject")
    for index, subject in enumerate(as_list(subjects)):
        if isinstance(subject, dict) and "id" in subject:
            check_id(subject["id"], f"credentialSubject{f'[{index}]' if isinstance(subjects, list) else ''}.id",
                     required=True)
    for name in _TYPED_PROPERTIES:
        if name not in doc:
            continue
        values = doc[name]
        for index, value in enumerate(as_list(values)):
            where = f"{name}[{index}]" if isinstance(values, list) else name
            if not isinstance(value, dict):
                found.append(f"{where} must be an object with a type.")
                continue
            problem = _type_problem(value, where)
            if problem:
                found.append(problem)
            check_id(value.get("id"), f"{where}.id", required=name == "credentialSchema" or "id" in value)
        if not as_list(values):
            found.append(f"{name} must be one or more objects.")
    if version == "2.0" and "relatedResource" in doc:
        values = doc["relatedResource"]
        seen: set[str] = set()
        if not as_list(values):
            found.append("relatedResource must be one or more objects (VC Data Model 2.0 section 5.3).")
        for index, value in enumerate(as_list(values)):
            where = f"relatedResource[{index}]" if isinstance(values, list) else "relatedResource"
            if not isinstance(value, dict):
                found.append(f"{where} must be an object with an id and a digest, not "
                             f"{type(value).__name__ if not isinstance(value, str) else 'a string'} "
                             "(VC Data Model 2.0 section 5.3).")
                continue
            check_id(value.get("id"), f"{where}.id", required=True)
            if isinstance(value.get("id"), str):
                if value["id"] in seen:
                    found.append(f"{where}.id {value['id'][:80]!r} is listed twice; each related resource's id "
                                 "MUST be unique (VC Data Model 2.0 section 5.3).")
                seen.add(value["id"])
            if "digestSRI" not in value and "digestMultibase" not in value:
                found.append(f"{where} has neither digestSRI nor digestMultibase; it MUST have at least one "
                             "(VC Data Model 2.0 section 5.3).")
            for sri in as_list(value.get("digestSRI")):
                if not (isinstance(sri, str) and _SRI.fullmatch(sri)):
                    found.append(f"{where}.digestSRI {str(sri)[:80]!r} is not an SRI hash expression "
                                 "(sha256-, sha384- or sha512- and base64).")
            for digest in as_list(value.get("digestMultibase")):
                if not (isinstance(digest, str) and len(digest) > 1):
                    found.append(f"{where}.digestMultibase must be a multibase string.")
            if "mediaType" in value and not isinstance(value["mediaType"], str):
                found.append(f"{where}.mediaType must be a string.")
    return [Problem("credential.property_invalid", message, {"property": message.split(" ", 1)[0]})
            for message in found]


def _did_of(vm_id: str | None) -> str | None:
    return vm_id.split("#", 1)[0] if isinstance(vm_id, str) else None


def is_datetime_stamp(value: Any) -> bool:
    """Whether ``value`` is an XML Schema dateTimeStamp string (a dateTime with ``Z`` or an offset)."""
    match = XSD_DATETIME.fullmatch(value) if isinstance(value, str) else None
    return bool(match and match.group(1))


def _parse_time(value: Any, name: str, *, require_zone: bool) -> datetime:
    match = XSD_DATETIME.fullmatch(value) if isinstance(value, str) else None
    try:
        when = datetime.fromisoformat(value) if match else None
    except ValueError:
        when = None
    if when is None or (require_zone and when.tzinfo is None):
        raise CeadError("credential.date_invalid", f"{name} must be an XML Schema dateTime"
                        f"{' with a time zone' if require_zone else ''}, got {str(value)[:60]!r}.")
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def validity_end(raw: dict | str, document: dict, claims: dict | None = None) -> datetime | None:
    """When a verified credential stops being valid: the earliest of ``validUntil``, a VC 1.1 ``expirationDate``
    and a JWT's ``exp``; None when it never does. Raises ``ValueError`` when one of them cannot be read (a
    ``validUntil`` needs a time zone, as VC 2.0 says; a VC 1.1 ``expirationDate`` without one is read as UTC).

    ``raw`` is the credential as received (a compact JWT or JSON), ``document`` what the Verifier made of it,
    ``claims`` the JWT's claims if the Verifier has read them already (``VerificationResult.claims``).
    """
    ends = []
    for name in ("validUntil", "expirationDate"):
        if name in document:
            try:
                ends.append(_parse_time(document[name], name, require_zone=name == "validUntil"))
            except CeadError as exc:
                raise ValueError(exc.message) from None
    if _is_jwt(raw):
        try:
            exp = (claims if claims is not None else jose.unverified_claims(raw)).get("exp")
        except CeadError:
            exp = None
        if exp is not None:
            try:
                ends.append(datetime.fromtimestamp(float(exp), timezone.utc))
            except (TypeError, OverflowError, OSError):
                raise ValueError(f"The JWT exp {str(exp)[:40]!r} is not a date.") from None
    return min(ends) if ends else None


def _is_jwt(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    value = value.strip()
    return not value.startswith("{") and jose.dots(value) is not None


def _load(value: Any, what: str, max_json: int = MAX_JSON) -> dict | str:
    """A JSON document (dict), or a compact JWT (str); JSON text is parsed (at most ``max_json`` characters)."""
    code = f"{what}.malformed"
    if isinstance(value, dict):
        return value
    if isinstance(value, (bytes, bytearray)):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise CeadError(code, f"The {what} is not UTF-8 text.") from None
    if not isinstance(value, str) or len(value) > max_json:
        raise CeadError(code, f"The {what} must be a JSON object or a compact JWT string.")
    if _is_jwt(value):
        return value.strip()
    try:
        doc = strict_json(value, f"the {what}")
    except (ValueError, RecursionError):
        raise CeadError(code, f"The {what} is neither JSON nor a compact JWT.") from None
    if not isinstance(doc, dict):
        raise CeadError(code, f"The {what} must be a JSON object.")
    return doc


_ENVELOPES = {"credential": ("EnvelopedVerifiableCredential", ENVELOPED_JWT_PREFIX),
              "presentation": ("EnvelopedVerifiablePresentation", ENVELOPED_VP_PREFIX)}


def unwrap_enveloped(entry: Any, kind: str = "credential") -> Any:
    """VC 2.0 enveloping (VC-JOSE-COSE): ``EnvelopedVerifiableCredential`` with id ``data:application/vc+jwt,<jwt>``
    (or ``EnvelopedVerifiablePresentation`` with ``data:application/vp+jwt,<jwt>`` for ``kind="presentation"``)
    -> the JWT string; anything else is returned as given."""
    type_name, prefix = _ENVELOPES[kind]
    if isinstance(entry, dict) and type_name in as_list(entry.get("type")):
        # VC Data Model 2.0 section 4.13 (Enveloped Verifiable Credentials / Presentations): the envelope's
        # @context MUST be present and include a context defining id, type and the envelope's type: the base
        # context (the only one Cead knows to do so)
        if V2_CONTEXT not in as_list(entry.get("@context")):
            raise CeadError(f"{kind}.malformed", f"An {type_name} must have an @context that includes "
                            f"{V2_CONTEXT} (VC Data Model 2.0: it defines the {type_name} type).")
        data = entry.get("id")
        if not (isinstance(data, str) and data.startswith(prefix)):
            raise CeadError(f"{kind}.malformed", f"An {type_name} must have an id of the form {prefix}<jwt>.")
        return unquote(data[len(prefix):])
    return entry


@functools.lru_cache(maxsize=1)
def _schema_registry():
    """JSON Schemas shipped in ``schemas/jsonschema``, by ``$id``; schemas are never fetched."""
    by_id: dict[str, dict] = {}
    folder = schemas.data_path("jsonschema")
    if folder.is_dir():
        for item in folder.iterdir():
            if item.name.endswith(".json"):
                schema = json.loads(item.read_text(encoding="utf-8"))
                if isinstance(schema, dict) and isinstance(schema.get("$id"), str):
                    by_id[schema["$id"]] = schema
    registry = Registry().with_resources(
        (sid, Resource.from_contents(schema, default_specification=DRAFT202012)) for sid, schema in by_id.items())
    return by_id, registry


def _context_known(url: str) -> bool:
    """Whether the loader serves ``url`` (pinned or registered); the context itself is not copied."""
    return jsonld.is_known(url)


_VALIDATORS: dict[str, Any] = {}
_VALIDATORS_LOCK = threading.Lock()


def _validator(schema_id: str, schema: dict, registry) -> Any:
    """The compiled JSON Schema validator for a shipped schema, built once per process."""
    with _VALIDATORS_LOCK:
        validator = _VALIDATORS.get(schema_id)
    if validator is None:
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        cls.check_schema(schema)
        validator = cls(schema, registry=registry, format_checker=cls.FORMAT_CHECKER)
        with _VALIDATORS_LOCK:
            _VALIDATORS[schema_id] = validator
    return validator


_FAST: dict[str, Any] = {}


def _accept(value: Any) -> bool:
    return True


def _refuse_retrieval(uri: str):
    raise ValueError(f"schemas are never fetched ({uri})")


def _fast_validator(schema_id: str, by_id: dict) -> Any:
    """The compiled validator (``jsonschema_rs``, draft 2020-12) for a shipped schema, built once, or None.

    It must answer exactly as the reference validator (``jsonschema`` with its format checker) does, so it checks
    formats with the reference's own checkers and accepts the formats the reference does not check (``date-time``
    and ``iri`` here: jsonschema checks them only with optional packages Cead does not install); ``$ref``s resolve
    in the shipped schemas only, never over the network. tests/test_schema_fast_path.py holds the two to the same
    answers on valid and broken credentials of every schema."""
    if jsonschema_rs is None:
        return None
    with _VALIDATORS_LOCK:
        found = _FAST.get(schema_id)
    if found is None:
        checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
        used = {m for schema in by_id.values() for m in re.findall(r'"format":\s*"([^"]+)"', json.dumps(schema))}
        formats = {name: (lambda n: lambda value: checker.conforms(value, n))(name) for name in checker.checkers}
        formats.update({name: _accept for name in used if name not in checker.checkers})
        try:
            registry = jsonschema_rs.Registry(list(by_id.items()), retriever=_refuse_retrieval)
            found = jsonschema_rs.Draft202012Validator(by_id[schema_id], registry=registry, validate_formats=True,
                                                       formats=formats, ignore_unknown_formats=True,
                                                       retriever=_refuse_retrieval)
        except Exception:   # a schema it cannot compile: the reference validator alone
            log.warning("schema %s: no compiled validator; the reference validator checks it", schema_id)
            found = False

        with _VALIDATORS_LOCK:
            _FAST[schema_id] = found
    return found or None


# ---- the verifier -----------------------------------------------------------------------------------------------
class Verifier:
    """Checks credentials and presentations against DIDs resolved by ``resolver``; ``status`` (optional) is a
    status checker (``check(credential) -> problems``, e.g. ``verifier.status.StatusLists``) used for
    ``credentialStatus``; ``schemas=False`` skips JSON Schema checks; ``suites`` is the cryptosuite registry
    (default ``verifier.suites.DEFAULT_SUITES``); ``context`` the clock, loader and limits
    (``verifier.context.VerificationContext``; its skew is used unless ``skew`` is given).

    The default resolver (``Resolver()``) has no fetcher: did:key and did:jwk only, nothing reaches the network.
    ``verifier.compose.build_verifier`` builds one from a trust policy."""

    def __init__(self, resolver=None, status=None, skew: timedelta | None = None, schemas: bool = True, *,
                 suites=None, context: VerificationContext | None = None):
        self.resolver = resolver if resolver is not None else Resolver()
        self.status = status
        self.context = context or VerificationContext()
        self.skew = skew if skew is not None else self.context.skew
        self.check_schemas = schemas
        self.suites = suites or DEFAULT_SUITES

    def without_status(self) -> "Verifier":
        """A verifier like this one (resolver, suites, context) with no status checker: what a status-list client
        verifies lists with (a list's own status is never checked, and nothing holds anything back)."""
        return Verifier(self.resolver, None, skew=self.skew, schemas=self.check_schemas, suites=self.suites,
                        context=self.context)

    # ---- public -------------------------------------------------------------------------------------------------
    def verify_credential(self, credential: dict | str, now: datetime | None = None) -> VerificationResult:
        return self._guard("credential", self._verify_credential, credential, self._now(now))

    def verify_presentation(self, presentation: dict | str, challenge: str | None = None,
                            domain: str | None = None, now: datetime | None = None, audience: str | None = None,
                            nonce: str | None = None) -> VerificationResult:
        """``challenge``/``nonce`` and ``domain``/``audience`` are synonyms (Data Integrity and JWT wording)."""
        return self._guard("presentation", self._verify_presentation, presentation, self._now(now),
                           challenge if challenge is not None else nonce,
                           domain if domain is not None else audience)

    def check_document(self, credential: dict) -> list[Problem]:
        """The data-model checks of ``verify_credential`` without proof, status or the time window: what an issuer
        runs before signing, so it never signs a credential its verifiers would refuse (an unpinned context, a
        malformed date, an unknown or failing credentialSchema...)."""
        result = self._guard("credential", self._check_unsigned, credential)
        return result.problems

    def _check_unsigned(self, credential: Any) -> VerificationResult:
        result = VerificationResult(verified=True)
        if not isinstance(credential, dict):
            raise CeadError("credential.malformed", "A credential to check must be a JSON object.")
        self._check_credential_document(result, credential, now=None)
        return result

    # ---- plumbing -----------------------------------------------------------------------------------------------
    def _now(self, now: datetime | None) -> datetime:
        if now is None:
            return self.context.now()
        return now if now.tzinfo else now.replace(tzinfo=timezone.utc)

    def _guard(self, what: str, func, *args) -> VerificationResult:
        limits = self.context.limits
        try:
            # one canonicalization budget for the whole document and all it embeds (the context's work limits)
            with rdfc.work_budget(limits.rdfc_calls, limits.rdfc_seconds):
                return func(*args)
        except CeadError as exc:
            return VerificationResult.failed(exc.problem)
        except RecursionError:
            return VerificationResult.failed(Problem(f"{what}.malformed", f"The {what} is nested too deeply."))
        except Exception:  # a bug must not turn into an allow or a 500
            log.exception("unexpected error verifying a %s", what)
            return VerificationResult.failed(Problem("verifier.internal_error",
                                                     f"The {what} could not be checked because of an internal error."))

    def _check_time(self, result: VerificationResult, now: datetime | None, start: datetime | None,
                    end: datetime | None, kind: str) -> None:
        if now is None:   # check_document: formats only, no time window
            return
        if start is not None and now + self.skew < start:
            result.add(Problem(f"{kind}.not_yet_valid", f"The {kind} is not valid before {start.isoformat()}."))
        if end is not None and now - self.skew > end:
            result.add(Problem(f"{kind}.expired", f"The {kind} expired at {end.isoformat()}."))

    def _check_jwt_times(self, result: VerificationResult, claims: dict, now: datetime, kind: str) -> None:
        def at(name):
            return datetime.fromtimestamp(claims[name], timezone.utc) if name in claims else None
        self._check_time(result, now, at("nbf"), at("exp"), kind)

    def _check_context_and_type(self, result: VerificationResult, doc: dict, kind: str, type_name: str) -> str:
        """Returns "2.0" or "1.1"."""
        contexts = as_list(doc.get("@context"))
        first = contexts[0] if contexts else None
        if first not in (V2_CONTEXT, V1_CONTEXT):
            raise CeadError(f"{kind}.context_invalid", f"The first @context of a {kind} must be {V2_CONTEXT} "
                            f"(or {V1_CONTEXT}), got {str(first)[:80]!r}.")
        for ctx in contexts:
            if not isinstance(ctx, (str, dict)):
                raise CeadError(f"{kind}.context_invalid", "Each @context entry must be a URL or an object.")
            if isinstance(ctx, str) and not self.context.known_context(ctx):
                result.add(Problem(f"{kind}.context_unknown", f"@context {ctx[:120]!r} is not a pinned context.",
                                   {"context": ctx[:200]}))
        if type_name not in as_list(doc.get("type")):
            result.add(Problem(f"{kind}.type_missing", f"The {kind}'s type must include {type_name}."))
        return "2.0" if first == V2_CONTEXT else "1.1"

    # ---- credentials --------------------------------------------------------------------------------------------
    def _verify_credential(self, credential: Any, now: datetime) -> VerificationResult:
        loaded = _load(unwrap_enveloped(credential), "credential", self.context.limits.max_json)
        result = VerificationResult(verified=True)
        if isinstance(loaded, str):
            claims, kid = jose.verify_jwt(loaded, self.resolver, "vc+jwt", "assertionMethod")
            doc = jose.to_document(claims, "vc")
            result.format, result.verification_method, result.document = "jwt", kid, doc
            result.claims = claims
            self._check_jwt_times(result, claims, now, "credential")
            self._check_credential_document(result, doc, now)
            if "iss" in claims and claims["iss"] != result.issuer:
                result.add(Problem("credential.issuer_mismatch",
                                   f"The JWT iss {str(claims['iss'])[:120]!r} is not the credential's issuer."))
        else:
            result.format, result.document = "ldp", loaded
            unsecured = {k: v for k, v in loaded.items() if k != "proof"}
            self._check_credential_document(result, unsecured, now)
            problems, vm_id = verify_proofs(loaded, self.resolver, "assertionMethod", now=now, skew=self.skew,
                                            suites=self.suites, loader=self.context.loader)
            for problem in problems:
                result.add(problem)
            if not problems and not vm_id:
                result.add(Problem("proof.missing", "The credential has no verifiable proof."))
            result.verification_method = vm_id
            self._proof_set_signers(result, loaded, verified=not problems)
        if result.verification_method and result.issuer and _did_of(result.verification_method) != result.issuer:
            result.add(Problem("credential.issuer_mismatch", f"The signing key {result.verification_method} does "
                               f"not belong to the issuer {result.issuer}."))
        if result.verified and self.status is not None:  # no status fetches for credentials that already failed
            for problem in self.status.check(result.document):
                result.add(problem)
        return result

    @staticmethod
    def _proof_set_signers(result: VerificationResult, document: dict, verified: bool) -> None:
        """A proof set (W3C Data Integrity: each proof signs the document without the proof set), e.g. an approval
        co-signed by a DPO: the issuer's own proof is the verification method (one is required: the check below
        reports ``credential.issuer_mismatch`` without it), also when the set failed, so that a failed set with the
        issuer's proof in it is refused for its fault and not also for an issuer mismatch it does not have; when
        the set ``verified``, the DIDs of the other proofs are the co-signers (none for a failed one)."""
        methods = [p.get("verificationMethod") for p in as_list(document.get("proof")) if isinstance(p, dict)]
        own = [vm for vm in methods if isinstance(vm, str) and _did_of(vm) == result.issuer]
        if own:
            result.verification_method = own[0]
        if not verified:
            return
        result.co_signers = list(dict.fromkeys(did for did in map(_did_of, methods) if did and did != result.issuer))

    def _check_credential_document(self, result: VerificationResult, doc: dict, now: datetime | None) -> None:
        version = self._check_context_and_type(result, doc, "credential", "VerifiableCredential")
        result.issuer = id_of(doc.get("issuer"))
        if result.issuer is None:
            result.add(Problem("credential.issuer_missing", "The credential has no issuer (a URL or an object "
                                                            "with an id)."))
        subjects = as_list(doc.get("credentialSubject"))
        if not subjects or not all(isinstance(s, dict) and s for s in subjects):
            result.add(Problem("credential.subject_missing", "The credential needs a credentialSubject object."))
        if version == "2.0":
            start, end = (_parse_time(doc[name], name, require_zone=True) if name in doc else None
                          for name in ("validFrom", "validUntil"))
            if start is not None and end is not None and end < start:  # VC 2.0: validFrom same or earlier
                result.add(Problem("credential.date_invalid", "validUntil is earlier than validFrom."))
        else:
            if "issuanceDate" not in doc:
                raise CeadError("credential.date_invalid", "A VC 1.1 credential must have an issuanceDate.")
            start = _parse_time(doc["issuanceDate"], "issuanceDate", require_zone=False)
            end = (_parse_time(doc["expirationDate"], "expirationDate", require_zone=False)
                   if "expirationDate" in doc else None)
        for problem in property_problems(doc, version):
            result.add(problem)
        self._check_time(result, now, start, end, "credential")
        if self.check_schemas:
            self._check_schemas(result, doc)

    def _check_schemas(self, result: VerificationResult, doc: dict) -> None:
        by_id, registry = _schema_registry()
        for entry in as_list(doc.get("credentialSchema")):
            schema_id = id_of(entry)
            if not isinstance(entry, dict) or entry.get("type") != "JsonSchema" or schema_id not in by_id:
                result.add(Problem("credential.schema_unknown", f"credentialSchema {str(schema_id)[:120]!r} is not "
                                   "a known JsonSchema (schemas are never fetched).", {"schema": str(schema_id)}))
                continue
            schema = by_id[schema_id]
            try:
                # the compiled validator says whether the document is valid (most are: a third of a first-seen
                # decision was the pure-Python validator walking valid credentials); the reference validator is
                # run only to say what is wrong
                fast = _fast_validator(schema_id, by_id)
                try:
                    if fast is not None and fast.is_valid(doc):
                        continue
                except Exception:   # a value it cannot take (e.g. an integer beyond 64 bits): the reference decides
                    fast = None
                validator = _validator(schema_id, schema, registry)
                errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
            except jsonschema.exceptions.SchemaError:
                result.add(Problem("credential.schema_unknown", f"Schema {schema_id} is itself invalid."))
                continue
            except Exception as exc:  # e.g. an unresolvable $ref: local registry only
                result.add(Problem("credential.schema_unknown", f"Schema {schema_id} could not be used: "
                                   f"{type(exc).__name__}."))
                continue
            if not errors and fast is not None:   # the two disagree: fail closed, with the compiled one's reason
                log.warning("schema %s: the compiled validator refuses a document the reference accepts", schema_id)
                first = next(iter(fast.iter_errors(doc)), None)
                result.add(Problem("credential.schema_invalid", f"{str(getattr(first, 'message', 'invalid'))[:200]}",
                                   {"schema": schema_id, "path": "(root)"}))
            for error in errors[:10]:
                where = "/".join(str(p) for p in error.absolute_path) or "(root)"
                result.add(Problem("credential.schema_invalid", f"{where}: {error.message[:200]}",
                                   {"schema": schema_id, "path": where}))

    # ---- presentations ------------------------------------------------------------------------------------------
    def _verify_presentation(self, presentation: Any, now: datetime, challenge: str | None,
                             domain: str | None) -> VerificationResult:
        loaded = _load(unwrap_enveloped(presentation, "presentation"), "presentation", self.context.limits.max_json)
        result = VerificationResult(verified=True)
        if isinstance(loaded, str):
            claims, kid = jose.verify_jwt(loaded, self.resolver, "vp+jwt", "authentication")
            doc = jose.to_document(claims, "vp")
            result.format, result.verification_method, result.document = "jwt", kid, doc
            result.claims = claims
            self._check_jwt_times(result, claims, now, "presentation")
            self._check_binding(result, claims.get("nonce"), claims.get("aud"), challenge, domain)
            self._check_presentation_document(result, doc)
            # VC DM 2.0: holder is optional; without one the holder is the signer (iss, else the kid's DID)
            result.issuer = result.issuer or (claims["iss"] if isinstance(claims.get("iss"), str) else _did_of(kid))
            if "iss" in claims and claims["iss"] != result.issuer:
                result.add(Problem("presentation.holder_mismatch",
                                   f"The JWT iss {str(claims['iss'])[:120]!r} is not the presentation's holder."))
        else:
            result.format, result.document = "ldp", loaded
            self._check_presentation_document(result, {k: v for k, v in loaded.items() if k != "proof"})
            problems, vm_id = verify_proofs(loaded, self.resolver, "authentication", challenge, domain, now=now,
                                            suites=self.suites, skew=self.skew, loader=self.context.loader)
            for problem in problems:  # the proof carries the binding: report it in the same words as for a JWT
                code = _PRESENTATION_PROOF_CODES.get(problem.code, problem.code)
                result.add(Problem(code, problem.message, problem.detail) if code != problem.code else problem)
            if not problems and not vm_id:
                result.add(Problem("proof.missing", "The presentation has no verifiable proof."))
            result.verification_method = vm_id
            if result.issuer is None and vm_id and not problems:
                # VC DM 2.0: holder is optional; without one the holder is the DID whose authentication key
                # signed the presentation (the resolver has checked that DID's document lists the key)
                result.issuer = _did_of(vm_id)
        if result.issuer is None:
            result.add(Problem("presentation.holder_mismatch", "The presentation names no holder and carries no "
                               "verified proof to take one from."))
        elif result.verification_method and _did_of(result.verification_method) != result.issuer:
            result.add(Problem("presentation.holder_mismatch", f"The presentation is signed by "
                               f"{result.verification_method}, not by its holder {result.issuer}."))
        self._verify_embedded(result, result.document, now)
        return result

    def _check_presentation_document(self, result: VerificationResult, doc: dict) -> None:
        self._check_context_and_type(result, doc, "presentation", "VerifiablePresentation")
        result.issuer = id_of(doc.get("holder"))

    @staticmethod
    def _check_binding(result: VerificationResult, got_nonce: Any, got_aud: Any, challenge: str | None,
                       domain: str | None) -> None:
        if challenge is not None and got_nonce != challenge:
            result.add(Problem("presentation.nonce_mismatch",
                               "The presentation is not bound to this request (challenge/nonce differs)."))
        if domain is not None and domain not in as_list(got_aud):
            result.add(Problem("presentation.audience_mismatch",
                               f"The presentation was made for another audience, not {domain}."))

    def _verify_embedded(self, result: VerificationResult, doc: dict, now: datetime) -> None:
        entries = as_list(doc.get("verifiableCredential"))
        limit = self.context.limits.max_credentials
        if len(entries) > limit:
            raise CeadError("presentation.malformed", f"A presentation may carry at most {limit} credentials.")
        for index, entry in enumerate(entries):
            sub = self.verify_credential(entry, now)
            result.credentials.append(sub)
            if not sub.verified:
                result.add(Problem("presentation.credential_invalid", f"Credential {index} in the presentation "
                                   "failed verification.", {"index": index,
                                                             "codes": [p.code for p in sub.problems]}))
