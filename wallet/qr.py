"""QR codes for people with mobile wallets, and printable approval/certification summaries.

- :func:`presentation_request_uri`: an OpenID for Verifiable Presentations request link,
  ``openid4vp://?client_id=...&request_uri=...`` (the wallet fetches the signed request object from request_uri).
- :func:`credential_offer_uri`: an OpenID for Verifiable Credential Issuance offer,
  ``openid-credential-offer://?credential_offer=<JSON>`` (or ``credential_offer_uri=`` by reference).
- :func:`qr_png` / :func:`qr_svg`: any text as a QR code.
- :func:`summary_png` / :func:`summary_svg`: a printable page summarising a credential, whose QR code leads to a
  page that verifies it.
"""
from __future__ import annotations

import io
import ipaddress
import json
import re
import textwrap
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import urlencode, urlsplit

import qrcode
import qrcode.image.svg
from PIL import Image, ImageDraw, ImageFont

from verifier.results import CeadError

from .approval_view import KIND_NAMES, _day, _words, conditions, types_of
from .names import Directory

SVG_NS = "http://www.w3.org/2000/svg"
# what a printed summary shows at most (the credential itself is a download away): so a credential naming
# thousands of datasets still gives a page of bounded size, quickly
SUMMARY_LINE = 480        # characters of one line (six printed lines)
SUMMARY_LINES = 40        # lines (then "... and N more fields")


def _loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(value: str, what: str, *, https: bool = False) -> None:
    """An absolute http(s) URL; with ``https``, an https URL (plain http only for a loopback host: a test on one
    machine), since a wallet fetches it, or trusts what it names, only over TLS."""
    try:
        parts = urlsplit(value) if isinstance(value, str) else None
        host = parts.hostname if parts else None
    except ValueError:
        parts = host = None
    if not parts or parts.scheme not in ("https", "http") or not parts.netloc:
        raise CeadError("qr.url_invalid", f"{what} must be an http{'s' if https else '(s)'} URL, not {value!r}.")
    if https and parts.scheme == "http" and not _loopback(host):
        raise CeadError("qr.url_invalid", f"{what} must be an https URL, not {value!r} (plain http only for "
                        "localhost, when testing).")


def presentation_request_uri(client_id: str, request_uri: str, *, scheme: str = "openid4vp") -> str:
    """An OpenID4VP authorization request by reference."""
    if not isinstance(client_id, str) or not client_id:
        raise CeadError("qr.client_id_missing", "A presentation request needs a client_id.")
    _check_url(request_uri, "request_uri", https=True)
    return f"{scheme}://?" + urlencode({"client_id": client_id, "request_uri": request_uri})


def credential_offer_uri(credential_issuer: str, configuration_ids: list[str], *,
                         pre_authorized_code: str | None = None, offer_uri: str | None = None) -> str:
    """An OpenID4VCI credential offer, by value (or by reference when ``offer_uri`` is given)."""
    if offer_uri is not None:
        _check_url(offer_uri, "credential_offer_uri", https=True)
        return "openid-credential-offer://?" + urlencode({"credential_offer_uri": offer_uri})
    _check_url(credential_issuer, "credential_issuer", https=True)
    if not configuration_ids or not all(isinstance(c, str) and c for c in configuration_ids):
        raise CeadError("qr.offer_invalid", "A credential offer names at least one credential configuration id.")
    offer: dict[str, Any] = {"credential_issuer": credential_issuer,
                             "credential_configuration_ids": list(configuration_ids)}
    if pre_authorized_code:
        offer["grants"] = {"urn:ietf:params:oauth:grant-type:pre-authorized_code":
                           {"pre-authorized_code": pre_authorized_code}}
    return "openid-credential-offer://?" + urlencode({"credential_offer": json.dumps(offer, separators=(",", ":"))})


def _qr(data: str, **kw) -> qrcode.QRCode:
    if not isinstance(data, str) or not data:
        raise CeadError("qr.data_missing", "Nothing to encode in the QR code.")
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4, **kw)
    code.add_data(data)
    try:
        code.make(fit=True)
    except (ValueError, qrcode.exceptions.DataOverflowError):
        raise CeadError("qr.too_long", f"{len(data)} characters do not fit in a QR code; link by reference.") from None
    return code


def qr_png(data: str, box_size: int = 8) -> bytes:
    buf = io.BytesIO()
    _qr(data, box_size=box_size).make_image().save(buf, format="PNG")
    return buf.getvalue()


def qr_svg(data: str, box_size: int = 10) -> str:
    image = _qr(data, box_size=box_size).make_image(image_factory=qrcode.image.svg.SvgPathImage)
    return image.to_string(encoding="unicode")


# ---- printable summaries ----------------------------------------------------------------------------------------
_MORE = re.compile(r" \.\.\. and \d+ more\.?$")


def _line(text: str, count: int | None = None) -> str:
    """One summary line, at most SUMMARY_LINE characters: a longer one is cut at a word and says so, and how many
    values the field holds (``count``) when it is a list (so the reader still learns how many there are)."""
    if len(text) <= SUMMARY_LINE:
        return text
    tail = " ... (shortened" + (f": {count:,} in all" if count and count > 1 else "") + \
        "; the verification page shows it all)"
    head = _MORE.sub("", text)[:SUMMARY_LINE - len(tail)]
    head = head.rsplit(" ", 1)[0] if " " in head[len(head) // 2:] else head
    return head.rstrip(",;:. ") + tail


def summary_lines(document: dict, names=None) -> list[str]:
    """The credential in plain words, as the printable summary page says it (``wallet.approval_view``): what it is,
    who issued it, each condition as "Heading: sentences", its validity in dates, and its id. ``names`` (a
    ``wallet.names.Directory``) turns DIDs and IRIs into names; without one, Cead's vocabulary names what it knows.
    Bounded: at most SUMMARY_LINE characters per line and SUMMARY_LINES lines, each cut said so."""
    names = names if names is not None else Directory()
    vc = document.get("vc") if isinstance(document.get("vc"), dict) else document
    types = [t for t in types_of(vc) if t != "VerifiableCredential"] or ["Credential"]
    lines = [KIND_NAMES.get(types[0]) or _words(types[0])]
    issuer = vc.get("issuer")
    issuer = issuer.get("id") if isinstance(issuer, dict) else issuer
    if isinstance(issuer, str):
        named = names.name(issuer)
        lines.append(f"Issued by: {named}" + (f" ({issuer})" if str(named) != issuer else ""))
    fields = []
    for section in conditions(vc, names):
        # the page puts identifiers behind a disclosure ("under Identifiers"); on paper they follow the sentences
        text = " ".join(section.lines).replace(" (its identifier is under Identifiers)", "")
        if section.ids and "under Identifiers" in " ".join(section.lines):
            text += f" Identifiers: {', '.join(section.ids)}."
        if text:
            fields.append((f"{section.title}: {text}", len(section.ids)))
    validity = [f"{label}: {_day(vc[key])}" for label, key in (
        ("Valid from", "validFrom"), ("Valid until", "validUntil"), ("Issued", "issuanceDate"),
        ("Expires", "expirationDate")) if isinstance(vc.get(key), str)]
    if isinstance(vc.get("id"), str):
        validity.append(f"Credential: {vc['id']}")
    room = SUMMARY_LINES - len(lines) - len(validity)      # the validity lines are always shown
    if len(fields) > room:
        fields = fields[:room - 1] + [(f"... and {len(fields) - room + 1} more conditions (on the verification "
                                       "page)", None)]
    return [_line(line) for line in lines] + [_line(*field) for field in fields] + [_line(line) for line in validity]


def _wrap(line: str, width: int = 78) -> list[str]:
    """A summary line broken at words for the page (continuations indented); a word longer than the width (a DID,
    a URL) is broken where it must be."""
    return textwrap.wrap(line, width, subsequent_indent="    ", break_on_hyphens=False) or [""]


def summary_png(document: dict, verify_url: str, names=None) -> bytes:
    """A printable PNG: the credential's summary on the left, a QR code to ``verify_url`` on the right."""
    _check_url(verify_url, "verify_url")
    code = _qr(verify_url, box_size=6).make_image().get_image().convert("RGB")
    lines = [w for line in summary_lines(document, names) + ["", "Scan to verify:", verify_url] for w in _wrap(line)]
    font = ImageFont.load_default(size=16)
    title = ImageFont.load_default(size=24)
    height = max(code.height, 40 + 22 * len(lines)) + 40
    page = Image.new("RGB", (760 + code.width, height), "white")
    draw = ImageDraw.Draw(page)
    y = 20
    for i, line in enumerate(lines):
        draw.text((20, y), line, fill="black", font=title if i == 0 else font)
        y += 34 if i == 0 else 22
    page.paste(code, (740, 20))
    buf = io.BytesIO()
    page.save(buf, format="PNG")
    return buf.getvalue()


def summary_svg(document: dict, verify_url: str, names=None) -> str:
    """A printable SVG: the credential's summary and a QR code (a link too) to ``verify_url``."""
    _check_url(verify_url, "verify_url")
    ET.register_namespace("", SVG_NS)
    lines = [w for line in summary_lines(document, names) + ["", "Scan to verify:", verify_url] for w in _wrap(line)]
    qr_size = 240
    height = max(qr_size + 40, 60 + 22 * len(lines))
    root = ET.Element(f"{{{SVG_NS}}}svg", {"width": str(760 + qr_size), "height": str(height),
                                           "viewBox": f"0 0 {760 + qr_size} {height}", "version": "1.1"})
    ET.SubElement(root, f"{{{SVG_NS}}}rect", {"width": "100%", "height": "100%", "fill": "white"})
    y = 40
    for i, line in enumerate(lines):
        text = ET.SubElement(root, f"{{{SVG_NS}}}text", {"x": "20", "y": str(y), "font-family": "sans-serif",
                                                        "font-size": "24" if i == 0 else "16"})
        text.text = line
        y += 34 if i == 0 else 22
    qr_root = ET.fromstring(qr_svg(verify_url))
    qr_root.set("x", "740")
    qr_root.set("y", "20")
    qr_root.set("width", str(qr_size))
    qr_root.set("height", str(qr_size))
    link = ET.SubElement(root, f"{{{SVG_NS}}}a", {"href": verify_url})
    link.append(qr_root)
    return ET.tostring(root, encoding="unicode")
