"""The organisation's dataset catalogue, read from the DCAT catalogue it already publishes (CKAN's DCAT extension,
DCAT-AP, DCAT 3) instead of retyped.

``read_dcat(data, fmt)`` parses JSON-LD, Turtle or RDF/XML with rdflib into ``CatalogueDataset`` values: the
dataset IRI, title, description, publisher (the controller) and its name, contact point (the Information Asset
Owner: name and e-mail), themes, keywords, the series it belongs to (``dcat:inSeries``, or the catalogue's
``dcat:DatasetSeries`` members), its distributions (access and download URLs, media types) and its columns where the
catalogue describes them (a CSV on the Web table schema, ``csvw:tableSchema`` on the dataset or a distribution:
each ``csvw:column``'s ``csvw:name``, title and description; the analyst's request wizard offers them). A dataset series
(``dcat:DatasetSeries``) is kept too, flagged as a series. Remote JSON-LD contexts are never fetched: a JSON-LD
catalogue needs its context inline (as CKAN serves it), or use Turtle or RDF/XML.

``import_catalogue(node, source, ...)`` stores them in the node's database (``issuer_catalogue_dataset``), one row
per dataset IRI and source. A refresh that no longer finds a dataset marks it removed (``removed_at``); it never
deletes the row, and it never touches a credential: what was approved stays approved, the DPO is told (the
wallet's ``catalogue`` command lists held credentials naming removed datasets). ``to_jsonld(...)`` writes the
catalogue as compact JSON-LD in the shape a gateway's trust policy reads (``catalogues:``), with each dataset's
controller DID where the import mapped its publisher to one.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Optional

from sqlmodel import Field, SQLModel, select

from schemas.values import strict_json
from verifier.results import CeadError

from . import db

DCAT = "http://www.w3.org/ns/dcat#"
DCT = "http://purl.org/dc/terms/"
FOAF = "http://xmlns.com/foaf/0.1/"
VCARD = "http://www.w3.org/2006/vcard/ns#"
CSVW = "http://www.w3.org/ns/csvw#"
MAX_COLUMNS = 2000         # columns kept per dataset (a table schema is a page of names, not a dataset)
RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
RDF_FIRST = "http://www.w3.org/1999/02/22-rdf-syntax-ns#first"
FORMATS = {"json-ld": ("application/ld+json", ".jsonld", ".json"), "turtle": ("text/turtle", ".ttl"),
           "xml": ("application/rdf+xml", ".rdf", ".xml")}
MAX_BYTES = 64 * 1024 * 1024


@dataclass
class CatalogueDataset:
    iri: str
    title: str | None = None
    description: str | None = None
    publisher: str | None = None
    publisher_name: str | None = None
    contact_name: str | None = None
    contact_email: str | None = None
    themes: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    series: list[str] = field(default_factory=list)
    distributions: list[dict] = field(default_factory=list)
    is_series: bool = False
    columns: list[dict] = field(default_factory=list)     # [{"name", "title"?, "description"?}] from CSVW


class CatalogueEntry(SQLModel, table=True):
    """A dataset (or dataset series) of a catalogue this node imported."""
    __tablename__ = "issuer_catalogue_dataset"
    id: Optional[int] = Field(default=None, primary_key=True)
    iri: str = Field(index=True)
    source: str = Field(index=True)           # the catalogue URL or file it came from
    data: str                                 # JSON of CatalogueDataset
    controller: Optional[str] = None          # the controller DID its publisher maps to, if any
    first_seen: str = Field(default_factory=db.utcnow)
    last_seen: str = Field(default_factory=db.utcnow)
    removed_at: Optional[str] = None

    @property
    def dataset(self) -> CatalogueDataset:
        known = CatalogueDataset.__dataclass_fields__
        return CatalogueDataset(**{k: v for k, v in json.loads(self.data).items() if k in known})


def guess_format(name: str, content_type: str | None = None) -> str:
    ctype = (content_type or "").split(";")[0].strip().lower()
    for fmt, (mime, *suffixes) in FORMATS.items():
        if ctype == mime or any(name.lower().split("?")[0].endswith(s) for s in suffixes):
            return fmt
    raise CeadError("catalogue.format", f"Cannot tell the RDF format of {name!r}"
                    + (f" ({ctype})" if ctype else "") + ": use a .jsonld, .ttl or .rdf catalogue, or --format.")


def _no_remote_contexts(value: Any) -> None:
    """JSON-LD contexts must be inline: a catalogue never makes the node fetch a URL it names."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ctx = item.get("@context")
            for c in (ctx if isinstance(ctx, list) else [ctx]):
                if isinstance(c, str):
                    raise CeadError("catalogue.remote_context", f"The JSON-LD catalogue names a remote @context "
                                    f"({c[:100]}), which is never fetched; serve the catalogue with an inline "
                                    "context (CKAN does), or as Turtle or RDF/XML.")
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def read_dcat(data: bytes, fmt: str) -> list[CatalogueDataset]:
    """Every dcat:Dataset and dcat:DatasetSeries in an RDF document."""
    import rdflib
    from rdflib import URIRef
    if fmt not in FORMATS:
        raise CeadError("catalogue.format", f"Unknown format {fmt!r}; use json-ld, turtle or xml.")
    if fmt == "json-ld":
        try:
            document = strict_json(data, "the catalogue")
            _no_remote_contexts(document)
        except (ValueError, RecursionError):
            raise CeadError("catalogue.invalid", "The catalogue is not JSON.") from None
        if not isinstance(document, (dict, list)):   # rdflib fails on these with its own internal error
            kind = {str: "a JSON string", bool: "JSON true or false", type(None): "JSON null"}.get(
                type(document), "a JSON number")
            raise CeadError("catalogue.invalid", f"The catalogue holds {kind}, not JSON-LD (an object or a list of "
                            "objects).")
    graph = rdflib.Graph()
    try:
        graph.parse(data=data, format=fmt)
    except CeadError:
        raise
    except Exception as exc:   # rdflib raises many kinds for bad input
        raise CeadError("catalogue.invalid", f"The catalogue is not valid {fmt}: {str(exc)[:200]}") from None
    u = lambda ns, name: URIRef(ns + name)  # noqa: E731

    def text(subject, *preds) -> str | None:
        for pred in preds:
            values = [o for o in graph.objects(subject, pred)]
            english = [v for v in values if getattr(v, "language", None) in ("en", "en-GB")]
            for v in english or values:
                return str(v)
        return None

    def refs(subject, pred) -> list[str]:
        return sorted({str(o) for o in graph.objects(subject, pred) if isinstance(o, URIRef)})

    def columns(subject) -> list[dict]:
        """The CSVW table schema's columns of the dataset or of its distributions, in order, once each."""
        from rdflib.collection import Collection
        schemas = list(graph.objects(subject, u(CSVW, "tableSchema")))
        for dist in graph.objects(subject, u(DCAT, "distribution")):
            schemas += list(graph.objects(dist, u(CSVW, "tableSchema")))
        out: dict[str, dict] = {}
        for schema in schemas:
            for item in graph.objects(schema, u(CSVW, "column")):
                try:        # JSON-LD's @list (an RDF collection) or plain repeated values
                    items = list(Collection(graph, item)) if (item, u(RDF_FIRST, ""), None) in graph else [item]
                except Exception:       # noqa: BLE001 (a malformed list: its head read as one column)
                    items = [item]
                for col in items:
                    name = text(col, u(CSVW, "name")) or text(col, u(CSVW, "titles"))
                    if name and name not in out and len(out) < MAX_COLUMNS:
                        out[name] = {k: v for k, v in {"name": name[:200], "title": (text(col, u(CSVW, "titles"))
                                     or "")[:300], "description": (text(col, u(DCT, "description")) or "")[:500]
                                     }.items() if v}
        return list(out.values())

    if not any(True for kind in ("Catalog", "Dataset", "DatasetSeries")
               for _ in graph.subjects(URIRef(RDF_TYPE), u(DCAT, kind))):
        # a wrong file, not an empty catalogue (which still says it is a dcat:Catalog): importing it would flag
        # every dataset of this source removed
        raise CeadError("catalogue.invalid", "The document names no dcat:Catalog, dcat:Dataset or "
                        "dcat:DatasetSeries: it is not a DCAT catalogue (nothing was imported). Give the catalogue's "
                        "DCAT export (CKAN: /catalog.ttl or /catalog.jsonld).")
    series_members: dict[str, list[str]] = {}
    for series in graph.subjects(URIRef(RDF_TYPE), u(DCAT, "DatasetSeries")):
        for member in graph.subjects(u(DCAT, "inSeries"), series):
            series_members.setdefault(str(member), []).append(str(series))
    found: dict[str, CatalogueDataset] = {}
    kinds = [(u(DCAT, "Dataset"), False), (u(DCAT, "DatasetSeries"), True)]
    for kind, is_series in kinds:
        for subject in graph.subjects(URIRef(RDF_TYPE), kind):
            if not isinstance(subject, URIRef):
                continue            # a blank-node dataset has no IRI anyone can approve
            iri = str(subject)
            publisher = next(iter(graph.objects(subject, u(DCT, "publisher"))), None)
            contact = next(iter(graph.objects(subject, u(DCAT, "contactPoint"))), None)
            email = text(contact, u(VCARD, "hasEmail")) if contact is not None else None
            distributions = []
            for dist in graph.objects(subject, u(DCAT, "distribution")):
                distributions.append({k: v for k, v in {
                    "accessURL": text(dist, u(DCAT, "accessURL")), "downloadURL": text(dist, u(DCAT, "downloadURL")),
                    "mediaType": text(dist, u(DCAT, "mediaType"), u(DCT, "format")),
                    "title": text(dist, u(DCT, "title"))}.items() if v})
            found[iri] = CatalogueDataset(
                iri=iri, title=text(subject, u(DCT, "title")), description=text(subject, u(DCT, "description")),
                publisher=str(publisher) if isinstance(publisher, URIRef) else None,
                publisher_name=text(publisher, u(FOAF, "name"), u(VCARD, "fn")) if publisher is not None else None,
                contact_name=text(contact, u(VCARD, "fn")) if contact is not None else None,
                contact_email=email[len("mailto:"):] if email and email.startswith("mailto:") else email,
                themes=refs(subject, u(DCAT, "theme")),
                keywords=sorted({str(k) for k in graph.objects(subject, u(DCAT, "keyword"))}),
                series=sorted(set(refs(subject, u(DCAT, "inSeries")) + series_members.get(iri, []))),
                distributions=sorted(distributions, key=lambda d: json.dumps(d, sort_keys=True)),
                is_series=is_series, columns=columns(subject))
    return sorted(found.values(), key=lambda d: d.iri)


@dataclass
class ImportResult:
    source: str
    added: list[str]
    updated: list[str]
    removed: list[str]
    total: int


def import_catalogue(node, source: str, *, data: bytes | None = None, fmt: str | None = None,
                     publishers: dict[str, str] | None = None) -> ImportResult:
    """Read ``source`` (an https URL through the node's network settings, or a file; ``data`` when already read)
    and bring the node's copy of that catalogue up to date. ``publishers`` maps publisher IRIs to controller DIDs."""
    content_type = None
    if data is None:
        if source.startswith(("https://", "http://")):
            fetcher = node.fetcher()
            fetcher.max_bytes = MAX_BYTES       # a council's whole catalogue, not a DID document
            result = fetcher.get(source, accept="text/turtle, application/ld+json, application/rdf+xml")
            data, content_type = result.body, result.headers.get("Content-Type")
        else:
            from pathlib import Path
            try:
                data = Path(source).read_bytes()
            except OSError as exc:
                raise CeadError("catalogue.unreadable", f"Cannot read {source!r}: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise CeadError("catalogue.invalid", f"The catalogue is over {MAX_BYTES // (1024 * 1024)} MiB.")
    datasets = read_dcat(data, fmt or guess_format(source, content_type))
    for publisher, did in (publishers or {}).items():
        if not (isinstance(did, str) and did.startswith("did:")):
            raise CeadError("catalogue.invalid", f"The controller for publisher {publisher} must be a DID, not "
                            f"{did!r}.")
    now = db.utcnow()
    added, updated, removed = [], [], []
    with node.session() as s:
        rows = {r.iri: r for r in s.exec(select(CatalogueEntry).where(CatalogueEntry.source == source))}
        for ds in datasets:
            body = json.dumps(asdict(ds), sort_keys=True)
            controller = (publishers or {}).get(ds.publisher or "") or (
                ds.publisher if ds.publisher and ds.publisher.startswith("did:") else None)
            row = rows.pop(ds.iri, None)
            if row is None:
                s.add(CatalogueEntry(iri=ds.iri, source=source, data=body, controller=controller, first_seen=now,
                                     last_seen=now))
                added.append(ds.iri)
                continue
            if row.data != body or row.removed_at is not None or row.controller != controller:
                updated.append(ds.iri)
            row.data, row.controller, row.last_seen, row.removed_at = body, controller, now, None
            s.add(row)
        for row in rows.values():          # left the catalogue: flagged, never deleted
            if row.removed_at is None:
                row.removed_at = now
                removed.append(row.iri)
                s.add(row)
        s.commit()
    return ImportResult(source, added, updated, removed, len(datasets))


def entries(node, *, include_removed: bool = False) -> list[CatalogueEntry]:
    with node.session() as s:
        query = select(CatalogueEntry)
        if not include_removed:
            query = query.where(CatalogueEntry.removed_at.is_(None))
        return list(s.exec(query.order_by(CatalogueEntry.iri)))


def removed_datasets(node) -> list[str]:
    return sorted({e.iri for e in entries(node, include_removed=True) if e.removed_at is not None})


def to_jsonld(rows: Iterable[CatalogueEntry], catalogue_iri: str) -> dict:
    """The catalogue as compact JSON-LD, in the shape ``verifier.policy.read_catalogue`` reads: each dataset with
    its controller DID (when its publisher maps to one) and the series it is part of."""
    datasets = []
    for row in rows:
        ds = row.dataset
        entry: dict[str, Any] = {"@id": ds.iri, "@type": "dcat:DatasetSeries" if ds.is_series else "dcat:Dataset"}
        if ds.title:
            entry["dct:title"] = ds.title
        if row.controller:
            entry["dct:publisher"] = {"@id": row.controller}
        if ds.series:
            entry["dct:isPartOf"] = [{"@id": s} for s in ds.series]
        datasets.append(entry)
    return {"@context": {"dcat": DCAT, "dct": DCT}, "@id": catalogue_iri, "@type": "dcat:Catalog",
            "dcat:dataset": datasets}


# ---- write-back: the approvals in force, per dataset, for a catalogue to harvest --------------------------------

ODRL = "http://www.w3.org/ns/odrl/2/"


def approvals_in_force(node) -> dict:
    """Every active approval this node issued, per dataset, as DCAT datasets carrying ODRL agreements (public
    metadata only: the approval's id and digest, assigner (this node), assignees (the recipients), purposes, period).
    A catalogue harvests it from ``GET /catalogue/approvals.jsonld``; suspended, revoked and expired approvals drop
    out at once."""
    from schemas.vocab import expand
    now = db.utcnow()
    with node.session() as s:
        rows = list(s.exec(select(db.IssuedCredential).where(db.IssuedCredential.status == "active",
                                                             db.IssuedCredential.datasets.is_not(None))))
    by_dataset: dict[str, list[dict]] = {}
    for row in rows:
        if row.valid_until and row.valid_until <= now:
            continue
        purposes = [expand(p) for p in json.loads(row.purposes or "[]")]
        policy: dict[str, Any] = {
            "@id": row.id, "@type": "odrl:Agreement", "odrl:assigner": {"@id": node.did},
            "odrl:assignee": [{"@id": r} for r in (row.subject or "").split() if r],
            "odrl:permission": [{"odrl:action": {"@id": "odrl:use"}, "odrl:constraint": [
                {"odrl:leftOperand": {"@id": "odrl:purpose"}, "odrl:operator": {"@id": "odrl:isA"},
                 "odrl:rightOperand": {"@id": p}} for p in purposes]}],
            "dct:issued": row.issued_at, "cead:digest": row.digest}
        if row.valid_until:
            policy["dct:valid"] = row.valid_until
        for dataset in json.loads(row.datasets or "[]"):
            iri = expand(dataset)
            by_dataset.setdefault(iri, []).append(dict(policy, **{"odrl:target": {"@id": iri}}))
    datasets = [{"@id": iri, "@type": "dcat:Dataset", "odrl:hasPolicy": policies}
                for iri, policies in sorted(by_dataset.items())]
    catalogue = {"@id": node.public_url.rstrip("/") + "/catalogue/approvals.jsonld", "@type": "dcat:Catalog",
                 "dct:publisher": {"@id": node.did}, "dct:modified": now,
                 "dcat:dataset": [{"@id": d["@id"]} for d in datasets]}
    return {"@context": {"dcat": DCAT, "dct": DCT, "odrl": ODRL, "cead": "https://w3id.org/cead/vocab#"},
            "@graph": [catalogue, *datasets]}


def blueprint(node):
    """``GET /catalogue/approvals.jsonld``: the approvals in force per dataset (public)."""
    from flask import Blueprint, Response
    bp = Blueprint("catalogue", __name__)

    @bp.get("/catalogue/approvals.jsonld")
    def approvals():
        return Response(json.dumps(approvals_in_force(node), indent=1), mimetype="application/ld+json",
                        headers={"Cache-Control": "public, max-age=300"})

    return bp
