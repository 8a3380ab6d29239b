"""Names, not identifiers: what the pages show for a DID, a dataset, a purpose, a lawful basis, a data category or a
certification scheme.

Where names come from, in order:

- the node itself (its configured name) and ``HOME/names.json`` (optional: ``{"<DID or IRI>": "Name"}``, for
  organisations and datasets the node knows by other means);
- organisation certifications: the ``legalName`` of each certified organisation and the ``certificationBody``
  name, from certifications held in the wallet and those presented with data-sharing requests;
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


class Directory:
    """The names this node knows. Build one per page with :meth:`for_node`."""

    def __init__(self, names: dict[str, str] | None = None):
        self.names: dict[str, str] = dict(names or {})

    @classmethod
    def for_node(cls, node, wallet=None, extra_certifications: Iterable[dict] = ()) -> "Directory":
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
        for cat in (policy.catalogues if policy is not None else []):
            d.names.update(catalogue_titles(policy.path(cat)))
        if wallet is not None:
            for record in wallet.search(type="OrganisationCertificationCredential"):
                d.learn_certification(record.document)
        for cert in extra_certifications:
            d.learn_summary(cert)
        try:
            extra = json.loads((home / "names.json").read_text(encoding="utf-8"))
            if isinstance(extra, dict):
                d.names.update({vocab.expand(k): v for k, v in extra.items() if isinstance(v, str)})
        except (OSError, ValueError):
            pass
        return d

    def learn_certification(self, document: dict) -> None:
        subject = document.get("credentialSubject") if isinstance(document, dict) else None
        if not isinstance(subject, dict):
            return
        if isinstance(subject.get("id"), str) and isinstance(subject.get("legalName"), str):
            self.names.setdefault(subject["id"], subject["legalName"])
        body = subject.get("certificationBody")
        issuer = document.get("issuer")
        issuer = issuer.get("id") if isinstance(issuer, dict) else issuer
        if isinstance(body, dict) and isinstance(body.get("name"), str):
            self.names.setdefault(body.get("id") or issuer or "", body["name"])

    def learn_summary(self, cert: dict) -> None:
        """A certification as summarised when a request was received (``legalName``, ``subject``, ``issuer``,
        ``certificationBody``)."""
        if isinstance(cert.get("subject"), str) and isinstance(cert.get("legalName"), str):
            self.names.setdefault(cert["subject"], cert["legalName"])
        if isinstance(cert.get("issuer"), str) and isinstance(cert.get("certificationBody"), str):
            self.names.setdefault(cert["issuer"], cert["certificationBody"])

    def name(self, value: Any) -> Named:
        """The name for a DID or IRI (compact IRIs such as ``cead:X`` are expanded first)."""
        if not isinstance(value, str):
            return Named(str(value), str(value))
        iri = vocab.expand(value)
        if iri in self.names:
            return Named(self.names[iri], iri)
        if value in self.names:
            return Named(self.names[value], value)
        for terms in _TERMS:
            if iri in terms:
                return Named(terms[iri].label, iri)
        if iri.startswith("did:web:"):
            host = iri[len("did:web:"):].split(":")[0].replace("%3A", ":")
            return Named(f"the organisation at {host}", iri)
        return Named(vocab.compact(iri), iri)

    def names_of(self, values: Iterable[Any] | None) -> list[Named]:
        return [self.name(v) for v in values or []]
