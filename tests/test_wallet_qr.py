"""QR codes: links decode back to the same URI; printable summaries lead to verification."""
from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlsplit

import pytest
import zxingcpp
from PIL import Image

from verifier.results import CeadError
from wallet import qr

from test_wallet_support import approval_subject, identity

SVG = "{http://www.w3.org/2000/svg}"


def _decode_png(data: bytes) -> list[str]:
    return [b.text for b in zxingcpp.read_barcodes(Image.open(io.BytesIO(data)))]


def test_presentation_request_qr_decodes_to_the_same_uri():
    uri = qr.presentation_request_uri("did:web:gateway.example.gov.scot",
                                      "https://gateway.example.gov.scot/requests/42?x=1&y=2")
    assert uri.startswith("openid4vp://?")
    query = parse_qs(urlsplit(uri).query)
    assert query == {"client_id": ["did:web:gateway.example.gov.scot"],
                     "request_uri": ["https://gateway.example.gov.scot/requests/42?x=1&y=2"]}
    assert _decode_png(qr.qr_png(uri)) == [uri]


def test_credential_offer_qr_decodes_to_the_same_uri():
    uri = qr.credential_offer_uri("https://issuer.example.gov.scot", ["OrganisationCertificationCredential"],
                                  pre_authorized_code="SplxlOBeZQQYbYS6WxSbIA")
    offer = json.loads(parse_qs(urlsplit(uri).query)["credential_offer"][0])
    assert offer["credential_issuer"] == "https://issuer.example.gov.scot"
    assert offer["grants"]["urn:ietf:params:oauth:grant-type:pre-authorized_code"]["pre-authorized_code"]
    assert _decode_png(qr.qr_png(uri)) == [uri]
    by_ref = qr.credential_offer_uri("", [], offer_uri="https://issuer.example/offers/1")
    assert by_ref == "openid-credential-offer://?credential_offer_uri=https%3A%2F%2Fissuer.example%2Foffers%2F1"


def test_summary_png_and_svg_lead_to_verification():
    org, recipient = identity(), identity()
    doc = {"type": ["VerifiableCredential", "DataSharingApprovalCredential"], "issuer": org.did,
           "validUntil": "2026-12-31T00:00:00Z", "id": "urn:uuid:abc",
           "credentialSubject": approval_subject(org.did, recipient.did)}
    verify_url = "https://node.example.gov.scot/verify?credential=urn%3Auuid%3Aabc"
    png = qr.summary_png(doc, verify_url)
    assert Image.open(io.BytesIO(png)).format == "PNG"
    assert _decode_png(png) == [verify_url]
    svg = ET.fromstring(qr.summary_svg(doc, verify_url))
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    assert texts[0] == "Data-sharing approval"
    assert f"Issued by: {org.did}" in texts and verify_url in "".join(t or "" for t in texts)
    # the conditions in plain words, as on the summary page: no camelCase keys, dates as dates
    shown = " ".join(t or "" for t in texts)
    assert "Valid until: 31 December 2026" in shown and "Purpose: " in shown and "purposes:" not in shown
    links = list(svg.iter(f"{SVG}a"))
    assert [a.get("href") for a in links] == [verify_url]
    assert list(links[0].iter(f"{SVG}path")), "the link holds the QR code"


def test_svg_qr_is_a_valid_svg():
    root = ET.fromstring(qr.qr_svg("https://x.example/"))
    assert root.tag == f"{SVG}svg" and list(root.iter(f"{SVG}path"))


@pytest.mark.parametrize("call, code", [
    (lambda: qr.presentation_request_uri("", "https://x.example/r"), "qr.client_id_missing"),
    (lambda: qr.presentation_request_uri("c", "javascript:alert(1)"), "qr.url_invalid"),
    (lambda: qr.presentation_request_uri("c", "http://x.example/r"), "qr.url_invalid"),       # https only
    (lambda: qr.presentation_request_uri("c", "http://[::1"), "qr.url_invalid"),
    (lambda: qr.credential_offer_uri("http://x.example", ["X"]), "qr.url_invalid"),
    (lambda: qr.credential_offer_uri("", [], offer_uri="http://x.example/o/1"), "qr.url_invalid"),
    (lambda: qr.credential_offer_uri("https://x.example", []), "qr.offer_invalid"),
    (lambda: qr.summary_png({"type": "X"}, "ftp://x"), "qr.url_invalid"),
    (lambda: qr.qr_png(""), "qr.data_missing"),
    (lambda: qr.qr_png("x" * 5000), "qr.too_long"),
])
def test_bad_input_is_named(call, code):
    with pytest.raises(CeadError) as err:
        call()
    assert err.value.code == code


def test_a_summary_of_a_huge_credential_is_bounded():
    """15,000 datasets made a page 25 s and 1 GB to draw; a summary now shows the first few values of a field and
    how many more there are, so its size does not grow with the credential."""
    from wallet import qr
    doc = {"type": ["VerifiableCredential", "DataSharingApprovalCredential"], "issuer": "did:web:x.example",
           "validUntil": "2030-01-01T00:00:00Z",
           "credentialSubject": {"datasets": [f"https://d.example/{i:05d}" for i in range(15000)],
                                 **{f"field{i}": "v" * 5000 for i in range(100)}}}
    lines = qr.summary_lines(doc)
    assert len(lines) <= qr.SUMMARY_LINES and all(len(line) <= qr.SUMMARY_LINE for line in lines)
    datasets = next(line for line in lines if line.startswith("Datasets: "))
    # the first values, then how many more (kept when the line is shortened), and that it was shortened
    assert "https://d.example/00000" in datasets and datasets.endswith("... (shortened: 15,000 in all; the verification page shows it all)")
    assert lines[-1] == "Valid until: 1 January 2030" and any("more conditions" in line for line in lines)
    small = qr.summary_png({**doc, "credentialSubject": {"datasets": ["https://d.example/1"]}}, "https://n.example/v")
    huge = qr.summary_png(doc, "https://n.example/v")
    from PIL import Image
    import io
    assert Image.open(io.BytesIO(huge)).height <= 60 + 22 * qr.SUMMARY_LINES * (qr.SUMMARY_LINE // 70 + 1) + 40
    assert len(qr.summary_svg(doc, "https://n.example/v")) < 200_000 and small
