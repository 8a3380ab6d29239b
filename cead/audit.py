"""`cead audit NODE_URL`: an auditor's check of one organisation's log, and an accountability report.

The auditor (the ICO, the Chief Data Office, an IG board) needs nothing from the node but its public ``/log/``:

1. the node's DID document (did:web of the URL, or ``--did``) gives the keys its checkpoints must be signed with;
2. every checkpoint the node has signed (``/log/checkpoints``) must verify, and their witness cosignatures are
   checked against the witness keys given (``--witness``, repeatable);
3. every entry is downloaded (C2SP tlog-tiles entry bundles), the Merkle tree is rebuilt, and each checkpoint's
   root must be the root of the first ``size`` entries: one history, never rewritten (consistency, checked the
   strongest way: by recomputation);
4. the entries are read: approvals issued, status changes, key changes, and every receipt (allow and deny) with
   the approval it was made under.

The report is a CSV (one row per decision) and a printable HTML page, including the DPA 2018 s.62 view: for a
Part 3 (law enforcement) controller, the log of disclosures with date and time, recipient and justification.
"""
from __future__ import annotations

import csv
import html
import io
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from schemas import vocab
from schemas.words import moment_words
from issuer.evidence.report import transfers_table
from verifier.did import Resolver, did_web_from_url, ed25519_keys
from verifier.http import Fetcher
from verifier.results import CeadError, Problem
from verifier.tlog import merkle, note as notes, tiles
from verifier.tlog.checkpoint import Checkpoint, open_checkpoint

S62 = "https://www.legislation.gov.uk/ukpga/2018/12/section/62"
NO_APPROVAL = "(no approval)"   # decisions refused before an approval was found (no presentation, say)
MAX_ENTRIES = 5_000_000


@dataclass
class Audit:
    node_url: str
    did: str
    origin: str = ""
    size: int = 0
    checkpoints: list[dict] = field(default_factory=list)
    entries: list[dict] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def of_kind(self, kind: str) -> list[dict]:
        return [e for e in self.entries if e.get("kind") == kind]

    def approvals(self) -> list[dict]:
        return [e for e in self.of_kind("credential.issued")
                if any("Approval" in t for t in e["meta"].get("types") or [])]

    def receipts(self) -> list[dict]:
        return self.of_kind("receipt")

    def transfers_by_approval(self) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {a["meta"].get("credentialId"): [] for a in self.approvals()}
        for r in self.receipts():
            out.setdefault(r["meta"].get("approval") or NO_APPROVAL, []).append(r)
        return out


def _entry(index: int, data: bytes) -> dict:
    try:
        value = json.loads(data)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        return {"index": index, "kind": "(unreadable)", "digests": {}, "meta": {}, "at": None}
    value = {"digests": {}, "meta": {}, **value}
    value["index"] = index
    return value


def run(node_url: str, *, did: str | None = None, witnesses: list[str] = (), fetcher: Fetcher | None = None,
        min_witnesses: int = 0) -> Audit:
    node_url = node_url.rstrip("/")
    fetcher = fetcher or Fetcher()
    did = did or did_web_from_url(node_url)
    audit = Audit(node_url, did)
    resolver = Resolver(fetcher)
    keys = ed25519_keys(resolver.resolve(did))
    witness_keys = [notes.NoteKey.parse(w) for w in witnesses]
    listing = json.loads(fetcher.get(f"{node_url}/log/checkpoints", accept="application/json").body)
    latest = fetcher.get(f"{node_url}/log/checkpoint", accept="text/plain").body.decode()
    audit.origin = listing.get("origin") or Checkpoint.parse(latest.split("\n\n", 1)[0] + "\n").origin
    notes_seen = list(listing.get("checkpoints") or [])
    if latest not in notes_seen:
        notes_seen.append(latest)
    opened = []
    for note in notes_seen:
        found = None
        for raw in keys:
            try:
                found = open_checkpoint(note, notes.NoteKey(audit.origin, notes.ALG_ED25519, raw), witness_keys)
                break
            except CeadError:
                continue
        if found is None:
            audit.problems.append(Problem("audit.checkpoint_invalid", "A checkpoint is not signed by a key of "
                                          f"{did}.", {"checkpoint": note[:200]}))
            continue
        opened.append(found)
    opened.sort(key=lambda c: c.checkpoint.size)
    size = max((c.checkpoint.size for c in opened), default=0)
    if size > MAX_ENTRIES:
        raise CeadError("audit.too_large", f"The log has {size} entries; this audit reads at most {MAX_ENTRIES}.")
    audit.size = size
    # every entry, from the entry bundles
    leaves: list[bytes] = []
    for n in range((size + tiles.TILE_WIDTH - 1) // tiles.TILE_WIDTH):
        width = min(tiles.TILE_WIDTH, size - n * tiles.TILE_WIDTH)
        data = fetcher.get(f"{node_url}/log/{tiles.entries_path(n, width)}", accept="application/octet-stream").body
        bundle = tiles.unbundle(data)
        if len(bundle) != width:
            audit.problems.append(Problem("audit.entries_missing", f"Entry bundle {n} holds {len(bundle)} entries, "
                                          f"not {width}."))
        for data in bundle:
            audit.entries.append(_entry(len(leaves), data))
            leaves.append(merkle.leaf_hash(data))
    # one history: each checkpoint's root is the root of its first `size` entries
    roots = _roots_at(leaves, sorted({c.checkpoint.size for c in opened}))
    for c in opened:
        cp = c.checkpoint
        consistent = roots.get(cp.size) == cp.root
        if not consistent:
            audit.problems.append(Problem("audit.inconsistent", f"The checkpoint of {cp.size} entries does not match "
                                          "the entries the log serves: its history was rewritten or forked.",
                                          {"size": cp.size}))
        names = [w.key.name for w in c.witnesses]
        if len(names) < min_witnesses:
            audit.problems.append(Problem("audit.witnesses_insufficient", f"The checkpoint of {cp.size} entries is "
                                          f"co-signed by {len(names)} of the witnesses given; {min_witnesses} "
                                          "needed.", {"size": cp.size}))
        audit.checkpoints.append({"size": cp.size, "root": cp.root.hex(), "consistent": consistent,
                                  "witnesses": names,
                                  "witnessedAt": [datetime.fromtimestamp(w.timestamp, timezone.utc).isoformat()
                                                  for w in c.witnesses if w.timestamp is not None]})
    return audit


def _roots_at(leaves: list[bytes], sizes: list[int]) -> dict[int, bytes]:
    """The RFC 9162 root of the first ``s`` leaves for each ``s`` in ``sizes``, in one pass (compact range)."""
    out, stack, wanted = {}, [], set(sizes)
    if 0 in wanted:
        out[0] = merkle.EMPTY_ROOT
    for i, leaf in enumerate(leaves):
        stack.append((leaf, 1))
        while len(stack) > 1 and stack[-1][1] == stack[-2][1]:
            right, n = stack.pop()
            left, _ = stack.pop()
            stack.append((merkle.node_hash(left, right), 2 * n))
        if i + 1 in wanted:
            h = stack[-1][0]
            for left, _ in reversed(stack[:-1]):
                h = merkle.node_hash(left, h)
            out[i + 1] = h
    return out


# ---- the report ---------------------------------------------------------------------------------------------

CSV_FIELDS = ["logIndex", "decidedAt", "decision", "approval", "recipient", "dataset", "purpose", "rows",
              "payloadSha256", "receiptSha256", "reasons", "gateway"]


def _row(r: dict) -> dict:
    meta, digests = r["meta"], r["digests"]
    return {"logIndex": r["index"], "decidedAt": meta.get("decidedAt") or r.get("at"), "decision": meta.get("decision"),
            "approval": meta.get("approval"), "recipient": meta.get("holder"), "dataset": meta.get("dataset"),
            "purpose": meta.get("purpose"), "rows": meta.get("rows"), "payloadSha256": digests.get("payload"),
            "receiptSha256": digests.get("receipt"), "reasons": " ".join(meta.get("reasons") or []),
            "gateway": meta.get("gateway")}


def _csv_safe(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(audit: Audit) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in audit.receipts():
        writer.writerow({k: _csv_safe(v) for k, v in _row(r).items()})
    return out.getvalue()


EVENT_WORDS = {"credential.status": "credential status changed", "key.added": "key added to the DID document",
               "key.retired": "key retired from the DID document"}


def purpose_words(purpose: str | None) -> str:
    """A purpose by its name in Cead's vocabulary with its identifier ("Statistics (dpv:...)"), else the
    identifier as written (compacted)."""
    if not purpose:
        return ""
    term = vocab.PURPOSES.get(vocab.expand(purpose))
    return f"{term.label} ({vocab.compact(term.iri)})" if term else vocab.compact(purpose)


def to_html(audit: Audit) -> str:
    """The printable report: times, decisions and events in words (the CSV keeps the exact values)."""
    e = lambda v: html.escape("" if v is None else str(v))   # noqa: E731
    parts = [f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Accountability report: {e(audit.did)}</title>
<style>body{{font-family:sans-serif;margin:2em;color:#111}} table{{border-collapse:collapse;width:100%;margin:1em 0}}
th,td{{border:1px solid #999;padding:4px 6px;font-size:12px;text-align:left;vertical-align:top}}
th{{background:#eee}} .bad{{color:#a00;font-weight:bold}} .ok{{color:#060;font-weight:bold}}
@media print{{a{{color:#111;text-decoration:none}} h2{{page-break-before:auto}}}}</style></head><body>
<h1>Accountability report</h1>
<p>Organisation <b>{e(audit.did)}</b>, log <code>{e(audit.origin)}</code> at {e(audit.node_url)}/log/,
read {e(moment_words(datetime.now(timezone.utc), seconds=True))}.</p>
<p>Entries: {audit.size}. Approvals issued: {len(audit.approvals())}. Decisions with receipts: {len(audit.receipts())}
({sum(1 for r in audit.receipts() if r['meta'].get('decision') == 'allow')} allowed,
{sum(1 for r in audit.receipts() if r['meta'].get('decision') == 'deny')} refused).</p>
{'<p class="ok">Every check passed: one consistent history, every checkpoint signed by the organisation.</p>'
 if audit.ok else '<p class="bad">Problems found:</p><ul class="bad">' +
 ''.join(f'<li>{e(p.message)}</li>' for p in audit.problems) + '</ul>'}
<h2>Checkpoints</h2><table><tr><th>entries</th><th>root hash</th><th>matches the entries</th><th>co-signed by</th>
</tr>"""]
    for c in audit.checkpoints:
        parts.append(f"<tr><td>{c['size']}</td><td><code>{e(c['root'][:16])}…</code></td>"
                     f"<td class=\"{'ok' if c['consistent'] else 'bad'}\">{'yes' if c['consistent'] else 'NO'}</td>"
                     f"<td>{e(', '.join(c['witnesses']) or 'none (no witness was named, or none co-signed)')}</td></tr>")
    parts.append("</table><h2>Approvals and the transfers made under each</h2>")
    issued = {a["meta"].get("credentialId"): a for a in audit.approvals()}
    for approval, transfers in audit.transfers_by_approval().items():
        a = issued.get(approval)
        if approval == NO_APPROVAL:
            parts.append("<h3>Refused before an approval was found</h3><p>No approval was presented, or none could "
                         "be read: these requests were refused and nothing moved.</p>")
            parts.append(transfers_table(transfers))
            continue
        when = (f", issued {e(moment_words(a.get('at'), seconds=True))} (log entry {a['index']})" if a else
                " (issued elsewhere, e.g. by a delegate: its issuance is in that issuer's log)")
        parts.append(f"<h3>Approval {e(approval)}{when}</h3>")
        what = sorted({(t["meta"].get("dataset") or "", t["meta"].get("purpose") or "") for t in transfers})
        if what:
            parts.append("<p>" + "; ".join(f"dataset {e(d) or '(not stated)'}, for "
                                           f"{e(purpose_words(p)) or '(no purpose stated)'}" for d, p in what) + ".</p>")
        if not transfers:
            parts.append("<p>No transfers under this approval.</p>")
            continue
        parts.append(transfers_table(transfers))
    parts.append("<p>Each reason is given in words with Cead's code beside it (the codes are explained in "
                 "docs/error-codes.md); the CSV keeps the codes alone.</p>"
                 "<h2>Status and key changes</h2><table><tr><th>entry</th><th>when</th><th>what</th><th>subject</th>"
                 "</tr>")
    for x in audit.entries:
        if x["kind"] in ("credential.status", "key.added", "key.retired"):
            subject = x["meta"].get("credentialId") or x["meta"].get("verificationMethod")
            what = EVENT_WORDS[x["kind"]] + (f": {x['meta'].get('action')}" if x["meta"].get("action") else "")
            parts.append(f"<tr><td>{x['index']}</td><td>{e(moment_words(x.get('at'), seconds=True))}</td>"
                         f"<td>{e(what)}</td><td>{e(subject)}</td></tr>")
    parts.append(f"""</table>
<h2>DPA 2018 section 62: logging of disclosures (Part 3 controllers)</h2>
<p>Section 62 of the Data Protection Act 2018 (<a href="{S62}">{S62}</a>) requires a competent authority to keep
logs of, among other operations, every disclosure (including transfers) of personal data, from which the
justification for, and the date and time of, the disclosure and, so far as possible, the identity of the recipients
can be established. In plain words: for every time data left, you must be able to say when, to whom, and why.
Below is that view of this organisation's log: each allowed transfer, its time, its recipient and its justification
(the approval relied on, with its purpose).</p>
<table><tr><th>date and time</th><th>recipient</th><th>justification (approval; purpose)</th><th>dataset</th>
<th>rows</th><th>log entry</th></tr>""")
    for r in audit.receipts():
        row = _row(r)
        if row["decision"] != "allow":
            continue
        parts.append(f"<tr><td>{e(moment_words(row['decidedAt'], seconds=True))}</td><td>{e(row['recipient'])}</td>"
                     f"<td>{e(row['approval'])}; {e(purpose_words(row['purpose']))}</td><td>{e(row['dataset'])}</td>"
                     f"<td>{e(row['rows'])}</td>"
                     f"<td>{row['logIndex']}</td></tr>")
    parts.append("</table></body></html>\n")
    return "".join(parts)


def write_report(audit: Audit, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    name = audit.did.replace(":", "_").replace("%", "_")
    csv_path, html_path = out_dir / f"audit-{name}.csv", out_dir / f"audit-{name}.html"
    csv_path.write_text(to_csv(audit), encoding="utf-8")
    html_path.write_text(to_html(audit), encoding="utf-8")
    return csv_path, html_path
