"""Structured outcomes shared by every check: a problem has a stable code and a sentence a person understands.

Every verification function returns problems (or a VerificationResult) instead of raising for bad input.
Internally, code may raise ``CeadError``; the public entry points catch it and turn it into a ``Problem``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


from schemas.errors import CeadError, Problem  # noqa: F401  (re-exported: the one error type)


@dataclass
class VerificationResult:
    verified: bool
    problems: list[Problem] = field(default_factory=list)
    document: dict[str, Any] | None = None          # the credential/presentation as JSON (decoded if it was a JWT)
    format: str | None = None                       # "ldp" | "jwt"
    issuer: str | None = None                       # issuer DID (holder DID for a presentation)
    verification_method: str | None = None         # the issuer's (holder's) proof
    co_signers: list[str] = field(default_factory=list)  # DIDs of the other proofs of a Data Integrity proof set
    credentials: list["VerificationResult"] = field(default_factory=list)  # for presentations
    warnings: list[Problem] = field(default_factory=list)
    digest: str | None = None                       # sha256 digest of the exact credential verified (if computed)
    claims: dict[str, Any] | None = field(default=None, repr=False, compare=False)  # a JWT's verified claims

    @classmethod
    def failed(cls, *problems: Problem, **kw: Any) -> "VerificationResult":
        return cls(verified=False, problems=list(problems), **kw)

    def add(self, problem: Problem) -> None:
        self.problems.append(problem)
        self.verified = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "verified": self.verified,
            "problems": [p.to_dict() for p in self.problems],
            "warnings": [p.to_dict() for p in self.warnings],
        }
        if self.format:
            out["format"] = self.format
        if self.issuer:
            out["issuer"] = self.issuer
        if self.verification_method:
            out["verificationMethod"] = self.verification_method
        if self.co_signers:
            out["coSigners"] = list(self.co_signers)
        if self.credentials:
            out["credentials"] = [c.to_dict() for c in self.credentials]
        return out
