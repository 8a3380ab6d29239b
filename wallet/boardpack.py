"""The information-governance board pack for a data-sharing request, as HTML and PDF (WeasyPrint).

An IG board reads on paper or a PDF, not on a node's pages. ``board_pack_html(node, wallet, request_id)`` gathers
what a board weighs, in plain words: who is asking and what they hold (certifications as presented, with their
status when the request arrived), what they ask for (datasets, data items, purposes, lawful basis, cadence,
justification), the ICO Data Sharing Code checklist (what the request answers and what is missing), the nearest
precedents (this node's and followed peers' decisions), whether a standing approval covered it and why not, and the
decision so far. ``board_pack_pdf`` renders the same HTML with WeasyPrint (BSD-3-Clause), so the two never differ.
Identifiers are shown beside names, never instead of them; nothing is fetched while rendering (no remote fonts,
images or styles).
"""
from __future__ import annotations

import html
from datetime import datetime, timezone

from schemas.vocab import CERTIFICATION_SCHEMES, LEGAL_BASES, PURPOSES, REGIMES, REGIME_NAMES, compact, expand

from .approval_view import _day, cadence_words, day_words, moment_words
from .names import Directory

STYLE = """
@page { size: A4; margin: 18mm 16mm; @bottom-right { content: "Page " counter(page) " of " counter(pages); } }
body { font-family: Arial, Helvetica, sans-serif; font-size: 10.5pt; color: #1f2933; line-height: 1.4; }
h1 { font-size: 19pt; margin: 0 0 4pt; color: #002d54; } h2 { font-size: 13pt; color: #002d54; margin: 14pt 0 4pt;
border-bottom: 1.5pt solid #0065bd; padding-bottom: 2pt; }
table { width: 100%; border-collapse: collapse; margin: 4pt 0; } th, td { text-align: left; vertical-align: top;
padding: 3pt 5pt; border-bottom: 0.5pt solid #b3b3b3; } th { width: 32%; font-weight: bold; background: #f2f2f2; }
.missing { color: #a4262c; font-weight: bold; } .ok { color: #2b7a0b; font-weight: bold; }
.muted { color: #5e6b78; font-size: 9pt; word-break: break-all; } .note { border-left: 3pt solid #0065bd;
padding: 3pt 8pt; background: #f0f6fc; }
"""

# ICO Data Sharing Code of Practice: what a data sharing agreement should cover (the request's fields that answer it)
CHECKLIST = [
    ("Purpose of the sharing", lambda r: bool(r.get("purposes")) and bool(r.get("justification"))),
    ("The data to be shared (minimised)", lambda r: bool(r.get("dataItems"))),
    ("Lawful basis", lambda r: bool((r.get("lawfulBasis") or {}).get("legalBases"))),
    ("Agreement document pinned by digest", lambda r: bool((r.get("agreement") or {}).get("digest"))),
    ("How often data moves (cadence)", lambda r: bool(r.get("cadence"))),
    ("Where the answer is delivered (requester's node)", lambda r: bool(r.get("replyTo"))),
]


def _e(value) -> str:
    return html.escape("" if value is None else str(value))


def _named(value, names: Directory | None = None) -> str:
    """A term or an organisation by its name, with its identifier beside it (small), never instead of it: Cead's
    vocabulary, else what the node knows (``names``: its catalogue's titles and publishers, organisations named by
    certifications from certifiers its trust policy trusts, as on the decision page)."""
    if not isinstance(value, str):
        return _e(value)
    iri = expand(value)
    term = PURPOSES.get(iri) or LEGAL_BASES.get(iri) or CERTIFICATION_SCHEMES.get(iri)
    label = term.label if term else (names.known(value) if names is not None else None)
    return f"{_e(label)} <span class='muted'>{_e(compact(value))}</span>" if label else _e(compact(value))


def _list(values, names: Directory | None = None) -> str:
    items = [v for v in values or []]
    if not items:
        return '<span class="missing">Not stated</span>'
    return "<br>".join(_named(v, names) for v in items)


def _why(precedent: dict, names: Directory) -> str:
    """Why a precedent is near, in words (``wallet.precedents.why_near``), each reason's identifiers beside it."""
    from .precedents import why_near
    return "<br>".join(_e(r["text"][:1].upper() + r["text"][1:])
                       + (f" <span class='muted'>{_e(', '.join(compact(i) for i in r['identifiers']))}</span>"
                          if r["identifiers"] else "") for r in why_near(precedent, names))


STATUS_WORDS = {"pending": "Waiting for a decision", "approved": "Approved", "refused": "Refused",
                "changes requested": "Changes asked for"}


def board_pack_html(node, wallet, request_id: str, *, now: datetime | None = None) -> str:
    from . import precedents
    from . import sharing
    row = sharing.get_request(wallet, request_id)
    req = row.request
    basis = req.get("lawfulBasis") or {}
    now = now or datetime.now(timezone.utc)
    names = Directory.for_node(node, wallet, row.certification_list)
    regime = REGIMES.get(REGIME_NAMES.get(basis.get("regime") or "", ""))
    from issuer import staff
    try:
        person = staff.person_words(node.engine)
    except Exception:   # noqa: BLE001 (no staff accounts table: who decided, as recorded)
        person = lambda who, role=None: who   # noqa: E731
    certs = "".join(f"<tr><th>{_named(c.get('scheme') or '')}</th><td>{_e(c.get('status'))} when the request "
                    f"arrived, until {_e(_day(c['expiryDate']) if c.get('expiryDate') else 'no end date')}"
                    f"<div>certified by {_named(c.get('issuer'), names)}</div></td></tr>"
                    for c in row.certification_list) or "<tr><td class='missing'>No certification was presented."
    from . import desk
    # the ICO Data Sharing Code's headings as the approver's page gives them (what the request answers, what is
    # missing, with the law), then the fields the request itself must carry
    code = desk.ico_checklist(req, desk.case_of(req), desk.minimisation(req.get("dataItems", [])))
    checks = "".join(f"<tr><th>{_e(c.title)}</th><td><span class='{'ok' if c.state == 'ok' else 'missing'}'>"
                     f"{'Answered' if c.state == 'ok' else 'To look at'}</span>: {_e(c.text or 'Not answered.')}"
                     + (f" <span class='muted'>{_e(c.cite[0])}</span>" if c.cite else "") + "</td></tr>"
                     for c in code)
    carried = "".join(f"<tr><th>{_e(name)}</th><td class='{'ok' if test(req) else 'missing'}'>"
                      f"{'Answered' if test(req) else 'Missing'}</td></tr>" for name, test in CHECKLIST)
    near = precedents.nearest(wallet, dict(req, _id=row.id), k=3, requester=row.requester)
    prec = "".join(f"<tr><th>{_e(STATUS_WORDS.get(p['outcome'], p['outcome']))}"
                   f"{', ' + _e(_day(p['decidedAt'])) if p.get('decidedAt') else ''}<div class='muted'>"
                   f"{'by this organisation' if p['mine'] else 'by ' + _named(p['decider'], names)}</div></th><td>{_why(p, names)}"
                   f"{'<br><b>Reasons:</b> ' + _e(p['reasons']) if p.get('reasons') else ''}</td></tr>" for p in near)
    decision = (f"{_e(STATUS_WORDS.get(row.status, row.status))}"
                + (f" by {_e(person(row.decided_by))} on {day_words(row.decided_at)}" if row.decided_at else "")
                + (f"<br>Reason: {_e(row.reason)}" if row.reason else ""))
    return f"""<!doctype html><html lang="en-GB"><head><meta charset="utf-8">
<title>Board pack: data-sharing request {_e(row.id)}</title><style>{STYLE}</style></head><body>
<h1>Data-sharing request for the information governance board</h1>
<p>{_e(node.name)} &middot; request {_e(row.id)} received {day_words(row.received_at)} &middot; pack made {moment_words(now)}</p>
<h2>Who is asking</h2>
<table><tr><th>Requesting organisation</th><td>{_named(row.requester, names)}</td></tr>{certs}</table>
<h2>What they ask for</h2>
<table><tr><th>Datasets</th><td>{_list(req.get('datasets'), names)}</td></tr>
<tr><th>Data items</th><td>{_list(req.get('dataItems'))}</td></tr>
<tr><th>Purposes</th><td>{_list(req.get('purposes'))}</td></tr>
<tr><th>Lawful basis ({_e(regime.label if regime else basis.get('regime') or 'regime not stated')})</th><td>{_list(basis.get('legalBases'))}</td></tr>
<tr><th>How often</th><td>{_e(cadence_words(req['cadence'])) if req.get('cadence') else '<span class="missing">Not stated</span>'}</td></tr>
<tr><th>Why (in the requester's words)</th><td>{_e(req.get('justification')) or '<span class="missing">Not stated</span>'}</td></tr>
<tr><th>Agreement</th><td>{_e((req.get('agreement') or {}).get('id'))}<div class="muted">{_e((req.get('agreement') or {}).get('digest'))}</div></td></tr></table>
<h2>ICO Data Sharing Code checklist</h2><table>{checks}</table>
<h2>What the request carries</h2><table>{carried}</table>
<h2>What was decided before</h2><table>{prec or '<tr><td>No earlier decision is near this request.</td></tr>'}</table>
{f'<h2>Standing approvals</h2><p class="note">{_e(row.standing_note)}</p>' if row.standing_note else ''}
<h2>Decision</h2><p>{decision}</p>
<p class="muted">What this pack shows was presented by the requester and checked by {_e(node.name)}'s node when it arrived
(the presentation's signature and the certifications' status). The lawful-basis rules and the approver's delegation
are checked again when an approval is signed. The controller remains accountable for the decision.</p>
</body></html>"""


def board_pack_pdf(node, wallet, request_id: str) -> bytes:
    """The same pack as PDF. No URL is fetched while rendering (a fetcher that refuses everything)."""
    import weasyprint

    def refuse(url, *args, **kwargs):
        raise ValueError(f"board packs fetch nothing ({url})")
    return weasyprint.HTML(string=board_pack_html(node, wallet, request_id), url_fetcher=refuse).write_pdf()
