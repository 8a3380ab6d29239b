"""The table of logged decisions people read: the node's ``/log/transfers`` page and ``cead audit``'s printable
report show each approval's transfers with it (times to the second in words, allowed/refused; the exact values
stay in the log and in the audit's CSV)."""
from __future__ import annotations

import html
from typing import Any, Callable, Iterable

from schemas.words import moment_words
from verifier.decision.reasons import reasons_words

DECISION_WORDS = {"allow": "allowed", "deny": "refused"}
NOBODY = "nobody (no presentation was sent)"


def without_presentation(meta: dict) -> bool:
    """Whether a logged decision is on a request that carried no presentation at all (``presentation.missing``): a
    probe, a load balancer's or a monitor's health check, a client not set up to present. Refused before anyone was
    identified (no requester, no approval) and nothing moved; still a decision the gateway logged."""
    return (meta.get("decision") == "deny" and not meta.get("holder") and not meta.get("approval")
            and "presentation.missing" in (meta.get("reasons") or []))


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def named(known: Callable[[str], str | None]) -> Callable[[Any], str]:
    """An identifier as the node's pages show it in a table: the name ``known`` gives for it, with the identifier
    beside it in small monospace (``cead-id cead-id-beside``); the identifier alone (``cead-id``) when it knows
    none."""
    def render(value: Any) -> str:
        name = known(value) if isinstance(value, str) else None
        if not name:
            return f"<span class=\"cead-id\">{_e(value)}</span>"
        return f"<span class=\"cead-name\">{_e(name)}</span> <span class=\"cead-id cead-id-beside\">{_e(value)}</span>"
    return render


def transfers_table(entries: Iterable[dict], name: Callable[[Any], str] | None = None, *,
                    boxes: bool = False) -> str:
    """An HTML table of logged receipt entries (each ``{"meta", "digests", "index", "at"}``, as the log decodes
    them): when, decision, recipient, dataset, rows, the payload's SHA-256 (first 16 hex digits), reasons (in words,
    each with Cead's code: ``verifier.decision.reasons``) and the log entry. ``name`` renders an identifier (a
    recipient's DID, a dataset's IRI) as HTML, e.g. with a name the reader knows it by; default: the identifier
    (with ``boxes``, in the pages' ``cead-id``).
    An empty cell is said in words ("not known", "nothing moved"), and each cell carries its column's name so that
    a narrow screen can show the rows as cards: ``data-label`` for ``cead audit``'s report (its own style sheet),
    or, with ``boxes``, the node's pages' ``ds_table cead-boxes`` and ``data-heading`` (issuer/static/cead.css),
    headings in sentence case as the pages write them."""
    if name is None:    # on the pages an identifier may break anywhere (.cead-id), so the columns fit the page
        name = (lambda v: f"<span class=\"cead-id\">{_e(v)}</span>") if boxes else _e
    heads = ["when", "decision", "recipient", "dataset", "rows", "payload SHA-256 (first 16 digits)", "reasons",
             "log entry"]
    reasons = heads.index("reasons")
    if boxes:
        heads = [h[:1].upper() + h[1:] for h in heads]
    table, attr = ("ds_table cead-boxes cead-log", "data-heading") if boxes else ("rows", "data-label")
    th = "<th scope=\"col\">" if boxes else "<th>"
    wrap = " class=\"cead-wrap\"" if boxes else ""        # the reasons: long words in the pages' long-text cell
    when = " class=\"cead-when\"" if boxes else ""        # the time: one line on a wide screen (cead.css)
    mono = " class=\"cead-mono\"" if boxes else ""        # a digest in the pages' smaller monospace
    parts = [f"<table class=\"{table}\"><thead><tr>" + "".join(f"{th}{h}</th>" for h in heads) + "</tr></thead><tbody>"]
    for r in entries:
        m, decision = r["meta"], r["meta"].get("decision")
        payload = (r["digests"].get("payload") or "")[:16]
        cells = [_e(moment_words(m.get("decidedAt") or r.get("at"), seconds=True)),
                 _e(DECISION_WORDS.get(decision, decision)),
                 name(m["holder"]) if m.get("holder") else
                 (NOBODY if without_presentation(m) else "not known (no presentation was read)"),
                 name(m["dataset"]) if m.get("dataset") else "not stated",
                 _e(m["rows"]) if m.get("rows") is not None else ("not counted" if decision == "allow" else "none"),
                 f"<code{mono}>{_e(payload)}</code>" if payload else ("not recorded" if decision == "allow"
                                                                 else "nothing moved"),
                 _e(reasons_words(m.get("reasons"))) or "&#8212;", str(r["index"])]
        extra = {0: when, reasons: wrap}
        parts.append("<tr>" + "".join(f"<td {attr}=\"{h}\"{extra.get(i, '')}>{c}</td>"
                                      for i, (h, c) in enumerate(zip(heads, cells))) + "</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)
