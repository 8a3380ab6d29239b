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
from schemas.words import kind_name, moment_words
from issuer.evidence.report import transfers_table, without_presentation
from verifier.did import Resolver, did_web_from_url, ed25519_keys
from verifier.http import Fetcher
from verifier.results import CeadError, Problem
from verifier.tlog import merkle, note as notes, tiles
from verifier.tlog.checkpoint import Checkpoint, SignedCheckpoint, open_checkpoint

S62 = "https://www.legislation.gov.uk/ukpga/2018/12/section/62"
NO_APPROVAL = "(no approval)"   # decisions refused before an approval was found (a presentation unreadable, say)
NO_PRESENTATION = "(no presentation)"   # requests that carried no presentation at all (health checks, probes)
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
    witness_keys: list[str] = field(default_factory=list)   # the names of the witness keys the auditor gave
    min_witnesses: int = 0

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

    def without_presentation(self) -> list[dict]:
        """The decisions on requests that carried no presentation at all (probes, health checks, misconfigured
        clients): refused, nothing moved, nobody identified."""
        return [r for r in self.receipts() if without_presentation(r["meta"])]

    def transfers_by_approval(self) -> dict[str, list[dict]]:
        """Every decision under the approval it was made under; those refused before an approval was found under
        ``NO_APPROVAL``, and those on requests without any presentation under ``NO_PRESENTATION`` (last)."""
        out: dict[str, list[dict]] = {a["meta"].get("credentialId"): [] for a in self.approvals()}
        for r in self.receipts():
            if without_presentation(r["meta"]):
                continue
            out.setdefault(r["meta"].get("approval") or NO_APPROVAL, []).append(r)
        if NO_APPROVAL in out:
            out[NO_APPROVAL] = out.pop(NO_APPROVAL)
        bare = self.without_presentation()
        if bare:
            out[NO_PRESENTATION] = bare
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
    audit = Audit(node_url, did, min_witnesses=min_witnesses)
    resolver = Resolver(fetcher)
    keys = ed25519_keys(resolver.resolve(did))
    witness_keys = [notes.NoteKey.parse(w) for w in witnesses]
    audit.witness_keys = [k.name for k in witness_keys]
    listing = json.loads(fetcher.get(f"{node_url}/log/checkpoints", accept="application/json").body)
    latest = fetcher.get(f"{node_url}/log/checkpoint", accept="text/plain").body.decode()
    audit.origin = listing.get("origin") or Checkpoint.parse(latest.split("\n\n", 1)[0] + "\n").origin
    notes_seen = list(listing.get("checkpoints") or [])
    if latest not in notes_seen:
        notes_seen.append(latest)
    opened, bad_cosigners = [], {}
    for note in notes_seen:
        found = None
        for raw in keys:           # the organisation's own signature first, alone: a bad cosignature is not its
            try:
                found = open_checkpoint(note, notes.NoteKey(audit.origin, notes.ALG_ED25519, raw))
                break
            except CeadError:
                continue
        if found is None:
            audit.problems.append(Problem("audit.checkpoint_invalid", "A checkpoint is not signed by a key of "
                                          f"{did}.", {"checkpoint": note[:200]}))
            continue
        cosigned, bad = cosignatures(note, witness_keys)
        for name in bad:
            audit.problems.append(Problem("audit.cosignature_invalid",
                                          bad_cosignature_words(name, found.checkpoint.size),
                                          {"size": found.checkpoint.size, "witness": name}))
        bad_cosigners[found.checkpoint.size] = bad
        opened.append(SignedCheckpoint(found.checkpoint, found.note, tuple(cosigned)))
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
        names = list(dict.fromkeys(w.key.name for w in c.witnesses))   # each witness once (two keys of one: one)
        if len(names) < min_witnesses:
            audit.problems.append(Problem("audit.witnesses_insufficient", f"The checkpoint of {cp.size} entries is "
                                          f"co-signed by {len(names)} of the witnesses given; {min_witnesses} "
                                          "needed.", {"size": cp.size}))
        audit.checkpoints.append({"size": cp.size, "root": cp.root.hex(), "consistent": consistent,
                                  "witnesses": names, "badCosignatures": bad_cosigners.get(cp.size, []),
                                  "witnessedAt": [datetime.fromtimestamp(w.timestamp, timezone.utc).isoformat()
                                                  for w in c.witnesses if w.timestamp is not None]})
    return audit


def bad_cosignature_words(witness: str, size: int) -> str:
    """The finding for a witness's cosignature that does not verify (``witness``: its name, as text or HTML)."""
    return (f"The cosignature of the witness {witness} on the checkpoint of {size} entries does not verify: the "
            "log serves a cosignature that witness did not make over this checkpoint (ask the organisation why; the "
            "witness can say what it co-signed). The organisation's own signature on it is good.")


def cosignatures(note: str, witness_keys: list) -> tuple[list, list[str]]:
    """The cosignatures on ``note`` by the witness keys given, each checked on its own: ``(verified, bad)``, the
    verified cosignatures (``notes.Verified``) and the names of the witnesses whose cosignature is there but does
    not verify (each once). A witness key that did not co-sign is in neither."""
    verified, bad = [], []
    for key in witness_keys:
        try:
            verified += notes.verify(note, [key])[1]
        except CeadError as exc:
            if exc.code != "tlog.signature_invalid":
                raise
            bad.append(key.name)
    return verified, list(dict.fromkeys(bad))


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


def index_ranges(indexes) -> str:
    """Log entry numbers as ranges: "0-3, 17, 25-26"."""
    spans: list[list[int]] = []
    for i in sorted(indexes):
        if spans and i == spans[-1][1] + 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


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
KIND_WORDS = {"credential.issued": "credentials issued", "credential.status": "status changes",
              "key.added": "keys added", "key.retired": "keys retired", "receipt": "gateway decisions (receipts)",
              "budget.released": "privacy-budget releases"}
SINGULAR = {"credential.issued": "credential issued", "credential.status": "status change", "key.added": "key added",
            "key.retired": "key retired", "receipt": "gateway decision (receipt)",
            "budget.released": "privacy-budget release"}


def purpose_words(purpose: str | None) -> str:
    """A purpose by its name in Cead's vocabulary with its identifier ("Statistics (dpv:...)"), else the
    identifier as written (compacted)."""
    if not purpose:
        return ""
    term = vocab.PURPOSES.get(vocab.expand(purpose))
    return f"{term.label} ({vocab.compact(term.iri)})" if term else vocab.compact(purpose)


def load_names(path: Path) -> dict[str, str]:
    """The auditor's names for identifiers, ``{"<DID or IRI>": "Name"}`` (JSON or YAML; the same shape as a node's
    ``HOME/names.json``): the log holds identifiers only, so the report names an organisation or a dataset only as
    the auditor knows it. ``request.invalid`` naming the file when it is not such an object."""
    from schemas.values import load_document, read_text
    try:
        data = load_document(read_text(str(path), str(path)), f"the names file {str(path)!r}")
    except OSError as exc:
        raise CeadError("request.invalid", f"Cannot read the names file {str(path)!r}: {exc.strerror or exc}.") \
            from None
    except ValueError as exc:
        raise CeadError("request.invalid", str(exc)) from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise CeadError("request.invalid", f"The names file {str(path)!r} must map identifiers to names, e.g. "
                        '{"did:web:police.scot.example": "Police Scotland"}.')
    return {vocab.expand(k): v.strip() for k, v in data.items() if v.strip()}


STYLE = """
body{font-family:Arial,Helvetica,sans-serif;margin:2em auto;max-width:80em;padding:0 1em;color:#111;line-height:1.4}
h1{font-size:1.7em;margin-bottom:.2em} h2{margin-top:1.6em;border-bottom:2px solid #ccc;padding-bottom:.2em}
h3{margin-bottom:.3em}
table{border-collapse:collapse;width:100%;margin:.6em 0 1em}
th,td{border:1px solid #999;padding:4px 6px;font-size:13px;text-align:left;vertical-align:top}
th{background:#eee} tfoot td{font-weight:bold;background:#f6f6f6}
code,.id{font-family:"DejaVu Sans Mono",Consolas,monospace;font-size:12px;overflow-wrap:anywhere}
.id{color:#444;display:block}
td,th,p,li{overflow-wrap:break-word}
.verdict{border:3px solid;padding:.6em 1em;margin:1em 0}
.verdict.ok{border-color:#060;background:#f1f8f1} .verdict.bad{border-color:#a00;background:#fcf0f0}
.verdict h2{border:0;margin:.2em 0;font-size:1.4em} .ok .answer{color:#060} .bad .answer{color:#a00}
.no{color:#a00;font-weight:bold} .yes{color:#060;font-weight:bold}
dl.terms dt{font-weight:bold;margin-top:.5em} dl.terms dd{margin-left:1.5em}
table.facts th{width:45%;background:#f6f6f6;font-weight:normal} table.facts td{font-weight:bold}
.note{color:#333;font-size:.95em}
@media (max-width:640px){
  body{margin:.5em auto;padding:0 .6em} h1{font-size:1.4em} .verdict{padding:.4em .7em} .verdict ul{padding-left:1.1em}
  table.rows thead{display:none}
  table.rows,table.rows tbody,table.rows tfoot,table.rows tr,table.rows td{display:block;width:auto}
  table.rows tr{border:1px solid #999;margin:0 0 .7em;padding:.2em 0}
  table.rows td{border:0;border-bottom:1px solid #e3e3e3;padding:3px 8px}
  table.rows td::before{content:attr(data-label);display:block;font-weight:bold;font-size:11px;color:#555}
  table.rows tfoot td:empty{display:none}
  table.facts th{width:55%}
}
@media print{
  @page{size:A4;margin:14mm 12mm}
  body{margin:0;max-width:none;padding:0;font-size:11px}
  a{color:#111;text-decoration:none}
  th,td{font-size:9.5px;padding:2px 4px} code,.id{font-size:9px}
  thead{display:table-header-group} tr,.verdict,dl.terms div{break-inside:avoid}
  h2,h3{break-after:avoid} .verdict{-webkit-print-color-adjust:exact;print-color-adjust:exact}
}
"""


class _Report:
    """Builds the printable page: every count it states is a count of what it lists."""

    def __init__(self, audit: Audit, names: dict[str, str] | None):
        self.audit, self.names = audit, dict(names or {})

    @staticmethod
    def e(value) -> str:
        return html.escape("" if value is None else str(value))

    def known(self, identifier) -> str | None:
        """The auditor's name for ``identifier`` (as written, or expanded: ``cead:...``), or None."""
        return self.names.get(identifier) or self.names.get(vocab.expand(str(identifier)))

    def name(self, identifier) -> str:
        """An identifier as HTML: the auditor's name for it, with the identifier beneath; else the identifier."""
        if not identifier:
            return ""
        known = self.known(identifier)
        ident = f'<span class="id">{self.e(identifier)}</span>'
        return f"{self.e(known)}{ident}" if known else ident

    def inline(self, identifier) -> str:
        """An identifier in a sentence: "Police Scotland (did:web:...)", or the identifier alone."""
        known = self.known(identifier)
        return f"{self.e(known)} (<code>{self.e(identifier)}</code>)" if known else f"<code>{self.e(identifier)}</code>"

    def plain_name(self, identifier) -> str:
        return self.known(identifier) or str(identifier)

    def table(self, heads: list[str], rows: list[list[str]], foot: list[str] | None = None) -> str:
        """A table whose cells are already HTML, each labelled for the phone layout."""
        out = ['<table class="rows"><thead><tr>' + "".join(f"<th>{h}</th>" for h in heads) + "</tr></thead><tbody>"]
        out += ["<tr>" + "".join(f'<td data-label="{h}">{c}</td>' for h, c in zip(heads, row)) + "</tr>"
                for row in rows]
        out.append("</tbody>")
        if foot:
            out.append("<tfoot><tr>" + "".join(f'<td data-label="{h}">{c}</td>' for h, c in zip(heads, foot))
                       + "</tr></tfoot>")
        out.append("</table>")
        return "".join(out)

    # ---- the parts ----------------------------------------------------------------------------------------
    def html(self) -> str:
        a, e = self.audit, self.e
        who = self.plain_name(a.did)
        parts = [f"""<!doctype html><html lang="en-GB"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Accountability report: {e(who)}</title><style>{STYLE}</style></head><body>
<h1>Accountability report: {e(who)}</h1>
<p>An independent check of the transparency log kept by {self.inline(a.did)}, read from
<code>{e(a.node_url)}/log/</code> on {e(moment_words(datetime.now(timezone.utc), seconds=True))}, with everything
it records about the credentials it issued and the data transfers its gateway decided. The terms used are
explained at the end, under <a href="#terms">What the terms mean</a>.</p>"""]
        parts.append(self.verdict())
        parts.append(self.summary())
        parts.append(self.approvals())
        parts.append(self.other_credentials())
        parts.append(self.changes())
        parts.append(self.other_entries())
        parts.append(self.s62())
        parts.append(self.checkpoints())
        parts.append(self.terms())
        parts.append("</body></html>\n")
        return "".join(parts)

    def verdict(self) -> str:
        a, e = self.audit, self.e
        n_cp = len(a.checkpoints)
        what = "s (signed summaries of the log), each" if n_cp != 1 else " (a signed summary of the log),"
        signed = f"{n_cp} checkpoint{what} signed with a key in the DID document of {e(self.plain_name(a.did))}"
        rebuilt = (f"All {a.size} entries downloaded and the log's hash tree rebuilt from them; every checkpoint "
                   "matches those entries, so this is one history that has not been rewritten")
        latest_witnessed = bool(a.checkpoints and a.checkpoints[-1]["witnesses"])
        if a.witness_keys:
            witnessed = sum(1 for c in a.checkpoints if c["witnesses"])
            given = (f"you named {len(a.witness_keys)} witness key{'s' if len(a.witness_keys) != 1 else ''} "
                     f"({e(', '.join(self.plain_name(w) for w in a.witness_keys))})")
            if witnessed == n_cp and n_cp:
                share = "every checkpoint is co-signed by them" if n_cp > 1 else "the checkpoint is co-signed by them"
            else:
                share = (f"{witnessed} of the {n_cp} checkpoints {'is' if witnessed == 1 else 'are'} co-signed by "
                         f"them, {'including' if latest_witnessed else 'but not'} the latest")
            witness = (f"Witnesses: {given}; {share}"
                       + (f" (at least {a.min_witnesses} required for each)" if a.min_witnesses else ""))
        else:
            witness = ("Witnesses <b>not checked</b>: no witness key was given (<code>--witness</code>), so this "
                       "audit cannot rule out that the organisation showed other parties a different log (a split "
                       "view)")
        if a.ok:
            head = '<div class="verdict ok"><h2 class="answer">Result: the log is intact</h2>'
            checks = [f"&#10003; {signed}.", f"&#10003; {rebuilt}.",
                      ("&#10003; " if latest_witnessed else "&#9888; ") + witness + "."]
            tail = ""
        else:
            head = ('<div class="verdict bad"><h2 class="answer">Result: problems found: do not rely on this log '
                    'until the organisation explains them</h2>')
            checks = [f'<span class="no">&#10007; {self.problem_words(p)}</span> <code>{e(p.code)}</code>'
                      for p in a.problems]
            tail = (f"<p>Checked: {n_cp} checkpoint{'s' if n_cp != 1 else ''} signed by the organisation, against "
                    f"{a.size} entries. The counts and tables below are what the log serves now, not proven.</p>")
        scope = ("<p class=\"note\">What this shows: what {org}'s node logged about the credentials it issued, their "
                 "status and its keys, and every decision its gateway signed a receipt for. It cannot show a "
                 "disclosure that did not pass through that gateway. Each receipt is in the log as a fingerprint; "
                 "its signature is checked with <code>cead receipts verify</code> on the node, or by comparing a "
                 "recipient's copy with the fingerprint.</p>").format(org=e(self.plain_name(a.did)))
        return head + "<ul>" + "".join(f"<li>{c}</li>" for c in checks) + "</ul>" + tail + scope + "</div>"

    def problem_words(self, p: Problem) -> str:
        """A finding as HTML: a witness whose cosignature is bad by the auditor's name for it, with its DID."""
        if p.code == "audit.cosignature_invalid" and p.detail.get("witness"):
            return bad_cosignature_words(self.inline(p.detail["witness"]), p.detail.get("size"))
        return self.e(p.message)

    def summary(self) -> str:
        a = self.audit
        receipts = a.receipts()
        allowed = [r for r in receipts if r["meta"].get("decision") == "allow"]
        refused = [r for r in receipts if r["meta"].get("decision") == "deny"]
        rows = sum(r["meta"]["rows"] for r in allowed if isinstance(r["meta"].get("rows"), int))
        uncounted = sum(1 for r in allowed if not isinstance(r["meta"].get("rows"), int))
        issued_here = {x["meta"].get("credentialId") for x in a.approvals()}
        relied = {r["meta"].get("approval") for r in receipts if r["meta"].get("approval")}
        elsewhere = relied - issued_here
        recipients = {r["meta"].get("holder") for r in allowed if r["meta"].get("holder")}
        kinds: dict[str, int] = {}
        for x in a.entries:
            kinds[x["kind"]] = kinds.get(x["kind"], 0) + 1
        breakdown = "; ".join(f"{n} {KIND_WORDS.get(k, k)}" if n != 1 else f"1 {SINGULAR.get(k, k)}"
                              for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
        facts = [("Entries in the log", f"{a.size}" + (f" ({breakdown})" if breakdown else "")),
                 ("Approvals issued by this organisation (in this log)", len(issued_here)),
                 ("Approvals transfers were decided under",
                  f"{len(relied)}" + ((", issued elsewhere" if len(elsewhere) == len(relied) else
                                       f", of which {len(elsewhere)} issued elsewhere")
                                      + " (by a delegate or another controller: their issuance is in their issuer's "
                                        "log)" if elsewhere else "")),
                 ("Decisions by its gateway", f"{len(receipts)}: {len(allowed)} allowed, {len(refused)} refused"),
                 ("Of those refused: requests without any presentation (probes, health checks, misconfigured "
                  "clients)", f"{len(a.without_presentation())}: nothing moved, nobody identified"),
                 ("Transfers (allowed decisions) and rows disclosed",
                  f"{len(allowed)} transfer{'s' if len(allowed) != 1 else ''}, {rows} rows"
                  + (f" (and {uncounted} transfer{'s' if uncounted != 1 else ''} whose rows were not counted)"
                     if uncounted else "")),
                 ("Recipients of those transfers", len(recipients)),
                 ("Credential status changes", len(a.of_kind("credential.status"))),
                 ("Key changes", len(a.of_kind("key.added")) + len(a.of_kind("key.retired")))]
        body = "".join(f"<tr><th>{h}</th><td>{self.e(v)}</td></tr>" for h, v in facts)
        named = ("" if self.names else "<p class=\"note\">Organisations and datasets are shown by their identifiers, "
                 "as the log holds them (it holds no names). To see names, give <code>cead audit --names FILE</code> "
                 "a file of the names you know them by.</p>")
        return f'<h2>Summary</h2><table class="facts">{body}</table>{named}'

    def approvals(self) -> str:
        a, e = self.audit, self.e
        parts = ["<h2>Approvals and the transfers made under each</h2>"
                 "<p>Every decision the organisation's gateway logged, grouped by the data-sharing approval it was "
                 "made under. Each reason for a refusal is given in words with Cead's code beside it (the codes are "
                 "explained in docs/error-codes.md); the CSV keeps the codes alone.</p>"]
        issued = {x["meta"].get("credentialId"): x for x in a.approvals()}
        groups = a.transfers_by_approval()
        if not groups:
            parts.append("<p>No approvals issued and no decisions logged.</p>")
        for approval, transfers in groups.items():
            allowed = [t for t in transfers if t["meta"].get("decision") == "allow"]
            rows = sum(t["meta"]["rows"] for t in allowed if isinstance(t["meta"].get("rows"), int))
            total = (f"<p><b>{len(transfers)} decision{'s' if len(transfers) != 1 else ''}: {len(allowed)} allowed "
                     f"({rows} rows disclosed), {len(transfers) - len(allowed)} refused.</b></p>")
            if approval == NO_PRESENTATION:
                parts.append(self.without_presentation(transfers))
                continue
            if approval == NO_APPROVAL:
                parts.append("<h3>Refused before an approval was found</h3><p>A presentation was sent, but no "
                             "approval in it could be read or relied on: these requests were refused and nothing "
                             "moved.</p>"
                             + total)
                parts.append(transfers_table(transfers, self.name))
                continue
            x = issued.get(approval)
            parts.append(f"<h3>Approval <code>{e(approval)}</code></h3>")
            if x:
                m = x["meta"]
                valid = " to ".join(moment_words(v) for v in (m.get("validFrom"), m.get("validUntil")) if v)
                parts.append(f"<p>Issued by this organisation on {e(moment_words(x.get('at'), seconds=True))} "
                             f"(log entry {x['index']})" + (f"; valid {e(valid)}" if valid else "") + ".</p>")
            else:
                parts.append("<p>Not issued by this organisation's own node: by a delegate (see the delegations it "
                             "issued, below) or another controller. Its issuance is in its issuer's log.</p>")
            what = sorted({(t["meta"].get("dataset") or "", t["meta"].get("purpose") or "") for t in transfers})
            if what:
                parts.append("<p>Used for: " + "; ".join(
                    f"dataset {self.inline(d) if d else '(not stated)'} for the purpose "
                    f"{e(purpose_words(p)) or '(not stated)'}" for d, p in what) + ".</p>")
            if not transfers:
                parts.append("<p>No transfers under this approval.</p>")
                continue
            parts.append(total + transfers_table(transfers, self.name))
        return "".join(parts)

    def without_presentation(self, bare: list[dict]) -> str:
        """Requests that carried no presentation at all, as one group: how many, when, which log entries. Each is a
        logged decision (counted in the totals; a row of the CSV), none an attempted disclosure by anyone identified."""
        from verifier.decision.reasons import reasons_words
        e = self.e
        n = len(bare)
        times = sorted(moment for moment in (r["meta"].get("decidedAt") or r.get("at") for r in bare) if moment)
        when = ""
        if times:
            first, last = (moment_words(t, seconds=True) for t in (times[0], times[-1]))
            when = f"on {e(first)}" if first == last else f"from {e(first)} to {e(last)}"
        codes = sorted({c for r in bare for c in r["meta"].get("reasons") or []})
        return (f"<h3>Requests without any presentation (probes, health checks, misconfigured clients)</h3>"
                f"<p><b>{n} request{'s' if n != 1 else ''}, {'all ' if n != 1 else ''}refused: nothing moved and "
                f"nobody was identified.</b></p>"
                "<p>These requests reached the gateway carrying no presentation at all: no credential was sent, so "
                "no requester was identified and there was no approval to check. A load balancer's or a monitoring "
                "service's health checks, probes of the address and clients not set up to present their "
                "credentials send such requests. The gateway refused each and logged the decision, so each is "
                "counted in the totals above and is a row of the CSV; none disclosed anything.</p>"
                + (f"<p>Reason: {e(reasons_words(codes))}.</p>" if codes else "")
                + f"<p>Refused {when}; log entr{'ies' if n != 1 else 'y'} "
                f"{e(index_ranges(r['index'] for r in bare))}.</p>")

    def other_credentials(self) -> str:
        a, e = self.audit, self.e
        approvals = {x["index"] for x in a.approvals()}
        others = [x for x in a.of_kind("credential.issued") if x["index"] not in approvals]
        parts = ["<h2>Other credentials this organisation issued</h2><p>Delegations of approval authority (to the "
                 "people and posts who approve on its behalf) and certifications, from its log.</p>"]
        if not others:
            return "".join(parts) + "<p>None in this log.</p>"
        rows = []
        for x in others:
            m = x["meta"]
            kinds = ", ".join(kind_name(t) for t in m.get("types") or []) or "credential"
            valid = " to ".join(moment_words(v) for v in (m.get("validFrom"), m.get("validUntil")) if v)
            rows.append([e(moment_words(x.get("at"), seconds=True)), e(kinds),
                         f"<code>{e(m.get('credentialId'))}</code>", e(valid) or "not stated", str(x["index"])])
        return "".join(parts) + self.table(["issued", "kind", "credential id", "valid", "log entry"], rows)

    def changes(self) -> str:
        a, e = self.audit, self.e
        rows = []
        for x in a.entries:
            if x["kind"] in ("credential.status", "key.added", "key.retired"):
                subject = x["meta"].get("credentialId") or x["meta"].get("verificationMethod")
                what = EVENT_WORDS[x["kind"]] + (f": {x['meta'].get('action')}" if x["meta"].get("action") else "")
                rows.append([e(moment_words(x.get("at"), seconds=True)), e(what), f"<code>{e(subject)}</code>",
                             str(x["index"])])
        head = ("<h2>Status and key changes</h2><p>Suspensions, reinstatements and revocations of credentials this "
                "organisation issued, and every key added to or retired from its DID document (a key change "
                "without an entry here would be a quiet re-key).</p>")
        return head + (self.table(["when", "what", "credential or key", "log entry"], rows) if rows
                       else "<p>None in this log.</p>")

    def other_entries(self) -> str:
        known = {"credential.issued", "credential.status", "key.added", "key.retired", "receipt"}
        rest = [x for x in self.audit.entries if x["kind"] not in known]
        if not rest:
            return ""
        e = self.e
        rows = [[e(moment_words(x.get("at"), seconds=True)), e(KIND_WORDS.get(x["kind"], x["kind"])),
                 "<code>" + e(json.dumps(x["meta"], sort_keys=True)[:300]) + "</code>", str(x["index"])] for x in rest]
        return ("<h2>Other entries</h2><p>Entries of other kinds (such as privacy-budget releases), with what they "
                "record.</p>" + self.table(["when", "kind", "recorded", "log entry"], rows))

    def s62(self) -> str:
        e = self.e
        allowed = [_row(r) for r in self.audit.receipts() if r["meta"].get("decision") == "allow"]
        rows = [[e(moment_words(row["decidedAt"], seconds=True)), self.name(row["recipient"]) or "not known",
                 f"approval <code>{e(row['approval'])}</code>; purpose: "
                 f"{e(purpose_words(row['purpose'])) or 'not stated'}",
                 self.name(row["dataset"]) or "not stated",
                 e(row["rows"]) if row["rows"] is not None else "not counted",
                 self.name(row["gateway"]) or "not recorded", str(row["logIndex"])] for row in allowed]
        total_rows = sum(row["rows"] for row in allowed if isinstance(row["rows"], int))
        recipients = {row["recipient"] for row in allowed if row["recipient"]}
        heads = ["date and time", "recipient", "justification", "dataset", "rows", "disclosed by", "log entry"]
        foot = [f"Total: {len(allowed)} disclosure{'s' if len(allowed) != 1 else ''}",
                f"{len(recipients)} recipient{'s' if len(recipients) != 1 else ''}", "", "", str(total_rows), "", ""]
        return f"""<h2>DPA 2018 section 62: logs of disclosures (Part 3 controllers)</h2>
<p>Section 62 of the Data Protection Act 2018 (<a href="{S62}">{S62}</a>) applies to law enforcement processing
(Part 3). It requires the controller (or its processor) to keep logs of processing operations in automated
processing systems, disclosures (including transfers) among them (s.62(1)). The logs of disclosure must make it
possible to establish the justification for, and the date and time of, each disclosure and, so far as possible,
the identity of the person who disclosed the data and the identity of its recipients (s.62(3)); the controller must
make the logs available to the Information Commissioner on request (s.62(5)). In plain words: for every time data
left, you must be able to say when, why, who released it and to whom.</p>
<p>Below is that view of this organisation's log: each allowed transfer, with its time; its recipient; its
justification (the approval relied on and the purpose stated for the transfer, which the gateway checked lies within
the approval's purposes); and who disclosed it: the gateway that decided and signed the receipt (the log names
systems, not members of staff; the approval names who authorised the sharing). The view is shown for every
organisation; only a Part 3 controller is bound by s.62.</p>
{self.table(heads, rows, foot) if rows else '<p>No disclosures in this log.</p>'}"""

    def checkpoints(self) -> str:
        e = self.e
        rows = []
        for c in self.audit.checkpoints:
            cosigned = ", ".join(f"{self.plain_name(w)}" for w in c["witnesses"])
            when = ", ".join(moment_words(t, seconds=True) for t in c.get("witnessedAt") or [])
            bad = "".join(f'<br><span class="no">the cosignature of {e(self.plain_name(w))} does NOT verify</span>'
                          for w in c.get("badCosignatures") or [])
            rows.append([str(c["size"]), f"<code>{e(c['root'])}</code>",
                         '<span class="yes">yes</span>' if c["consistent"] else '<span class="no">NO</span>',
                         ((e(cosigned) + (f" ({e(when)})" if when else "")) if cosigned else
                          ("none of the witnesses named" if self.audit.witness_keys else "not checked (no witness "
                                                                                        "key given)")) + bad])
        return ("<h2>Checkpoints</h2><p>Each checkpoint the organisation signed: how many entries it covers, the root "
                "hash of those entries, whether the entries served produce that root, and which of the witnesses "
                "you named co-signed it.</p>"
                + self.table(["entries covered", "root hash (SHA-256)", "matches the entries", "co-signed by"], rows))

    def terms(self) -> str:
        terms = [
            ("Log (transparency log)", "The organisation's own append-only record (RFC 9162, as Certificate "
             "Transparency uses): each entry is added at the end and never changed. Entries hold fingerprints and "
             "public identifiers only, never personal data."),
            ("Log entry", "One record in the log, numbered from 0 in the order written (the CSV's logIndex)."),
            ("Checkpoint", "A short statement the organisation signs: how many entries the log has and its root "
             "hash. A later checkpoint must extend every earlier one."),
            ("Root hash", "A SHA-256 fingerprint of all the entries up to a checkpoint: change, remove or reorder "
             "any entry and it no longer matches."),
            ("Witness, co-signed", "Another organisation that checks each new checkpoint extends the last one it "
             "saw, and co-signs it. A split view (one history shown to some parties, another to others) would need "
             "the witnesses you trust to co-sign both, so their co-signatures guard against it."),
            ("DID", "A decentralised identifier: how Cead names an organisation or a person, e.g. "
             "did:web:police.scot.example. Its DID document lists the keys it signs with."),
            ("Approval", "A data-sharing approval: a signed credential by which a controller (or its delegate) "
             "allows a recipient to receive a dataset for stated purposes."),
            ("Gateway, decision, receipt", "The gateway in front of the organisation's data decides each request "
             "against the approval presented (allowed or refused) and signs a receipt of the decision, which the "
             "organisation's node logs."),
            ("Payload SHA-256", "The fingerprint of the exact bytes that moved (the first 16 of its 64 digits "
             "here; the CSV has it whole): a recipient's copy of the data can be matched to it."),
            ("Rows", "The records in the data that moved, counted by the gateway (the rows of a CSV after its "
             "header, or the items of a JSON list)."),
        ]
        return ('<h2 id="terms">What the terms mean</h2><dl class="terms">'
                + "".join(f"<div><dt>{self.e(t)}</dt><dd>{self.e(d)}</dd></div>" for t, d in terms) + "</dl>")


def to_html(audit: Audit, names: dict[str, str] | None = None) -> str:
    """The printable report: a verdict, totals, every approval with its transfers, the other credentials, status
    and key changes, the DPA 2018 s.62 view and the checkpoints, with times, decisions and events in words and
    identifiers by the names in ``names`` (the auditor's; the CSV keeps the exact values). Laid out for a screen,
    a phone (tables as cards) and A4 paper."""
    return _Report(audit, names).html()


def write_report(audit: Audit, out_dir: Path, names: dict[str, str] | None = None) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    name = audit.did.replace(":", "_").replace("%", "_")
    csv_path, html_path = out_dir / f"audit-{name}.csv", out_dir / f"audit-{name}.html"
    csv_path.write_text(to_csv(audit), encoding="utf-8")
    html_path.write_text(to_html(audit, names), encoding="utf-8")
    return csv_path, html_path
