"""The printable report of `cead audit`, read as an auditor (the ICO, an IG board) reads it: a verdict that says what
was checked and what was not (witnesses), totals that are the sums of what is listed, every log entry accounted for
(delegations too, not only approvals), names where the auditor knows them (`--names`), the DPA 2018 s.62 view with
what s.62(3) asks (justification, date and time, who disclosed, recipients) and its total, and a page that reads on
a phone and on A4 paper (rendered in Chromium). Real parts: a node serving its log over HTTPS on 127.0.0.1, receipts
signed and logged as a gateway's are, a witness node co-signing."""
from __future__ import annotations

import csv
import io
import json
import os
import re
import uuid
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from cead.cli import main
from issuer.app import create_app
from issuer.evidence import receipts as store
from issuer.evidence import record, witness
from issuer.node import Node
from verifier.receipts import payload_evidence, seal
from verifier.tlog import note as notes
from verifier.tlog.checkpoint import Checkpoint

from helpers_https import https_server
from issuer_fixtures import PASS, ready_node

RECIPIENT, OTHER_RECIPIENT = "did:web:justice.gov.scot.example", "did:web:childpoverty.gov.scot.example"
DATASET = "https://data.police.scot.example/dataset/recorded-crime-monthly"
PURPOSE = "https://w3id.org/cead/vocab#JusticeStatistics"
TABLE = b"area,count\nFife,12\nPerth,40\nAngus,7\n"      # 3 rows


def transfer(node, approval, *, holder=RECIPIENT, allowed=True, reason="transfer.column_not_approved"):
    decision = SimpleNamespace(
        allowed=allowed, reasons=[] if allowed else [SimpleNamespace(code=reason)],
        relied_on=[f"{approval} sha256-abc"] if approval else [], holder=holder, approval_id=approval,
        method="GET", url="https://api.police.scot.example/data", decided_at=datetime.now(timezone.utc),
        manifest={"dataset": DATASET, "purpose": PURPOSE} if approval else None,
        evidence={"binding": "urn:x", "manifestSha256": "00" * 32,
                  "payload": payload_evidence(TABLE if allowed else None, "text/csv", "pull")}, receipt=None)
    seal(store.signer_for(node), decision, store.sink(node))


@pytest.fixture()
def world(tmp_path):
    """Police Scotland's node with a log: its keys, an approval it issued (a1) and one a delegate issued (a2, only
    in receipts), a delegation, a suspension, and decisions: 3 allowed (9 rows) to two recipients, 2 refused; its
    checkpoint co-signed by a witness node."""
    holder = {}
    with https_server(lambda environ, start: holder["app"](environ, start)) as (base, ca):
        port = base.rsplit(":", 1)[1]
        node, _ = Node.init(tmp_path / "police", "Police Scotland", PASS, domain=f"localhost:{port}",
                            public_url=base)
        node._passphrase = PASS
        holder["app"] = create_app(node)
        a1, a2 = f"urn:uuid:{uuid.uuid4()}", f"urn:uuid:{uuid.uuid4()}"
        record.issued(node, None, credential_id=a1, types=["VerifiableCredential", "DataSharingApprovalCredential"],
                      digest="ab" * 32, verification_method=node.verification_method_id,
                      valid_from="2026-01-01T00:00:00Z", valid_until="2027-01-01T00:00:00Z")
        delegation = "https://police.scot.example/credentials/delegations/2026-007"
        record.issued(node, None, credential_id=delegation,
                      types=["VerifiableCredential", "DelegatedAuthorityCredential"], digest="cd" * 32,
                      verification_method=node.verification_method_id)
        transfer(node, None, holder=None, allowed=False, reason="presentation.missing")
        transfer(node, a1)
        transfer(node, a1)
        transfer(node, a1, allowed=False)
        transfer(node, a2, holder=OTHER_RECIPIENT)
        record.status_changed(node, None, credential_id=a1, action="suspend", status="suspended")
        w = ready_node(tmp_path / "witness")
        log = record.log_of(node)
        witness.watch(w, log.key.vkey())
        witness.submit(log, lambda body: (lambda a: (a.status, a.body))(witness.add_checkpoint(w, body)))
        yield SimpleNamespace(node=node, base=base, ca=ca, a1=a1, a2=a2, delegation=delegation,
                              witness=witness.witness_key(w).vkey(), witness_did=w.did, tmp=tmp_path)


def audit(w, *args):
    out = w.tmp / f"report-{uuid.uuid4().hex[:6]}"
    result = CliRunner().invoke(main, ["audit", w.base, "--ca-bundle", w.ca, "--allow-private-addresses",
                                       "--out", str(out), *map(str, args)])
    page = next(out.glob("*.html")).read_text() if out.exists() else ""
    return result, page, out


def text(page: str) -> str:
    """The page as a reader sees it: tags gone, spaces collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


def test_the_verdict_says_what_was_checked_and_that_witnesses_were_not(world):
    result, page, _ = audit(world)
    assert result.exit_code == 0, result.output
    assert "all checks passed (witnesses not checked: no --witness given)" in result.output
    assert "1 checkpoint," in result.output and "1 approvals issued here and 2 relied on" in result.output
    seen = text(page)
    assert "Result: the log is intact" in seen
    assert "signed with a key in the DID document of" in seen
    assert f"All {record.log_of(world.node).size()} entries downloaded" in seen
    assert "Witnesses not checked : no witness key was given ( --witness ), so this audit cannot rule out" in seen


def test_with_the_witness_the_verdict_says_who_co_signed(world):
    names = world.tmp / "names.json"
    names.write_text(json.dumps({world.witness_did: "Fife Council"}))
    result, page, _ = audit(world, "--witness", world.witness, "--min-witnesses", "1", "--names", names)
    assert result.exit_code == 0, result.output
    assert "witnesses not checked" not in result.output
    seen = text(page)
    assert "Witnesses: you named 1 witness key (Fife Council); the checkpoint is co-signed by them" in seen
    assert "not checked" not in seen


def test_a_bad_cosignature_names_the_witness_not_the_organisation(world):
    """A checkpoint served with a witness's cosignature that does not verify over it (here a real cosignature the
    witness made over an earlier checkpoint, carried over to a later one, as a node faking its witnessing would):
    the finding names that witness (by the auditor's name for it, and its DID), not the organisation's node, whose
    own signature on the checkpoint is good; the checkpoint still counts as the organisation's, not co-signed."""
    log = record.log_of(world.node)
    first = log.checkpoint()
    size = Checkpoint.parse(notes.split(first)[0]).size
    [line] = [s.line() for s in notes.split(first)[1] if s.name == world.witness_did]   # the witness's, real
    transfer(world.node, world.a1)                                                  # the log grows...
    later = log.checkpoint()
    later_size = Checkpoint.parse(notes.split(later)[0]).size
    assert later_size > size
    log.add_cosignature(later_size, line)                                          # ...and the old line is reused
    names = world.tmp / "names.json"
    names.write_text(json.dumps({world.witness_did: "Fife Council", world.node.did: "Police Scotland"}))
    result, page, _ = audit(world, "--witness", world.witness, "--names", names)
    assert result.exit_code == 1, result.output
    assert "audit.cosignature_invalid" in result.output and world.witness_did in result.output
    assert "audit.checkpoint_invalid" not in result.output and "not signed by a key of" not in result.output
    seen = text(page)
    finding = seen.split("Result: problems found")[1].split("Checked:")[0]
    assert f"The cosignature of the witness Fife Council ( {world.witness_did} ) on the checkpoint of {later_size} " \
        "entries does not verify" in finding, finding
    assert "Police Scotland" not in finding and "audit.cosignature_invalid" in finding
    assert f"Checked: 2 checkpoints signed by the organisation" in seen          # its own signature is good
    rows = seen.split("Checkpoints")[-1]
    assert re.search(rf"{later_size} [0-9a-f]{{64}} yes none of the witnesses named the cosignature of Fife "
                     "Council does NOT verify", rows), rows
    assert re.search(rf"{size} [0-9a-f]{{64}} yes Fife Council \(", rows), rows      # the first: truly co-signed


def test_the_totals_are_the_sums_of_what_is_listed(world):
    result, page, out = audit(world)
    rows = list(csv.DictReader(io.StringIO(next(out.glob("*.csv")).read_text())))
    allowed = [r for r in rows if r["decision"] == "allow"]
    assert len(rows) == 5 and len(allowed) == 3 and sum(int(r["rows"]) for r in allowed) == 9
    seen = text(page)
    size = record.log_of(world.node).size()
    # the entries, by kind, add up to the log's size: nothing in the log goes unmentioned
    breakdown = re.search(r"Entries in the log (\d+) \((.*?)\) Approvals issued", seen)
    assert breakdown and int(breakdown.group(1)) == size
    assert sum(int(n) for n in re.findall(r"(\d+) [a-z]", breakdown.group(2))) == size, breakdown.group(0)
    assert "Approvals issued by this organisation (in this log) 1" in seen
    assert "Approvals transfers were decided under 2, of which 1 issued elsewhere" in seen
    assert "Decisions by its gateway 5: 3 allowed, 2 refused" in seen
    assert "Transfers (allowed decisions) and rows disclosed 3 transfers, 9 rows" in seen
    assert "Recipients of those transfers 2" in seen and "Credential status changes 1" in seen
    # each approval's own totals
    assert "3 decisions: 2 allowed (6 rows disclosed), 1 refused." in seen
    assert "1 decision: 1 allowed (3 rows disclosed), 0 refused." in seen
    # the request without any presentation: its own group, counted among the refusals
    assert "Of those refused: requests without any presentation (probes, health checks, misconfigured clients) " \
        "1: nothing moved, nobody identified" in seen
    assert "1 request, refused: nothing moved and nobody was identified." in seen
    # the s.62 view's total line
    s62 = seen.split("DPA 2018 section 62")[1].split("Checkpoints")[0]
    assert "Total: 3 disclosures 2 recipients 9" in s62


def test_requests_without_a_presentation_are_a_group_of_their_own_and_still_counted(world):
    """A health check or probe (a request with no presentation at all) is a logged decision: listed and counted,
    but as what it is, apart from the refusals of requests that did present something, and never with a recipient
    "not known" as if someone had tried to take data."""
    transfer(world.node, None, holder=None, allowed=False, reason="presentation.missing")
    transfer(world.node, None, holder=None, allowed=False, reason="presentation.malformed")   # sent, unreadable
    result, page, out = audit(world)
    assert result.exit_code == 0, result.output
    assert "3 transfers (7 decisions, 2 of them requests without any presentation)" in result.output
    seen = text(page)
    assert "Decisions by its gateway 7: 3 allowed, 4 refused" in seen
    assert "requests without any presentation (probes, health checks, misconfigured clients) 2: nothing moved, " \
        "nobody identified" in seen
    section = seen.split("Approvals and the transfers made under each")[1].split("Other credentials")[0]
    # the groups add up to the decisions: each approval's, the refusals before an approval, the bare requests
    counts = [int(n) for n in re.findall(r"(\d+) decisions?: \d+ allowed", section)]
    bare = section.split("Requests without any presentation (probes, health checks, misconfigured clients)")[1]
    assert bare.startswith(" 2 requests, all refused: nothing moved and nobody was identified.")
    assert sum(counts) + 2 == 7
    # the refusal of a presentation that was sent stays where it was, with its reason; the bare requests are not
    # in a table of transfers with a recipient "not known", but said to be nobody, with their log entries
    before = section.split("Refused before an approval was found")[1].split("Requests without any presentation")[0]
    assert "1 decision: 0 allowed (0 rows disclosed), 1 refused." in before
    assert "the presentation could not be read (presentation.malformed)" in before
    assert "presentation.missing" not in before
    rows = list(csv.DictReader(io.StringIO(next(out.glob("*.csv")).read_text())))
    bare_rows = [r for r in rows if r["reasons"] == "presentation.missing"]
    assert len(rows) == 7 and len(bare_rows) == 2                              # still in the CSV, each a row
    assert "no presentation was sent with the request (presentation.missing)" in bare
    from cead.audit import index_ranges
    assert f"log entries {index_ranges(int(r['logIndex']) for r in bare_rows)}." in bare
    assert "not known (no presentation was read)" not in bare
    # the node's own page of transfers groups them the same way
    import requests
    node_page = requests.get(world.base + "/log/transfers", verify=world.ca, timeout=10).text
    assert "Requests without any presentation (probes, health checks, misconfigured clients)" in node_page
    assert "Refused: nothing moved and nobody was identified." in node_page
    assert node_page.count("nobody (no presentation was sent)") == 2


def test_the_node_s_page_of_transfers_names_whom_its_names_file_names(world):
    """The issuer alone (no wallet mounted) names a recipient on /log/transfers by the name its HOME/names.json
    gives (the shape `cead audit --names` takes), the DID beside it; a recipient it has no name for, by its DID."""
    import requests
    (world.node.home / "names.json").write_text(json.dumps({RECIPIENT: "Justice Analytical Services"}))
    page = requests.get(world.base + "/log/transfers", verify=world.ca, timeout=10).text
    assert ('<span class="cead-name">Justice Analytical Services</span> '
            f'<span class="cead-id cead-id-beside">{RECIPIENT}</span>') in page
    assert f'<td data-heading="Recipient"><span class="cead-id">{OTHER_RECIPIENT}</span></td>' in page
    assert '<td data-heading="When" class="cead-when">' in page


def test_every_credential_issued_is_listed_not_only_approvals(world):
    _, page, _ = audit(world)
    seen = text(page)
    other = seen.split("Other credentials this organisation issued")[1].split("Status and key changes")[0]
    assert world.delegation in other and "Delegation of approval authority" in other
    assert world.a1 not in other                                                  # an approval, listed above it
    approval = seen.split(f"Approval {world.a1}")[1].split("Approval ")[0]
    assert "Issued by this organisation on" in approval and "valid 1 January 2026, 00:00 UTC to 1 January 2027" \
        in approval
    assert f"Approval {world.a2} Not issued by this organisation's own node" in seen
    changes = seen.split("Status and key changes")[1].split("DPA 2018")[0]
    assert "credential status changed: suspend" in changes and world.a1 in changes


def test_names_the_auditor_knows_are_shown_beside_the_identifiers(world):
    result, page, _ = audit(world)
    assert "give cead audit --names FILE" in text(page)          # without names: says how to get them
    assert "Accountability report: did:web:localhost" in text(page)
    names = world.tmp / "names.yaml"
    names.write_text(f"{world.node.did}: Police Scotland\n'{RECIPIENT}': Scottish Government Justice Analytical "
                     f"Services\n'{DATASET}': Recorded crime, monthly\n")
    result, page, _ = audit(world, "--names", names)
    assert result.exit_code == 0, result.output
    seen = text(page)
    assert "<title>Accountability report: Police Scotland</title>" in page
    assert f"kept by Police Scotland ( {world.node.did} )" in seen
    assert f"Scottish Government Justice Analytical Services {RECIPIENT}" in seen   # the name, and the DID beneath
    assert f"Recorded crime, monthly {DATASET}" in seen
    assert OTHER_RECIPIENT in seen                                 # not named: its identifier, never a guess
    assert "--names FILE" not in seen


def test_a_names_file_that_is_no_mapping_is_refused(world):
    bad = world.tmp / "names.json"
    bad.write_text('["Police Scotland"]')
    result, _, out = audit(world, "--names", bad)
    assert result.exit_code != 0 and "request.invalid" in result.output and "names file" in result.output
    assert not out.exists()


def test_the_s62_view_says_what_the_act_asks_and_shows_it(world):
    _, page, _ = audit(world)
    seen = text(page)
    s62 = seen.split("DPA 2018 section 62")[1].split("Checkpoints")[0]
    assert "legislation.gov.uk/ukpga/2018/12/section/62" in page
    for words in ("(s.62(1))", "(s.62(3))", "(s.62(5))", "Part 3", "the justification for, and the date and time "
                  "of, each disclosure", "the identity of the person who disclosed the data and the identity of "
                  "its recipients", "Information Commissioner on request", "only a Part 3 controller is bound"):
        assert words in s62, words
    heads = re.search(r"<th>date and time</th>(.*?)</tr>", page.split("DPA 2018 section 62")[1]).group(1)
    assert [h for h in re.findall(r"<th>([^<]*)</th>", heads)] == \
        ["recipient", "justification", "dataset", "rows", "disclosed by", "log entry"]
    assert s62.count(f"approval {world.a1} ; purpose: Justice statistics") == 2
    assert s62.count(world.node.did) >= 3            # disclosed by: the gateway that signed each receipt


def test_the_page_reads_on_a_phone_and_on_paper(world):
    """Rendered in Chromium: at 390 px wide nothing is wider than the screen (tables become cards, each value with
    its column's name); at 1280 px the tables are tables; printed (A4) nothing runs off the page."""
    chromium = "/usr/bin/chromium"
    if not os.path.exists(chromium):
        if os.environ.get("CEAD_REQUIRE_CHROMIUM"):
            raise RuntimeError(f"{chromium} is missing in CI: .ci/run installs the Debian chromium package")
        pytest.skip(f"{chromium} is not installed")
    playwright = pytest.importorskip("playwright.sync_api", reason="the test extra installs playwright")
    _, page_html, out = audit(world)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page_html
    url = next(out.glob("*.html")).resolve().as_uri()
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            for width, cards in ((390, True), (1280, False)):
                context = browser.new_context(viewport={"width": width, "height": 900}, is_mobile=width < 500)
                page = context.new_page()
                page.goto(url)
                assert page.evaluate("document.documentElement.scrollWidth") <= width
                header = page.locator("table.rows thead").first
                assert header.is_visible() is not cards
                label = page.evaluate("""() => getComputedStyle(document.querySelector('table.rows td'), '::before')
                                              .content""")
                assert (label == '"when"') is cards, label
                context.close()
            context = browser.new_context(viewport={"width": 703, "height": 1000})   # A4 less its margins
            page = context.new_page()
            page.goto(url)
            page.emulate_media(media="print")
            assert page.evaluate("document.documentElement.scrollWidth") <= 703
            assert page.locator("table.rows thead").first.is_visible()
            assert len(page.pdf(format="A4")) > 1000
            context.close()
        finally:
            browser.close()
