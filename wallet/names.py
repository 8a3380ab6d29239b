"""Names, not identifiers: what the pages show for a DID, a dataset, a purpose, a lawful basis, a data category or a
certification scheme.

Where names come from, in order:

- the node itself (its configured name) and ``HOME/names.json`` (optional: ``{"<DID or IRI>": "Name"}``, for
  organisations and datasets the node knows by other means);
- organisation certifications: the ``legalName`` of each certified organisation and the ``certificationBody``
  name, from certifications held in the wallet and those presented with data-sharing requests, but only from a
  certification whose issuer the node's trust policy trusts to certify (``certification_bodies``, any scheme). A
  signature proves only who made a certification; anyone can sign one naming itself "Police Scotland", so a
  certification from a body the node does not trust names no one (the page shows the identifier instead, and the
  request page's certification table says the certifier is not trusted);
- delegations (``DelegatedAuthorityCredential``) held in the wallet or given to :meth:`Directory.for_node` (an
  approval's chain), for a delegate the delegation names (its optional ``name``): shown with who attested it,
  "Jane Smith (Information Asset Owner for Fife Council)". Only a delegation that verifies is believed: its proof
  checks (an expired or suspended one still names its delegate; a revoked one, or one failing any other check,
  does not), and it was issued by the controller it names (``onBehalfOf``), or by the delegate of its parent
  delegation (pinned by digest, held, and itself believed by the same rule). See :func:`delegate_label`;
- the node's imported catalogue (``issuer.catalogue``, ``cead catalogue import``): dataset titles and, for a
  publisher mapped to a controller DID, the publisher's name; DCAT files ``HOME/catalogue.json`` or ``.jsonld``:
  a dataset's ``dct:title`` (or ``title``);
- Cead's vocabulary (``schemas.vocab``): purposes, legal bases, data categories, data subjects, certification
  schemes.

Anything without a name is shown as its compact identifier. The pages put the identifier itself behind a disclosure.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from schemas import vocab

_TERMS = (vocab.PURPOSES, vocab.LEGAL_BASES, vocab.DATA_CATEGORIES, vocab.DATA_SUBJECTS, vocab.CERTIFICATION_SCHEMES)
_TITLE_KEYS = ("dct:title", "title", "http://purl.org/dc/terms/title", "name")
_DATASET_KEYS = ("dcat:dataset", "dataset", "http://www.w3.org/ns/dcat#dataset")


@dataclass(frozen=True)
class Named:
    label: str
    iri: str

    def __str__(self) -> str:
        return self.label


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return _text(value.get("@value"))
    if isinstance(value, list):
        for v in value:
            text = _text(v)
            if text:
                return text
    return None


def catalogue_titles(path: Path) -> dict[str, str]:
    """dataset IRI -> title from a DCAT catalogue in JSON-LD (unreadable files give nothing)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    nodes = doc.get("@graph", [doc]) if isinstance(doc, dict) else doc
    out: dict[str, str] = {}
    for node in nodes if isinstance(nodes, list) else []:
        if not isinstance(node, dict):
            continue
        datasets = next((node[k] for k in _DATASET_KEYS if k in node), [])
        for ds in datasets if isinstance(datasets, list) else [datasets]:
            if isinstance(ds, dict) and isinstance(ds.get("@id"), str):
                title = next((_text(ds[k]) for k in _TITLE_KEYS if k in ds), None)
                if title:
                    out[vocab.expand(ds["@id"])] = title
    return out


def node_policy(node):
    """The node's trust policy (``HOME/policy.yaml``, ``.yml`` or ``.json``), or None when it has none or it does
    not load."""
    from verifier.policy import load_policy
    from verifier.results import CeadError
    for ext in ("yaml", "yml", "json"):
        path = Path(node.home) / f"policy.{ext}"
        if path.exists():
            try:
                return load_policy(path)
            except CeadError:
                return None
    return None


DELEGATION = "DelegatedAuthorityCredential"
# what may be wrong with a delegation that still names its delegate: its validity period (the name was attested
# when it was issued), a suspension, or a status list that cannot be read now. Anything else (a bad signature, a
# revocation, a schema failure, a wrong issuer...) and its name is not used.
NAMING_PROBLEMS = frozenset({"credential.expired", "credential.not_yet_valid", "status.suspended",
                             "status.unreachable", "status.stale"})
MAX_CHAIN = 10          # parent delegations followed to find who attested a name


class Directory:
    """The names this node knows. Build one per page with :meth:`for_node`."""

    def __init__(self, names: dict[str, str] | None = None):
        self.names: dict[str, str] = dict(names or {})
        self._delegations: dict[str, Any] = {}       # digest -> a delegation as signed (not yet verified)
        self._verifier = None
        self._believed: dict[str, Any] = {}          # digest -> (DelegatedAuthority, validFrom) or False
        self._delegates: dict[str, Named | None] = {}
        self._named: dict[str, list[str]] | None = None
        self._certifiers: frozenset[str] = frozenset()      # bodies whose certifications name organisations

    @classmethod
    def for_node(cls, node, wallet=None, extra_certifications: Iterable[dict] = (),
                 delegations: Iterable[Any] = ()) -> "Directory":
        """``delegations``: more delegations as signed (an approval's chain as presented), besides those held in
        the wallet; each is verified before it names anyone."""
        d = cls({node.did: node.name})
        home = Path(node.home)
        for name in ("catalogue.json", "catalogue.jsonld"):
            if (home / name).exists():
                d.names.update(catalogue_titles(home / name))
        try:        # the node's imported catalogue (``cead catalogue import``): titles, and publishers' names
            from issuer import catalogue
            for entry in catalogue.entries(node, include_removed=True):
                ds = entry.dataset
                if ds.title:
                    d.names.setdefault(ds.iri, ds.title)
                if entry.controller and ds.publisher_name:
                    d.names.setdefault(entry.controller, ds.publisher_name)
        except Exception:       # noqa: BLE001 (no catalogue table yet, or no catalogue support: names only)
            pass
        policy = node_policy(node)
        if policy is not None:
            d._certifiers = frozenset(b for bodies in policy.certification_bodies.values() for b in bodies)
        for cat in (policy.catalogues if policy is not None else []):
            d.names.update(catalogue_titles(policy.path(cat)))
        if wallet is not None:
            for record in wallet.search(type="OrganisationCertificationCredential"):
                d.learn_certification(record.document)
            held = wallet.search(type=DELEGATION)
            d._delegations.update({r.digest: r.credential for r in held})     # (digests as stored on receipt)
            d._verifier = wallet.verifier
        if delegations:
            d.learn_delegations(delegations, wallet.verifier if wallet is not None else None)
        for cert in extra_certifications:
            d.learn_summary(cert)
        try:
            extra = json.loads((home / "names.json").read_text(encoding="utf-8"))
            if isinstance(extra, dict):
                d.names.update({vocab.expand(k): v for k, v in extra.items() if isinstance(v, str)})
        except (OSError, ValueError):
            pass
        return d

    def trusts_certifier(self, issuer: Any) -> bool:
        """Whether the node's trust policy trusts ``issuer`` to certify (for any scheme): only then do its
        certifications name anyone here."""
        return isinstance(issuer, str) and issuer in self._certifiers

    @classmethod
    def for_pages(cls, node, wallet) -> "Directory":
        """:meth:`for_node` with the certifications that came with every request received (the names a decision
        page learns from its own request): for the pages that name organisations outside one request (the register,
        standing approvals, the wallet), so an organisation has the same name on every page."""
        from .sharing import list_requests
        return cls.for_node(node, wallet, [c for r in list_requests(wallet) for c in r.certification_list])

    def learn_certification(self, document: dict) -> None:
        """A certification as held (verified when it was received): its names, when its issuer is trusted."""
        subject = document.get("credentialSubject") if isinstance(document, dict) else None
        if not isinstance(subject, dict):
            return
        issuer = document.get("issuer")
        issuer = issuer.get("id") if isinstance(issuer, dict) else issuer
        if not self.trusts_certifier(issuer):
            return
        if isinstance(subject.get("id"), str) and isinstance(subject.get("legalName"), str):
            self.names.setdefault(subject["id"], subject["legalName"])
        body = subject.get("certificationBody")
        if isinstance(body, dict) and isinstance(body.get("name"), str):
            self.names.setdefault(issuer, body["name"])     # (the body names itself: the issuer, not a stated id)

    def learn_summary(self, cert: dict) -> None:
        """A certification as summarised when a request was received (``legalName``, ``subject``, ``issuer``,
        ``certificationBody``; its proof checked then): its names, when its issuer is trusted."""
        if not self.trusts_certifier(cert.get("issuer")):
            return
        if isinstance(cert.get("subject"), str) and isinstance(cert.get("legalName"), str):
            self.names.setdefault(cert["subject"], cert["legalName"])
        if isinstance(cert.get("certificationBody"), str):
            self.names.setdefault(cert["issuer"], cert["certificationBody"])

    # ---- delegates named by delegations ---------------------------------------------------------------------
    def learn_delegations(self, credentials: Iterable[Any], verifier) -> None:
        """Delegations (as signed: JSON or vc+jwt) that may name their delegates, checked with ``verifier`` (a
        ``verifier.credential.Verifier``) only when a name is asked for. Without a verifier none is believed."""
        from schemas.models import credential_digest
        for credential in credentials:
            try:
                self._delegations.setdefault(credential_digest(credential), credential)
            except Exception:       # noqa: BLE001 (not a credential at all: it names no one)
                continue
        if verifier is not None:
            self._verifier = verifier
        self._delegates.clear()
        self._named = None

    def _believe(self, digest: str, depth: int = 0):
        """``(DelegatedAuthority, validFrom)`` for the delegation with this digest when it verifies and its issuer
        had the authority to name its delegate (see the module's docstring); None otherwise. Worked out once per
        Directory (one page)."""
        if digest in self._believed:
            return self._believed[digest] or None
        self._believed[digest] = False          # (a cycle of parents believes nothing)
        credential = self._delegations.get(digest)
        if credential is None or self._verifier is None or depth > MAX_CHAIN:
            return None
        from schemas.models import DelegatedAuthority
        from verifier.results import CeadError
        try:
            result = self._verifier.verify_credential(credential)
        except CeadError:
            return None
        if any(p.code not in NAMING_PROBLEMS for p in result.problems):
            return None
        document = _document_of(credential)
        try:
            model = DelegatedAuthority.from_credential(document)
        except CeadError:
            return None
        issuer = result.issuer or _issuer_of(document)
        ref = model.parent_delegation
        if ref is None:
            ok = issuer == model.on_behalf_of
        else:
            parent = self._believe(ref.digest, depth + 1)
            ok = (parent is not None and _id_of(self._delegations[ref.digest]) == ref.id
                  and parent[0].delegate == issuer and parent[0].on_behalf_of == model.on_behalf_of)
        if ok:
            self._believed[digest] = (model, document.get("validFrom") or "")
            return self._believed[digest]
        return None

    def delegate(self, did: str) -> Named | None:
        """``did`` named by a believed delegation: "Jane Smith (Information Asset Owner for Fife Council)"; None when
        none names it. For each controller, its newest delegation naming ``did`` (by ``validFrom``) speaks; when
        several controllers name it, every one is shown ("...; ..."), those whose controller this node knows by
        name first: a delegation from one controller never hides another's."""
        if did in self._delegates:
            return self._delegates[did]
        self._delegates[did] = None             # (the controller's own name is looked up below without this DID)
        if self._named is None:         # delegate DID -> digests of the delegations that name it, read once
            self._named = {}
            for digest, credential in self._delegations.items():
                subject = _subject_of(credential)
                if isinstance(subject.get("id"), str) and isinstance(subject.get("name"), str):
                    self._named.setdefault(subject["id"], []).append(digest)
        found = []
        for digest in self._named.get(did, []):
            believed = self._believe(digest)
            if believed is not None:
                found.append((believed[1], digest, believed[0]))
        newest: dict[str, tuple] = {}
        for entry in sorted(found, key=lambda f: (f[0], f[1]), reverse=True):
            newest.setdefault(entry[2].on_behalf_of, entry)
        labels = []
        for _, _, model in sorted(newest.values(), key=lambda f: (f[2].on_behalf_of not in self.names,
                                                                  f[2].on_behalf_of)):
            label = delegate_label(model.name, model.role, str(self.name(model.on_behalf_of)))
            if label not in labels:
                labels.append(label)
        if labels:
            self._delegates[did] = Named("; ".join(labels), did)
        return self._delegates[did]

    def name(self, value: Any) -> Named:
        """The name for a DID or IRI (compact IRIs such as ``cead:X`` are expanded first)."""
        if not isinstance(value, str):
            return Named(str(value), str(value))
        iri = vocab.expand(value)
        named = self._known(value, iri)
        if named is not None:
            return named
        for terms in _TERMS:
            if iri in terms:
                return Named(terms[iri].label, iri)
        if iri.startswith("did:web:"):
            host = iri[len("did:web:"):].split(":")[0].replace("%3A", ":")
            return Named(f"the organisation at {host}", iri)
        return Named(vocab.compact(iri), iri)

    def known(self, value: Any) -> str | None:
        """The name this node knows for a DID or IRI, or None: unlike :meth:`name`, never a stand-in ("the
        organisation at ...", a compact IRI). For pages that show the identifier anyway and add a name only when
        there is one (the DPO's register)."""
        named = self._known(value, vocab.expand(value)) if isinstance(value, str) else None
        return named.label if named is not None else None

    def known_publicly(self, value: Any) -> str | None:
        """The name this node knows for a DID or IRI from its own sources only (its own name, ``names.json``,
        catalogues, certifications from certifiers it trusts): an organisation's or a dataset's, never a delegate's
        (a person's) from a delegation. For pages anyone may read (``/log/transfers``); None when it knows none."""
        if not isinstance(value, str):
            return None
        return self.names.get(vocab.expand(value)) or self.names.get(value)

    def _known(self, value: str, iri: str) -> Named | None:
        """A name from this node's sources (names, certifications, catalogues) or a believed delegation."""
        if iri in self.names:
            return Named(self.names[iri], iri)
        if value in self.names:
            return Named(self.names[value], value)
        if iri.startswith("did:") and self._delegations:
            return self.delegate(iri)
        return None

    def names_of(self, values: Iterable[Any] | None) -> list[Named]:
        return [self.name(v) for v in values or []]


def delegate_label(name: str, role: str, controller: str) -> str:
    """A delegate as a believed delegation names them: ``Jane Smith (Information Asset Owner for Fife Council)``;
    ``controller`` is the name of the organisation the delegation acts for (``onBehalfOf``)."""
    from schemas.words import role_name
    return f"{name} ({role_name(role)} for {controller})"


def _issuer_of(document: dict) -> str | None:
    issuer = document.get("issuer")
    return issuer.get("id") if isinstance(issuer, dict) else issuer


def _document_of(credential: Any) -> dict:
    if isinstance(credential, dict):
        return credential
    from .store import jwt_payload
    try:
        return jwt_payload(credential)
    except Exception:       # noqa: BLE001 (not a JWT: names no one)
        return {}


def _subject_of(credential: Any) -> dict:
    subject = _document_of(credential).get("credentialSubject")
    return subject if isinstance(subject, dict) else {}


def _id_of(credential: Any) -> str | None:
    return _document_of(credential).get("id")
