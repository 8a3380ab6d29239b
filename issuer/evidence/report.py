"""The table of logged decisions people read: the node's ``/log/transfers`` page and ``cead audit``'s printable
report show each approval's transfers with it (times to the second in words, allowed/refused; the exact values
stay in the log and in the audit's CSV)."""
from __future__ import annotations

import html
from typing import Any, Iterable

from schemas.words import moment_words
from verifier.decision.reasons import reasons_words

DECISION_WORDS = {"allow": "allowed", "deny": "refused"}


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def transfers_table(entries: Iterable[dict]) -> str:
    """An HTML table of logged receipt entries (each ``{"meta", "digests", "index", "at"}``, as the log decodes
    them): when, decision, recipient, dataset, rows, the payload's SHA-256 (first 16 hex digits), reasons (in words,
    each with Cead's code: ``verifier.decision.reasons``) and the log entry."""
    parts = ["<table><tr><th>when</th><th>decision</th><th>recipient</th><th>dataset</th><th>rows</th>"
             "<th>payload SHA-256</th><th>reasons</th><th>log entry</th></tr>"]
    for r in entries:
        m, decision = r["meta"], r["meta"].get("decision")
        parts.append(f"<tr><td>{_e(moment_words(m.get('decidedAt') or r.get('at'), seconds=True))}</td>"
                     f"<td>{_e(DECISION_WORDS.get(decision, decision))}</td><td>{_e(m.get('holder'))}</td>"
                     f"<td>{_e(m.get('dataset'))}</td><td>{_e(m.get('rows'))}</td>"
                     f"<td><code>{_e((r['digests'].get('payload') or '')[:16])}</code></td>"
                     f"<td>{_e(reasons_words(m.get('reasons')))}</td><td>{r['index']}</td></tr>")
    parts.append("</table>")
    return "".join(parts)
