"""Precedents across organisations over HTTPS on 127.0.0.1: the IAO's node refuses one request and approves another;
its signed feed at /precedents carries both as summaries (no justification, no person); the controller's node
follows the feed, verifies it against the IAO node's DID document and finds the refusal nearest to a similar new
request; the IAO's own node puts its earlier refusal of the same ask first; a tampered feed is refused."""
from __future__ import annotations

import requests as http
from pathlib import Path

from test_sharing import DATASET, PURPOSE, make_request, send, the_rest, world  # noqa: F401 (fixture)
from verifier.did import Resolver
from verifier.http import Fetcher
from verifier.results import CeadError
from wallet import precedents
from wallet import sharing

REFUSAL = "Pupils' names are not needed: use the pseudonymised pupil identifier instead."


def test_feed_follow_and_nearest(world):  # noqa: F811
    w = world
    refused = send(w, make_request(w, dataItems=["pupil_id", "pupil_name", "entitlement"]))
    sharing.refuse(w["iao"]["wallet"], refused["id"], REFUSAL, by="iao@fife.example")
    approved = send(w)
    sharing.approve(w["iao"]["node"], w["iao"]["wallet"], approved["id"], the_rest(w),
                    delegation=w["delegation"].id)

    # the IAO node's feed: signed, summaries only
    token = http.get(w["iao"]["url"] + "/precedents", verify=w["bundle"], timeout=10).text
    resolver = Resolver(Fetcher(allow_private=True, ca_bundle=w["bundle"]))
    did, items = precedents.read_feed(token, resolver)
    assert did == w["iao"]["node"].did
    mine = {i["outcome"]: i for i in items}
    assert mine["refused"]["reasons"] == REFUSAL and "pupil_name" in mine["refused"]["dataItems"]
    assert mine["approved"]["datasets"] == [DATASET] and mine["approved"]["legalBases"]
    assert mine["approved"]["conditions"], mine["approved"]          # read from the approval itself
    assert all("justification" not in str(i).lower() and "iao@fife.example" not in str(i) for i in items)

    # the controller's node follows it and finds the refusal nearest to a request that names pupils again
    controller, cwallet = w["controller"]["node"], w["controller"]["wallet"]
    controller.config["precedents"] = {"follow": [w["iao"]["url"] + "/precedents"]}
    try:
        assert precedents.refresh(controller, cwallet) == {w["iao"]["url"] + "/precedents": len(items)}
        ask = make_request(w, dataItems=["pupil_name", "entitlement"])
        near = precedents.nearest(cwallet, ask)
        assert near and near[0]["outcome"] == "refused" and not near[0]["mine"]
        assert any(why.startswith("same datasets") for why in near[0]["why"])
    finally:
        del controller.config["precedents"]

    # the IAO's own node: the same requester asking the same again puts the earlier decision first
    again = precedents.nearest(w["iao"]["wallet"], make_request(w, dataItems=["pupil_id", "pupil_name",
                                                                              "entitlement"]),
                               requester=w["requester"]["node"].did)
    assert again[0]["mine"] and again[0]["why"][0].startswith("the same requester")


def test_a_tampered_or_foreign_feed_is_refused(world):  # noqa: F811
    w = world
    token = precedents.feed(w["iao"]["node"], w["iao"]["wallet"])
    head, payload, sig = token.split(".")
    resolver = Resolver(Fetcher(allow_private=True, ca_bundle=w["bundle"]))
    for bad in (f"{head}.{payload}.{sig[:-4]}AAAA" if not sig.endswith("AAAA") else f"{head}.{payload}.{sig[:-4]}BBBB",
                "not a feed"):
        try:
            precedents.read_feed(bad, resolver)
        except CeadError as exc:
            assert exc.code == "precedents.feed_invalid"
        else:
            raise AssertionError("a tampered feed was accepted")
    node = w["controller"]["node"]
    node.config["precedents"] = {"follow": ["http://plain.example/feed"]}
    try:
        try:
            precedents.follows(node)
        except CeadError as exc:
            assert exc.code == "node.config_invalid"
        else:
            raise AssertionError("a plain-http feed URL was accepted")
    finally:
        del node.config["precedents"]


def test_agreement_as_word_document(world, tmp_path):  # noqa: F811
    """The data sharing agreement for a received request: a .docx with the ICO code's sections and what the request
    says (purposes, data items, bases), kept byte for byte so its digest is the one an approval pins."""
    import docx
    from wallet import agreements
    w = world
    got = send(w, make_request(w, justification="Auto-enrolment for free school meals in Fife."))
    data, digest = agreements.agreement_docx(w["iao"]["node"], w["iao"]["wallet"], got["id"])
    assert data[:2] == b"PK" and digest.startswith("sha256-") and len(digest) == 50
    assert agreements.kept(w["iao"]["node"], got["id"]) == (data, digest)
    import io
    text = "\n".join(p.text for p in docx.Document(io.BytesIO(data)).paragraphs)
    for heading in ("1. The parties and their roles", "2. Purpose of the sharing", "4. The data to be shared",
                    "5. Lawful basis", "7. Information governance", "8. Review and termination"):
        assert heading in text
    assert "Purpose: Free school meal auto-enrolment" in text and "pupil_id, entitlement" in text   # by name
    assert "Auto-enrolment for free school meals in Fife." in text
    assert "legislation.gov.uk/eur/2016/679/article/6/1/e" in text
    assert "To be agreed." in text                   # what the request leaves open is said, not invented
    try:
        agreements.kept(w["iao"]["node"], "no-such-request")
    except CeadError as exc:
        assert exc.code == "agreement.not_found"
    else:
        raise AssertionError("an agreement that was never made was found")


def test_board_pack_html_and_pdf(world, tmp_path):  # noqa: F811
    """The IG board pack for a request: what is asked, the ICO checklist, the earlier refusal nearest to it; the PDF
    has the same text (checked by extracting it with pdftotext where poppler is installed)."""
    import shutil
    import subprocess
    from wallet import boardpack
    w = world
    earlier = send(w, make_request(w, dataItems=["pupil_id", "pupil_name", "entitlement"]))
    sharing.refuse(w["iao"]["wallet"], earlier["id"], REFUSAL, by="iao@fife.example")
    got = send(w, make_request(w, dataItems=["pupil_id", "pupil_name", "entitlement"]))
    page = boardpack.board_pack_html(w["iao"]["node"], w["iao"]["wallet"], got["id"])
    assert "Data-sharing request for the information governance board" in page
    assert "pupil_name" in page and "cead:FreeSchoolMealAutoEnrolment" in page
    assert page.count("Answered") >= 5
    assert REFUSAL.replace("'", "&#x27;") in page               # the earlier refusal of a near request
    assert "<script" not in page and "http://" not in page.split("<body>")[0]
    pdf = boardpack.board_pack_pdf(w["iao"]["node"], w["iao"]["wallet"], got["id"])
    assert pdf.startswith(b"%PDF")
    (tmp_path / "pack.pdf").write_bytes(pdf)
    import os
    if os.environ.get("CEAD_ARTEFACTS"):       # for people to look at
        (Path(os.environ["CEAD_ARTEFACTS"]) / "board-pack.pdf").write_bytes(pdf)
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", str(tmp_path / "pack.pdf"), "-"], capture_output=True, text=True).stdout
        assert "What they ask for" in text and "pupil_name" in text
