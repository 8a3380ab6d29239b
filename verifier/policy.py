"""The verifier's trust policy: whom it trusts, for what, and how long it may rely on what it has fetched.

A policy is a YAML or JSON file (annotated example: docs/examples/policy.yaml, explained in docs/trust-policy.md).
Loading validates every key; a bad file raises ``CeadError("policy.invalid", ...)`` naming the offending key, so a
gateway refuses to start rather than running with a policy it misread.
"""
from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, PrivateAttr, field_validator, model_validator

from schemas.values import load_document
from schemas.vocab import Vocabulary, extended, registry

from .binding import origin
from .results import CeadError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_did(value: str) -> str:
    if not isinstance(value, str) or not value.startswith("did:") or value.count(":") < 2:
        raise ValueError(f"{value!r} is not a DID")
    return value


class Controller(_Strict):
    """Who controls a dataset: an exact dataset IRI, or every dataset IRI under a prefix."""

    dataset: str | None = None
    prefix: str | None = None
    controller: str

    @field_validator("controller")
    @classmethod
    def _did(cls, v: str) -> str:
        return _check_did(v)

    @model_validator(mode="after")
    def _one_of(self) -> "Controller":
        if (self.dataset is None) == (self.prefix is None):
            raise ValueError("give exactly one of 'dataset' or 'prefix'")
        return self


class CacheSettings(_Strict):
    size: int = Field(1024, ge=1, le=10_000_000)
    ttl: int = Field(300, ge=0, le=86_400)  # seconds


class Caches(_Strict):
    did_documents: CacheSettings = CacheSettings(size=1024, ttl=300)
    status_lists: CacheSettings = CacheSettings(size=256, ttl=300)
    proofs: CacheSettings = CacheSettings(size=4096, ttl=3600)       # verified-proof results by credential digest
    replay: CacheSettings = CacheSettings(size=100_000, ttl=600)     # seen presentation jti / proof values


class Network(_Strict):
    allow_http: bool = False          # development only: did:web and status lists over plain HTTP
    allow_private: bool = False       # development only: fetch from loopback / private addresses
    ca_bundle: str | None = None      # PEM file of extra trust anchors (e.g. a test CA)
    timeout: float = Field(5.0, gt=0, le=60)


class Receipts(_Strict):
    key: str                          # path of a PEM (PKCS#8) or JWK file; the only private key a verifier may hold
    kid: str | None = None            # key id written into the receipt's JWS header
    passphrase_env: str | None = None  # name of an environment variable holding the PEM passphrase
    batch: bool = True                # receipts sealed at the same moment share one signature (docs/evidence.md)


class Lawful(_Strict):
    """The lawful-basis rulebook the gateway applies (``verifier.lawful``), pinned by digest: ``rulebook`` a file
    (default: the one shipped with Cead, ``schemas/rulebook``); ``digest`` its ``sha256-...`` digest, which the
    file must have (a gateway refuses to start on another version); ``competent_authorities`` DIDs this gateway
    knows to be DPA 2018 Schedule 7 competent authorities, besides the rulebook's."""
    rulebook: str | None = None
    digest: str | None = Field(None, pattern=r"^sha256-[A-Za-z0-9_-]{43}$")
    competent_authorities: list[str] = []

    @field_validator("competent_authorities")
    @classmethod
    def _dids(cls, v: list[str]) -> list[str]:
        return [_check_did(d) for d in v]


class Transparency(_Strict):
    """Require approvals and delegations to be in their issuer's log (issue 15; docs/evidence.md)."""
    require_for: list[Literal["approval", "delegation"]] = ["approval", "delegation"]
    witnesses: list[str] = []         # note verifier keys (name+keyid+base64, type 0x04) of trusted witnesses
    min_witnesses: int = Field(1, ge=0, le=32)   # cosignatures needed from the witnesses named above
    max_age: int = Field(86_400, ge=1)            # seconds: the newest cosignature used may be at most this old
    require_key_logged: bool = True   # the signing key's addition must be in the issuer's log too
    checkpoint_cache: int = Field(60, ge=0, le=86_400)   # seconds a fetched checkpoint is reused, then revalidated
    cache_bytes: int = Field(16 * 1024 * 1024, ge=0)     # bound on cached checkpoints, entries and tiles (0: none)

    @field_validator("witnesses")
    @classmethod
    def _witness_keys(cls, v: list[str]) -> list[str]:
        from .tlog.note import ALG_COSIGNATURE_V1, NoteKey
        for key in v:
            try:
                parsed = NoteKey.parse(key)
            except CeadError as exc:
                raise ValueError(exc.message) from None
            if parsed.alg != ALG_COSIGNATURE_V1:
                raise ValueError(f"witness key {key[:60]!r} is not a cosignature/v1 key (type 0x04)")
        return v

    @model_validator(mode="after")
    def _enough(self) -> "Transparency":
        if self.min_witnesses > len(self.witnesses):
            raise ValueError(f"min_witnesses is {self.min_witnesses} but only {len(self.witnesses)} witnesses are "
                             "named")
        return self


class TrustPolicy(_Strict):
    """A validated trust policy. Durations are in seconds."""

    version: int = 1
    audience: list[str] = []                      # accepted presentation audiences; empty: the request's origin
    clock_skew: int = Field(300, ge=0, le=3600)
    presentation_max_age: int = Field(300, ge=1, le=3600)
    max_status_staleness: int = Field(3600, ge=0, le=30 * 86_400)
    max_delegation_depth: int = Field(4, ge=1, le=16)
    controllers: list[Controller] = []
    catalogues: list[str] = []                    # DCAT catalogue files (JSON-LD): dataset -> publisher/controller
    vocabulary: list[str] = []                    # broader/isPartOf files (as for `cead init --vocabulary`)
    certification_bodies: dict[str, list[str]] = {}   # scheme -> DIDs trusted to certify for it
    required_certifications: list[str] = []       # schemes every recipient must hold, besides the approval's
    caches: Caches = Caches()
    network: Network = Network()
    receipts: Receipts | None = None
    lawful: Lawful = Lawful()
    # the output of a PSI cardinality or secure aggregation: its run attestation required (the default: a declared
    # protocolRun is no evidence), or, weaker and only when a gateway says so, checked whenever the manifest carries
    # one ("when_given"); see docs/computations.md
    run_attestations: Literal["when_given", "required"] = "required"
    transparency: Transparency | None = None      # require logged, witnessed approvals/delegations (issue 15)
    replay_store: str | None = None               # redis://host:port/db shared by every gateway worker; None: per process

    base_dir: Path | None = Field(None, exclude=True)   # where relative file paths resolve from
    _catalogue: tuple[dict[str, str], dict[str, list[str]]] | None = PrivateAttr(None)
    _vocabularies: dict = PrivateAttr(default_factory=dict)   # id(base) -> (base, extended copy)
    _rulebook: Any = PrivateAttr(None)

    @field_validator("version")
    @classmethod
    def _version(cls, v: int) -> int:
        if v != 1:
            raise ValueError("only policy version 1 is understood")
        return v

    @field_validator("audience")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        try:
            return [origin(a) for a in v]   # scheme://host:port, as presentations state it
        except CeadError:
            raise ValueError("each audience must be an absolute URL (scheme://host[:port])") from None

    @field_validator("replay_store")
    @classmethod
    def _replay_store(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("replay_store must be a redis://host:port/db URL (or rediss://, unix://)")
        return v

    @field_validator("certification_bodies")
    @classmethod
    def _bodies(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for scheme, dids in v.items():
            for did in dids:
                _check_did(did)
        return v

    # ---- derived values -----------------------------------------------------------------------------------
    @property
    def skew(self) -> timedelta:
        return timedelta(seconds=self.clock_skew)

    def path(self, name: str) -> Path:
        p = Path(name).expanduser()
        return p if p.is_absolute() or self.base_dir is None else self.base_dir / p

    def trusted_bodies(self, scheme: str) -> list[str]:
        return list(self.certification_bodies.get(scheme, []))

    def controller_of(self, dataset: str) -> str | None:
        """The controller DID of a dataset IRI: an exact entry, else the longest matching prefix, else a catalogue."""
        best: tuple[int, str] | None = None
        for entry in self.controllers:
            if entry.dataset == dataset:
                return entry.controller
            if entry.prefix is not None and dataset.startswith(entry.prefix):
                if best is None or len(entry.prefix) > best[0]:
                    best = (len(entry.prefix), entry.controller)
        if best is not None:
            return best[1]
        return self.catalogue_controllers().get(dataset)

    def vocabulary_for(self, base: Vocabulary) -> Vocabulary:
        """``base`` extended (in a copy) by the ``vocabulary`` files and the catalogues' membership (a dataset of a
        catalogue lies within it), so a delegation over a catalogue covers its datasets. Files are read once."""
        cached = self._vocabularies.get(id(base))
        if cached is not None and cached[0] is base:
            return cached[1]
        voc = base.copy()
        for name in self.vocabulary:
            try:
                voc = extended(voc, self.path(name))
            except ValueError as exc:
                raise CeadError("policy.invalid", f"vocabulary: {exc}") from None
        for dataset, parents in self._read_catalogues()[1].items():
            voc.add(dataset, *parents)
        self._vocabularies[id(base)] = (base, voc)
        return voc

    def rulebook(self):
        """The lawful-basis rulebook this gateway applies (read once); CeadError ``lawful.rulebook_invalid`` or
        ``lawful.rulebook_digest_mismatch`` if the file is not the pinned version."""
        found = self.__pydantic_private__.get("_rulebook")   # read on every decision: not through __getattr__
        if found is not None:
            return found
        if self._rulebook is None:
            from .lawful import rulebook as books
            pin = self.lawful
            book = books.load(self.path(pin.rulebook), pin.digest) if pin.rulebook else books.builtin()
            if pin.digest is not None and book.digest != pin.digest:
                raise CeadError("lawful.rulebook_digest_mismatch", f"The built-in rulebook {book.version} has "
                                f"digest {book.digest}, but the trust policy pins {pin.digest}.")
            self._rulebook = book
        return self._rulebook

    def catalogue_controllers(self) -> dict[str, str]:
        return self._read_catalogues()[0]

    def _read_catalogues(self) -> tuple[dict[str, str], dict[str, list[str]]]:
        if self._catalogue is None:
            controllers: dict[str, str] = {}
            membership: dict[str, list[str]] = {}
            for name in self.catalogues:
                found, part_of = read_catalogue(self.path(name))
                controllers.update(found)
                for dataset, parents in part_of.items():
                    membership.setdefault(dataset, []).extend(parents)
            self._catalogue = (controllers, membership)
        return self._catalogue


_PUBLISHER_KEYS = ("controller", "cead:controller", "publisher", "dct:publisher", "dcterms:publisher",
                   "http://purl.org/dc/terms/publisher")
_DATASET_KEYS = ("dataset", "dcat:dataset", "http://www.w3.org/ns/dcat#dataset")
_PART_OF_KEYS = ("isPartOf", "dct:isPartOf", "dcterms:isPartOf", "http://purl.org/dc/terms/isPartOf")


def _ref(value: Any) -> str | None:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, dict):
        value = value.get("@id", value.get("id"))
    return value if isinstance(value, str) else None


def read_catalogue(path: Path) -> tuple[dict[str, str], dict[str, list[str]]]:
    """From a DCAT catalogue in compacted JSON-LD: dataset IRI -> controller DID, and dataset IRI -> the
    catalogues it is part of (the catalogue node's ``@id`` and the dataset's own ``dct:isPartOf``).

    Each ``dcat:dataset`` entry needs an ``@id``; its controller is its ``dct:publisher`` (or ``cead:controller``)
    when that is a DID, else the catalogue-level one.
    """
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CeadError("policy.invalid", f"catalogues: cannot read DCAT catalogue {str(path)!r}: {exc}") from None
    nodes = doc.get("@graph", [doc]) if isinstance(doc, dict) else doc
    controllers: dict[str, str] = {}
    membership: dict[str, list[str]] = {}
    for node in nodes if isinstance(nodes, list) else []:
        if not isinstance(node, dict):
            continue
        catalogue = _ref(node)
        default = next((_ref(node[k]) for k in _PUBLISHER_KEYS if k in node), None)
        datasets = next((node[k] for k in _DATASET_KEYS if k in node), [])
        for ds in datasets if isinstance(datasets, list) else [datasets]:
            iri = _ref(ds) if isinstance(ds, dict) else None
            if not iri:
                continue
            controller = next((_ref(ds[k]) for k in _PUBLISHER_KEYS if k in ds), None) or default
            if controller and controller.startswith("did:"):
                controllers[iri] = controller
            parents = ([catalogue] if catalogue else []) + [
                p for p in (_ref(v) for k in _PART_OF_KEYS if k in ds
                            for v in (ds[k] if isinstance(ds[k], list) else [ds[k]])) if p]
            if parents:
                membership.setdefault(iri, []).extend(parents)
    return controllers, membership


def format_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        parts.append(f"{key}: {msg}")
    return "; ".join(parts)


def parse_policy(data: Any, base_dir: Path | None = None) -> TrustPolicy:
    """Validate an already-parsed policy mapping."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CeadError("policy.invalid", "The trust policy must be a mapping (YAML or JSON object).")
    try:
        policy = TrustPolicy.model_validate({**data, "base_dir": base_dir})
    except ValidationError as exc:
        raise CeadError("policy.invalid", f"Invalid trust policy: {format_error(exc)}") from None
    policy.catalogue_controllers()  # read the catalogues and vocabulary now, so a bad one fails at load time
    policy.vocabulary_for(registry())
    policy.rulebook()   # and the rulebook, so a wrong version fails at load time
    return policy


def load_policy(path: str | Path | None) -> TrustPolicy:
    """Read a YAML or JSON trust policy file (``None``: the defaults, which trust no controller or body)."""
    if path is None:
        return parse_policy({})
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CeadError("policy.unreadable", f"Cannot read the trust policy {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CeadError("policy.unreadable", f"The trust policy {str(path)!r} is not UTF-8 text.") from None
    try:
        data = load_document(text, f"the trust policy {str(path)!r}")
    except ValueError as exc:
        raise CeadError("policy.invalid", f"Invalid trust policy: {exc}.") from None
    return parse_policy(data, base_dir=path.parent)
