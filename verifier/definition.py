"""What a gateway asks for: the DIF Presentation Exchange 2.0 ``presentation_definition`` for one dataset.

``presentation_definition(policy, dataset, purpose=None)`` builds it from the trust policy alone (nothing secret:
the dataset's controller, the certification schemes every recipient must hold and the bodies trusted for them):

- one input descriptor for a ``DataSharingApprovalCredential`` whose subject's ``discloser`` is the dataset's
  controller and whose ``datasets`` (and ``purposes``, when a purpose is given) contain the dataset (purpose) or a
  broader one the vocabulary knows;
- one per certification scheme the policy requires: an ``OrganisationCertificationCredential`` for that scheme
  or a narrower one the vocabulary knows (Cyber Essentials Plus satisfies Cyber Essentials, as the verifier
  accepts), status ``Certified``, issued by a body the policy trusts for one of those schemes, about the holder (``is_holder`` on the field
  ``subject-<descriptor id>``: PEX 2.0 field ids are unique across the whole definition).

Paths name both the JSON-LD / VC 2.0 form (``$.credentialSubject...``; a ``vc+jwt`` payload is the credential
itself) and the VC 1.1 JWT form (``$.vc.credentialSubject...``). What PEX cannot express (credentials pinned by
digest: the approval's ``delegationChain`` and ``upstream``; the approval's own ``recipientRequirements``) is
asked for in the ``purpose`` text. ``publish`` wraps the definition with the dataset and purpose it was made for:
the body of the middleware's 401 and of the verifier service's ``GET /presentation-definition``.
"""
from __future__ import annotations

import json
import uuid

from schemas import models
from schemas.values import IRI_RE
from schemas.vocab import Vocabulary, compact, expand, registry

from .dataintegrity import DATA_INTEGRITY_PROOF, ED25519_SIGNATURE_2020
from .jose import ALGORITHMS
from .policy import TrustPolicy
from .results import CeadError

APPROVAL = models.DataSharingApproval.credential_type
CERTIFICATION = models.OrganisationCertification.credential_type

# Claim Format Registry designations the verifier accepts (credentials and presentations alike).
FORMATS = {
    "jwt_vc": {"alg": sorted(ALGORITHMS)},
    "jwt_vp": {"alg": sorted(ALGORITHMS)},
    "ldp_vc": {"proof_type": [DATA_INTEGRITY_PROOF, ED25519_SIGNATURE_2020]},
    "ldp_vp": {"proof_type": [DATA_INTEGRITY_PROOF, ED25519_SIGNATURE_2020]},
}

MAX_IRI = 2048


def _iri(value, what: str, missing: str, invalid: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CeadError(missing, f"Name the {what} (an absolute IRI).")
    iri = expand(value.strip())
    if len(iri) > MAX_IRI or not IRI_RE.fullmatch(iri):
        raise CeadError(invalid, f"The {what} {value[:200]!r} is not an absolute IRI.")
    return iri


def _dataset(value) -> str:
    return _iri(value, "dataset", "definition.dataset_missing", "definition.dataset_invalid")


def _purpose(value) -> str:
    return _iri(value, "purpose", "definition.purpose_invalid", "definition.purpose_invalid")


def _paths(*path: str) -> list[str]:
    """A credential path in the VC 2.0 / JSON-LD form and in the VC 1.1 JWT form (under the ``vc`` claim)."""
    return [f"$.{p}" for p in path] + [f"$.vc.{p}" for p in path]


def _terms(iris) -> list[str]:
    """Every IRI as credentials may write it: expanded and, for Cead's prefixes, compacted."""
    return sorted({form for iri in iris for form in (iri, compact(iri))})


def _type_field(type_name: str) -> dict:
    return {"path": _paths("type"), "filter": {"type": "array", "contains": {"const": type_name}}}


def _contains(path: str, values: list[str]) -> dict:
    return {"path": _paths(f"credentialSubject.{path}"),
            "filter": {"type": "array", "contains": {"type": "string", "enum": values}}}


def presentation_definition(policy: TrustPolicy, dataset: str, purpose: str | None = None, *,
                            vocabulary: Vocabulary | None = None) -> dict:
    """The PEX 2.0 presentation definition a gateway under ``policy`` asks for to transfer ``dataset`` (for
    ``purpose``). Raises ``CeadError``: ``definition.dataset_missing`` / ``definition.dataset_invalid`` /
    ``definition.purpose_invalid`` for bad input, ``definition.dataset_unknown`` when the policy names no
    controller for the dataset (no transfer of it could be allowed)."""
    vocab = vocabulary or registry()
    dataset = _dataset(dataset)
    if purpose is not None:
        purpose = _purpose(purpose)
    controller = policy.controller_of(dataset)
    if controller is None:
        raise CeadError("definition.dataset_unknown", f"This gateway's trust policy names no controller for the "
                        f"dataset {dataset}, so no transfer of it can be allowed.", dataset=dataset)
    what = dataset + (f" for the purpose {purpose}" if purpose else "")
    fields = [_type_field(APPROVAL),
              _contains("datasets", _terms(vocab.ancestors(dataset))),
              {"path": _paths("credentialSubject.discloser"), "filter": {"type": "string", "const": controller}}]
    if purpose:
        fields.append(_contains("purposes", _terms(vocab.ancestors(purpose))))
    descriptors = [{
        "id": "approval",
        "name": f"{APPROVAL} for {dataset}",
        "purpose": f"An approval by the controller {controller} (or by the end of a delegation chain starting at "
                   f"it) naming your organisation as a recipient and covering {what}.",
        "constraints": {"fields": fields},
    }]
    for index, scheme in enumerate(dict.fromkeys(expand(s) for s in policy.required_certifications), 1):
        descriptor_id = f"certification-{index}"
        subject_field = f"subject-{descriptor_id}"   # PEX 2.0: field ids are unique across the whole definition
        # the verifier accepts the scheme or any narrower one (Cyber Essentials Plus for Cyber Essentials), from a
        # body trusted for the scheme required or for the one certified: ask for the same
        schemes = sorted(vocab.narrower(scheme))
        bodies = {did for s in schemes for key in {s, compact(s)} for did in policy.trusted_bodies(key)}
        cert_fields = [_type_field(CERTIFICATION),
                       {"path": _paths("credentialSubject.scheme"),
                        "filter": {"type": "string", "enum": _terms(schemes)}},
                       {"path": _paths("credentialSubject.status"), "filter": {"type": "string", "const": "Certified"}},
                       {"id": subject_field, "path": [*_paths("credentialSubject.id"), "$.sub"]}]
        if bodies:
            cert_fields.append({"path": [*_paths("issuer"), *_paths("issuer.id"), "$.iss"],
                                "filter": {"type": "string", "enum": sorted(bodies)}})
        trusted = (f"issued by a body this gateway trusts for it: {', '.join(sorted(bodies))}" if bodies
                   else "but this gateway's trust policy names no body trusted for it, so none can be accepted")
        descriptors.append({
            "id": descriptor_id,
            "name": f"{compact(scheme)} certification",
            "purpose": f"Every recipient must hold a current {compact(scheme)} certification"
                       + (f" (or {', '.join(compact(s) for s in schemes if s != scheme)}, which satisfies it)"
                          if len(schemes) > 1 else "") + f" ({CERTIFICATION} "
                       f"about your organisation, status Certified), {trusted}.",
            "constraints": {"fields": cert_fields,
                            "is_holder": [{"field_id": [subject_field], "directive": "required"}]},
        })
    definition = {
        "name": f"Cead transfer of {dataset}",
        "purpose": f"A transfer of {what} needs a fresh presentation bound to the request (Cead wire contract). "
                   "Besides the credentials below, present the DelegatedAuthorityCredentials the approval's "
                   "delegationChain pins (each by digest, following parentDelegation), the upstream approvals it "
                   "pins (with their own chains), and a certification for each scheme in its recipientRequirements.",
        "format": FORMATS,
        "input_descriptors": descriptors,
    }
    # the same request always gets the same id; any change (policy, vocabulary) gives a new one
    content = json.dumps(definition, sort_keys=True, separators=(",", ":"))
    return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, "urn:cead:pd:" + content)), **definition}


def publish(policy: TrustPolicy, dataset: str, purpose: str | None = None, *,
            vocabulary: Vocabulary | None = None) -> dict:
    """``{"dataset", "purpose"?, "presentation_definition"}``: what a gateway publishes for a pipeline (the IRIs
    expanded, for the pipeline's transfer manifest)."""
    definition = presentation_definition(policy, dataset, purpose, vocabulary=vocabulary)
    out = {"dataset": _dataset(dataset)}
    if purpose is not None:
        out["purpose"] = _purpose(purpose)
    out["presentation_definition"] = definition
    return out


__all__ = ["FORMATS", "presentation_definition", "publish"]
