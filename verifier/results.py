"""Structured outcomes shared by every check: a problem has a stable code and a sentence a person understands.

Every verification function returns problems (or a VerificationResult) instead of raising for bad input.
Internally, code may raise ``CeadError``; the public entry points catch it and turn it into a ``Problem``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    code: str       # stable, machine-readable, e.g. "proof.signature_invalid"
    message: str    # one sentence for a person
    detail: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail:
            out["detail"] = self.detail
        return out


class CeadError(Exception):
    """An error with a stable code; raised internally, reported as a Problem at the API boundary."""

    def __init__(self, code: str, message: str, **detail: Any):
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail

    @property
    def problem(self) -> Problem:
        return Problem(self.code, self.message, dict(self.detail))


@dataclass
class VerificationResult:
    verified: bool
    problems: list[Problem] = field(default_factory=list)
    document: dict[str, Any] | None = None          # the credential/presentation as JSON (decoded if it was a JWT)
    format: str | None = None                       # "ldp" | "jwt"
    issuer: str | None = None                       # issuer DID (holder DID for a presentation)
    verification_method: str | None = None
    credentials: list["VerificationResult"] = field(default_factory=list)  # for presentations
    warnings: list[Problem] = field(default_factory=list)

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
        if self.credentials:
            out["credentials"] = [c.to_dict() for c in self.credentials]
        return out
