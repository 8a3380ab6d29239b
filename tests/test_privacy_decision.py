"""The privacy stage inside whole decisions (signed credentials, status lists over HTTPS on 127.0.0.1): a treOnly
approval needs the TRE itself with an accreditation credential; a pseudonymised extract carrying identifiers is
refused, pushed or pulled; tables released are kept by the provider and later ones differenced against them."""
from __future__ import annotations

from issuer import db
from issuer.ledger import SqlLedger
from transfer_world import CEAD, DATASET, codes
from verifier.decision import TransferRequest

DEA = CEAD + "DEAAccreditedProcessor"


def decide(w, approval, extra=(), decider=None, request=None, **policy):
    request = request or w.request()
    creds = [approval, w.d1, w.d2, w.cert, *extra]
    return (decider or w.decider(**policy)).decide(w.present(request, creds), request)


def trusting_dea(w):
    return {"certification_bodies": {CEAD + "CyberEssentials": [w.body.did], DEA: [w.body.did]}}


def test_tre_only_needs_the_tre_itself_with_an_accreditation_credential(w):
    tre_approval = w.make_approval(w.deputy, chain=[w.d1, w.d2],
                                   privacyProtocol=[{"kind": "treOnly", "environments": [w.recipient.did]}])
    # a manifest string naming the environment is not evidence
    request = w.request(environment=w.recipient.did)
    decision = decide(w, tre_approval, request=request, **trusting_dea(w))
    assert not decision.allowed and codes(decision) == {"protocol.tre_not_accredited"}
    # the TRE's accreditation, from a body the policy trusts for that scheme: allowed, and relied on
    accreditation = w.certification(w.body, w.recipient, scheme=DEA)
    decision = decide(w, tre_approval, [accreditation], **trusting_dea(w))
    assert decision.allowed, decision.to_dict()
    assert any(w.doc(accreditation)["id"] in r for r in decision.relied_on)
    # ... but not from a body the policy does not trust for it
    decision = decide(w, tre_approval, [accreditation])
    assert codes(decision) == {"protocol.tre_not_accredited"}
    # an approval for another TRE is not satisfied by this one, accredited or not
    elsewhere = w.make_approval(w.deputy, chain=[w.d1, w.d2], privacyProtocol=[
        {"kind": "treOnly", "environments": ["did:web:safe-haven.ed.ac.uk.example"]}])
    decision = decide(w, elsewhere, [accreditation], **trusting_dea(w))
    assert codes(decision) == {"protocol.tre_required"}


EXTRACT = b"ageBand,localAuthority,outcome,count\n16-24,Fife,housed,12\n25-34,Fife,housed,15\n"
IDENTIFIED = (b"chi,name,ageBand,localAuthority,outcome,count\n"
              b"0101851238,Jack Smith,16-24,Fife,housed,1\n1507923456,Isla Campbell,25-34,Fife,housed,1\n")


def test_pseudonymised_extract_pushed_or_pulled_is_scanned(w):
    approval = w.make_approval(w.deputy, chain=[w.d1, w.d2], privacyProtocol=[
        {"kind": "pseudonymisation", "keyHolder": w.controller.did}])
    push = w.request("POST", body=IDENTIFIED)
    decision = decide(w, approval, request=push)
    assert not decision.allowed and "disclosure.direct_identifier" in codes(decision)
    assert decide(w, approval, request=w.request("POST", body=EXTRACT)).allowed
    # a pull: decided on the request, the extract checked as it leaves
    pull = TransferRequest("GET", "https://api.fife.example:8443/datasets/homelessness", manifest=w.manifest(),
                           response_checked=True)
    decider = w.decider()
    decision = decide(w, approval, decider=decider, request=pull)
    assert decision.allowed and decider.response_check_needed(decision)
    problems = decider.check_response(decision, IDENTIFIED)
    # the identifiers are found, and the columns chi and name, which the approval does not list, are counted from the
    # extract itself (the manifest said only the approved four)
    assert {p.code for p in problems} == {"disclosure.direct_identifier", "transfer.column_not_approved"}
    assert not decision.allowed
    # without the middleware (nginx, Envoy) the extract cannot be checked: refused
    decision = decide(w, approval, request=TransferRequest("GET", pull.url, manifest=w.manifest()))
    assert codes(decision) == {"protocol.payload_missing"}


def test_tables_released_are_kept_and_later_ones_differenced(w, tmp_path):
    ledger = SqlLedger(db.migrate(f"sqlite:///{tmp_path / 'fife.db'}"))
    approval = w.make_approval(w.deputy, chain=[w.d1, w.d2], privacyProtocol=[
        {"kind": "threshold", "minCellCount": 10, "countColumns": ["count"]}])
    decider = w.decider()
    decider.ledger = ledger
    first = b"ageBand,localAuthority,outcome,count\n16-24,Fife,housed,120\n25-34,Fife,housed,85\n"
    revised = b"ageBand,localAuthority,outcome,count\n16-24,Fife,housed,123\n25-34,Fife,housed,85\n"
    assert decide(w, approval, decider=decider, request=w.request("POST", body=first, rowCount=2)).allowed
    assert ledger.earlier_outputs(DATASET, "ageBand,count,localAuthority,outcome") == [first]
    decision = decide(w, approval, decider=decider, request=w.request("POST", body=revised, rowCount=2))
    assert codes(decision) == {"disclosure.differencing"}


class ContributionsLedger(SqlLedger):
    """The node's ledger with the contributor-level data behind its cells (the optional ``contributions(dataset)``
    a provider's ledger offers for dominance)."""

    def __init__(self, engine, cells):
        super().__init__(engine)
        self.cells = cells

    def contributions(self, dataset):
        return self.cells if dataset == DATASET else None


def test_dominance_is_checked_on_the_providers_contributions_not_the_requesters_word(w, tmp_path):
    approval = w.make_approval(w.deputy, chain=[w.d1, w.d2], privacyProtocol=[{"kind": "dominance", "n": 1, "k": 80}])
    table = b"ageBand,localAuthority,outcome,count\n16-24,Fife,housed,1000\n"
    # the requester declares it kept to the rule; nothing the gateway holds shows it did
    declared = w.request("POST", body=table, rowCount=1, protocolRun=[{"kind": "dominance", "n": 1, "k": 80}])
    assert codes(decide(w, approval, request=declared)) == {"protocol.dominance_unverifiable"}
    engine = db.migrate(f"sqlite:///{tmp_path / 'fife.db'}")
    decider = w.decider()
    decider.ledger = ContributionsLedger(engine, {"16-24/Fife": [900, 50, 30, 20]})   # one contributor is 90%
    assert codes(decide(w, approval, decider=decider, request=declared)) == {"disclosure.dominance"}
    decider.ledger = ContributionsLedger(engine, {"16-24/Fife": [300, 280, 250, 170]})
    assert decide(w, approval, decider=decider, request=declared).allowed


def test_an_output_that_passed_its_checks_carries_a_signed_output_checking_receipt(w, tmp_path):
    import hashlib

    from issuer.keys import PrivateKey
    from verifier.receipts import verify_receipt
    key = PrivateKey.generate()
    (tmp_path / "receipt.pem").write_bytes(key.to_pem(None))
    decider = w.decider(receipts={"key": str(tmp_path / "receipt.pem"), "kid": "did:web:tre.example#receipt"})
    approval = w.make_approval(w.deputy, chain=[w.d1, w.d2], privacyProtocol=[
        {"kind": "threshold", "minCellCount": 10, "countColumns": ["count"], "secondarySuppression": True}])
    pull = TransferRequest("GET", "https://api.fife.example:8443/datasets/homelessness",
                           manifest=w.manifest(rowCount=None), response_checked=True)
    decision = decide(w, approval, decider=decider, request=pull)
    table = b"ageBand,localAuthority,outcome,count\n16-24,Fife,housed,120\n25-34,Fife,housed,85\n"
    assert decider.check_response(decision, table) == []
    claims = verify_receipt(decision.output_receipt, key.public)
    assert claims["outputSha256"] == hashlib.sha256(table).hexdigest() and claims["checks"] == ["threshold"]
    assert claims["approval"] == decision.approval_id and decision.to_dict()["outputReceipt"]
    # a table that fails gets no output receipt
    decision = decide(w, approval, decider=decider, request=pull)
    # a suppressed 7 the total row gives back
    leaky = b"ageBand,localAuthority,outcome,count\n16-24,Fife,housed,120\n25-34,Fife,housed,*\nAll ages,Fife,housed,127\n"
    assert [p.code for p in decider.check_response(decision, leaky)] == ["protocol.secondary_suppression_missing"]
    assert decision.output_receipt is None


def test_an_output_leaves_the_tre_only_with_the_tres_output_checking_receipt(w, tmp_path):
    """treOnly: the data go only to the TRE itself; a researcher outside it receives only an output the TRE's
    gateway checked, shown by the TRE's signed output-checking receipt covering exactly those bytes, from a TRE the
    approval lists and whose accreditation credential is presented."""
    from transfer_world import Party
    from verifier.receipts import ReceiptSigner
    tre, impostor = Party("tre"), Party("impostor")
    for party in (tre, impostor):
        (tmp_path / f"{party.name}.pem").write_bytes(party.key.to_pem(None))
    # 1. inside the TRE: its gateway checks the output (threshold) and signs the output-checking receipt
    tre_gateway = w.decider(receipts={"key": str(tmp_path / "tre.pem"), "kid": tre.kid})
    release = w.make_approval(w.deputy, chain=[w.d1, w.d2], privacyProtocol=[
        {"kind": "threshold", "minCellCount": 10, "countColumns": ["count"]}])
    pull = TransferRequest("GET", "https://api.fife.example:8443/datasets/homelessness",
                           manifest=w.manifest(rowCount=None), response_checked=True)
    checked = decide(w, release, decider=tre_gateway, request=pull)
    output = b"ageBand,localAuthority,outcome,count\n16-24,Fife,housed,120\n25-34,Fife,housed,85\n"
    assert tre_gateway.check_response(checked, output) == [] and checked.output_receipt
    receipt = checked.output_receipt
    # 2. under the treOnly approval, the researcher (not the TRE) receives that output
    tre_only = w.make_approval(w.deputy, chain=[w.d1, w.d2], privacyProtocol=[
        {"kind": "treOnly", "environments": [tre.did]}])
    accreditation = w.certification(w.body, tre, scheme=DEA)

    def push(body, extra=(), **manifest):
        return decide(w, tre_only, extra, request=w.request("POST", body=body, rowCount=2, **manifest),
                      **trusting_dea(w))

    assert codes(push(output)) == {"protocol.tre_required", "protocol.tre_not_accredited"}
    allowed = push(output, [accreditation], outputCheckReceipt=receipt)
    assert allowed.allowed, allowed.to_dict()
    assert codes(push(output, outputCheckReceipt=receipt)) == {"protocol.tre_output_receipt_untrusted"}
    assert codes(push(output.replace(b"120", b"121"), [accreditation], outputCheckReceipt=receipt)) \
        == {"protocol.tre_output_receipt_mismatch"}
    forged = ReceiptSigner.from_file(tmp_path / "impostor.pem", impostor.kid).sign(
        {"outputCheck": "pass", "outputSha256": __import__("hashlib").sha256(output).hexdigest(),
         "checks": ["threshold"]})
    assert codes(push(output, [accreditation], outputCheckReceipt=forged)) == {"protocol.tre_output_receipt_untrusted"}
    head, body, signature = receipt.split(".")
    tampered = ".".join([head, body, signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB")])
    assert codes(push(output, [accreditation], outputCheckReceipt=tampered)) == {"protocol.tre_output_receipt_invalid"}
    # a pull: the receipt is checked when decided, the response must be the bytes it covers
    gateway = w.decider(**trusting_dea(w))
    pulled = decide(w, tre_only, [accreditation], decider=gateway, request=TransferRequest(
        "GET", pull.url, manifest=w.manifest(rowCount=2, outputCheckReceipt=receipt), response_checked=True))
    assert pulled.allowed and gateway.response_check_needed(pulled)
    assert [p.code for p in gateway.check_response(pulled, output + b"35-44,Fife,housed,3\n")] \
        == ["protocol.tre_output_receipt_mismatch"]
