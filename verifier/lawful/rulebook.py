"""A versioned lawful-basis rulebook, read from data (``schemas/rulebook/<version>.json``) and pinned by digest.

The rulebook lists the legal-basis terms it knows (what each does: an Art 6 basis, an Art 9 condition and the
Schedule 1 conditions it needs, a statutory gateway and the purposes it allows, ...), the repealed enactments it
refuses, the competent authorities of DPA 2018 Schedule 7 it knows by DID, and its rules: each with a stable id (the
problem code), a legislation.gov.uk citation, a plain-English explanation for a DPO and what would satisfy it.

Its digest is ``sha256-`` + base64url(SHA-256(JCS(document))), as for credentials: a trust policy pins the version
a gateway applies by this digest, whatever the file's formatting; however the file travels (a repository, a
download, a credential signed by the body that maintains it), only the document, and so the digest, matters here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

import schemas
from schemas.models import credential_digest
from schemas.vocab import Vocabulary, expand

from ..results import CeadError

DEFAULT_VERSION = "uk-2026.1"
SCHEMA_FILE = "rulebook.schema.json"


@dataclass(frozen=True)
class Rule:
    id: str                 # the problem code, e.g. lawful.special_category_condition_missing
    title: str
    citation: str           # legislation.gov.uk IRI
    explanation: str        # plain English, for a DPO
    satisfy: str            # what would satisfy it
    advisory: bool = False  # reported, never a refusal


@dataclass(frozen=True)
class Rulebook:
    document: dict = field(repr=False, compare=False)
    digest: str = ""

    @property
    def id(self) -> str:
        return self.document["id"]

    @property
    def version(self) -> str:
        return self.document["version"]

    rules: dict[str, Rule] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", {
            r["id"]: Rule(r["id"], r["title"], r["citation"], r["explanation"], r["satisfy"],
                          bool(r.get("advisory", False))) for r in self.document["rules"]})

    def rule(self, rule_id: str) -> Rule:
        return self.rules[rule_id]

    def term(self, iri: str, vocabulary: Vocabulary | None = None) -> dict | None:
        """What the rulebook (or, second, the organisation's vocabulary file) says a legal-basis IRI is."""
        iri = expand(iri)
        found = self.document["terms"].get(iri)
        if found is None and vocabulary is not None:
            found = vocabulary.legal_bases.get(iri)
        return found

    def repealed(self, iri: str) -> dict | None:
        return next((r for r in self.document.get("repealed", []) if iri.startswith(r["prefix"])), None)

    def gateways(self) -> dict[str, dict]:
        return {iri: t for iri, t in self.document["terms"].items() if t["kind"] == "gateway"}

    def competent_authorities(self) -> set[str]:
        return {entry["did"] for entry in self.document.get("competentAuthorities", [])}

    @property
    def law_enforcement_purposes(self) -> list[str]:
        return list(self.document.get("lawEnforcementPurposes", []))

    @property
    def anonymising_protocols(self) -> tuple[str, ...]:
        return tuple(self.document.get("anonymisingProtocols", ("threshold", "differentialPrivacy")))

    @property
    def public_authorities_by_default(self) -> bool:
        return bool(self.document.get("publicAuthoritiesByDefault", True))


def rulebook_digest(document: dict) -> str:
    """The digest a trust policy pins: ``sha256-`` + base64url(SHA-256(JCS(document)))."""
    return credential_digest(document)


def _schema() -> dict:
    return json.loads(schemas.data_path("rulebook", SCHEMA_FILE).read_text("utf-8"))


def parse(document: Any, where: str = "the rulebook", digest: str | None = None) -> Rulebook:
    """A Rulebook from its JSON document; CeadError ``lawful.rulebook_invalid`` naming what is wrong, or
    ``lawful.rulebook_digest_mismatch`` when ``digest`` is given and differs."""
    try:
        jsonschema.validate(document, _schema())
    except jsonschema.ValidationError as exc:
        at = "/".join(str(p) for p in exc.absolute_path) or "(top)"
        raise CeadError("lawful.rulebook_invalid", f"{where} is not a valid rulebook: at {at}: {exc.message}.",
                        at=at) from None
    actual = rulebook_digest(document)
    if digest is not None and digest != actual:
        raise CeadError("lawful.rulebook_digest_mismatch", f"{where} has digest {actual}, but the trust policy pins "
                        f"{digest}: it is not the rulebook version the policy names.", expected=digest, actual=actual)
    ids = [r["id"] for r in document["rules"]]
    if len(ids) != len(set(ids)):
        raise CeadError("lawful.rulebook_invalid", f"{where} lists a rule id twice.")
    return Rulebook(document, actual)


def load(path: str | Path, digest: str | None = None) -> Rulebook:
    """Read a rulebook file (JSON); see ``parse``."""
    path = Path(path)
    try:
        document = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise CeadError("lawful.rulebook_invalid", f"No rulebook file {str(path)!r}.") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CeadError("lawful.rulebook_invalid", f"Cannot read the rulebook {str(path)!r}: {exc}.") from None
    return parse(document, repr(str(path)), digest)


@lru_cache(maxsize=4)
def builtin(version: str = DEFAULT_VERSION) -> Rulebook:
    """The rulebook shipped with Cead (``schemas/rulebook/<version>.json``), checked against the digest the
    package's ``schemas/rulebook/index.json`` publishes for it."""
    index = json.loads(schemas.data_path("rulebook", "index.json").read_text("utf-8"))["rulebooks"]
    if version not in index:
        raise CeadError("lawful.rulebook_invalid", f"No rulebook {version!r} is shipped with Cead (there are "
                        f"{', '.join(sorted(index))}).")
    entry = index[version]
    return load(Path(str(schemas.data_path("rulebook", entry["file"]))), entry["digest"])
