"""The lawful-basis rulebook and its engine (issue 13): pure, stateless, no network.

- ``rulebook``: the versioned rulebook as data (``schemas/rulebook``), its JSON Schema and its pinned digest;
- ``engine``: ``evaluate`` (results with rule, citation, explanation, outcome and what would satisfy it),
  ``check`` (problems) and ``explain`` (plain words for the approval form);
- ``provenance``: upstream approvals checked over every hop, with cycle and depth limits.
"""
from .engine import RuleResult, anonymised, check, evaluate, explain, implied_sensitivity  # noqa: F401
from .rulebook import Rule, Rulebook, builtin, load, parse, rulebook_digest  # noqa: F401
