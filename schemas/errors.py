"""The error and problem types every layer shares: a problem has a stable code and a sentence a person understands.

They live in ``schemas`` (the bottom layer) so that models can raise them; ``verifier.results`` re-exports them
beside ``VerificationResult``.
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
