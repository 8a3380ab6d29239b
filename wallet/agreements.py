"""The data sharing agreement as a Word document, structured on the contents the ICO's Data Sharing Code of Practice
lists for an agreement, made from a received data-sharing request (and, once approved, the approval's conditions).

``agreement_docx(node, wallet, request_id)`` returns ``(bytes, digest)``: the .docx (python-docx) and its digest in
the form an approval pins (``"sha256-" + base64url(SHA-256(bytes))``). The node keeps the exact bytes it generated
(``HOME/agreements/<request id>.docx``), so the pinned digest always matches a file someone can open; a later edit
in Word is a new agreement with a new digest, never the same one.

Sections (ICO Data Sharing Code, "Data sharing agreements"): the parties and their roles; the purpose of the
sharing; other organisations involved; the data to be shared (and data minimisation); the lawful basis (and the
special-category or criminal-offence conditions); individuals' rights and transparency; information governance
(security, retention and deletion, breaches, onward sharing); review and termination; sign-off. What the request
does not say is written as "To be agreed" so nobody signs a gap unknowingly.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path

from verifier.results import CeadError

from .approval_view import cadence_words, day_words, duration_words

TBA = "To be agreed."
ONWARD = {"Prohibited": "not allowed", "WithApproval": "only with a further approval", "Permitted": "allowed"}



def _retention_words(retention) -> str:
    """An approval's ``retention`` in plain words (the ISO 8601 periods kept in brackets)."""
    if not isinstance(retention, dict) or not retention.get("receivedData"):
        return json.dumps(retention)
    text = f"the recipient keeps the data received for at most {duration_words(retention['receivedData'])}"
    if retention.get("derivedData"):
        text += f", and data derived from them for at most {duration_words(retention['derivedData'])}"
    return text[0].upper() + text[1:] + ", then deletes them."

def _digest(data: bytes) -> str:
    return "sha256-" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")


def agreement_docx(node, wallet, request_id: str, *, approval_subject: dict | None = None) -> tuple[bytes, str]:
    """Build the agreement for a received request; returns ``(docx bytes, digest)`` and keeps the file."""
    from docx import Document
    from docx.shared import Pt

    from . import sharing
    row = sharing.get_request(wallet, request_id)
    req = row.request
    approved = approval_subject or {}
    basis = req.get("lawfulBasis") if isinstance(req.get("lawfulBasis"), dict) else {}
    certs = row.certification_list
    from .names import Directory
    names = Directory.for_node(node, wallet, certs)

    def term(value) -> str:
        """A purpose, basis or scheme by its name (its compact identifier when Cead has none)."""
        return str(names.name(value)) if isinstance(value, str) else str(value)

    def party(value) -> str:
        """An organisation or dataset by its name with its identifier in brackets, or the identifier alone."""
        known = names.known(value) if isinstance(value, str) else None
        return f"{known} ({value})" if known else str(value)

    doc = Document()
    doc.styles["Normal"].font.name = "Arial"
    doc.styles["Normal"].font.size = Pt(11)
    doc.core_properties.title = "Data sharing agreement"
    doc.core_properties.author = node.name
    doc.add_heading("Data sharing agreement", 0)
    doc.add_paragraph(f"Between {node.name} and the requesting organisation, for the request received on "
                      f"{day_words(row.received_at)} (reference {row.id}).")

    def section(title: str, lines: list[str]) -> None:
        doc.add_heading(title, 1)
        for line in lines or [TBA]:
            doc.add_paragraph(line, style="List Bullet")

    section("1. The parties and their roles", [
        f"Disclosing organisation (controller of the data): {node.name} ({node.did}).",
        f"Receiving organisation: {party(row.requester)}"
        + (f", certified {', '.join(term(c.get('scheme')) for c in certs)}" if certs else "") + ".",
        "Each organisation is a separate controller for its own processing unless stated otherwise below."])
    section("2. Purpose of the sharing", [
        *(f"Purpose: {term(p)}" for p in req.get("purposes") or []),
        f"Why the data is needed (as the requester put it): {req.get('justification') or TBA}"])
    others = approved.get("processors") or []
    section("3. Other organisations involved", [f"Processor: {p}" for p in others] or
            ["None: no processor or other organisation receives the data."])
    section("4. The data to be shared", [
        *(f"Dataset: {party(d)}" for d in req.get("datasets") or []),
        "Data items: " + (", ".join(req.get("dataItems") or []) or TBA),
        f"How often: {cadence_words(req['cadence']) if req.get('cadence') else TBA}",
        "Only these items are shared; anything more needs a new or amended agreement (data minimisation)."])
    bases = approved.get("lawfulBases") or [basis]
    lines = []
    for entry in bases if isinstance(bases, list) else []:
        if isinstance(entry, dict):
            regime = {"UKGDPR": "UK GDPR", "DPA2018Part3": "DPA 2018 Part 3 (law enforcement)"}.get(
                entry.get("regime"), entry.get("regime") or "UK GDPR")
            who = party(entry["party"]) if entry.get("party") else "A party"
            cited = "; ".join(f"{term(b)} ({b})" for b in entry.get("legalBases") or [])
            lines.append(f"{who} under {regime}: {cited or TBA}")
    section("5. Lawful basis", lines + ["Special category or criminal offence data needs its condition named here "
                                        "(UK GDPR Article 9 or 10, DPA 2018 Schedule 1)."])
    section("6. Individuals' rights and transparency", [
        "Each organisation answers requests from individuals about the data it holds and tells the other when a "
        "request concerns shared data.",
        "Privacy notices of both organisations describe this sharing."])
    retention = approved.get("retention")
    section("7. Information governance", [
        f"Retention and deletion: {_retention_words(retention) if retention else TBA}",
        f"Onward sharing: {ONWARD.get(approved.get('onwardSharing'), approved.get('onwardSharing')) or TBA}",
        "Security: the data moves only through the provider's gateway, which checks this agreement's approval on "
        "every transfer; the receiving organisation keeps it under its certified controls.",
        "Breaches: each organisation tells the other within 24 hours of becoming aware of a breach of shared data."])
    section("8. Review and termination", [
        f"This agreement is reviewed at least yearly{', and ends on ' + approved['validUntil'] if approved.get('validUntil') else ''}.",
        "Revoking the approval ends the sharing at once: the gateway refuses every later transfer."])
    doc.add_heading("9. Sign-off", 1)
    table = doc.add_table(rows=3, cols=3)
    for i, head in enumerate(("Organisation", "Name and role", "Date")):
        table.cell(0, i).text = head
    table.cell(1, 0).text, table.cell(2, 0).text = node.name, names.known(row.requester) or row.requester

    buf = io.BytesIO()
    doc.save(buf)
    data = buf.getvalue()
    folder = Path(node.home) / "agreements"
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / f"{row.id}.docx"
    tmp = path.with_suffix(".docx.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)                # atomic: the file with this digest is whole or absent
    return data, _digest(data)


def kept(node, request_id: str) -> tuple[bytes, str]:
    """The agreement generated for a request, as kept, with its digest (``agreement.not_found`` if none)."""
    path = Path(node.home) / "agreements" / f"{request_id}.docx"
    try:
        data = path.read_bytes()
    except OSError:
        raise CeadError("agreement.not_found", f"No agreement was generated for request {request_id}; make one with "
                        "`cead request agreement`.") from None
    return data, _digest(data)
