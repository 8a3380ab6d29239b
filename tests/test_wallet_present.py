"""Presentations (vp+jwt and Data Integrity), request binding, and choosing credentials (PEX 2.0, dataset+purpose)."""
from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest

from schemas.models import credential_digest
from verifier.binding import decode_manifest, decode_presentation, origin, request_binding
from verifier.credential import Verifier
from verifier.results import CeadError
from wallet import pex
from wallet.present import build_presentation, present_for_request, select_credentials, select_for_transfer
from wallet.store import jwt_payload

from test_wallet_support import (CYBER_ESSENTIALS, DS_CLOTHING, DS_MEALS, ISO27001, P_MEALS, P_STATS,
                                 approval_subject, certification_subject, delegation_subject, identity, make_wallet,
                                 vc)

URL = "https://api.example.gov.scot:8443/v1/meals?month=2025-01"


def test_jwt_presentation_verifies_and_carries_claims():
    holder, issuer = identity(), identity()
    cred_jwt = vc(issuer, "VerifiableCredential", {"id": holder.did})
    cred_ldp = vc(issuer, "VerifiableCredential", {"id": holder.did}, fmt="ldp")
    vp = build_presentation(holder.did, holder.key, holder.kid, [cred_jwt, cred_ldp], audience="https://v.example:443",
                            nonce="urn:cead:req:abc", lifetime=120)
    header = jwt_payload(vp)
    assert header["iss"] == holder.did and header["aud"] == "https://v.example:443"
    assert header["nonce"] == "urn:cead:req:abc" and header["exp"] - header["iat"] == 120 and header["jti"]
    assert header["verifiableCredential"][0] == {"@context": "https://www.w3.org/ns/credentials/v2",
                                                 "id": f"data:application/vc+jwt,{cred_jwt}",
                                                 "type": "EnvelopedVerifiableCredential"}
    assert header["verifiableCredential"][1] == cred_ldp
    result = Verifier().verify_presentation(vp, challenge="urn:cead:req:abc", domain="https://v.example:443")
    assert result.verified, result.problems
    assert result.issuer == holder.did and len(result.credentials) == 2
    wrong = Verifier().verify_presentation(vp, challenge="urn:cead:req:other", domain="https://v.example:443")
    assert "presentation.nonce_mismatch" in [p.code for p in wrong.problems]


def test_data_integrity_presentation_verifies():
    holder, issuer = identity(), identity()
    vp = build_presentation(holder.did, holder.key, holder.kid, [vc(issuer, "VerifiableCredential",
                                                                    {"id": holder.did})],
                            format="ldp", domain="https://v.example:443", challenge="urn:cead:req:xyz")
    proof = vp["proof"]
    assert proof["proofPurpose"] == "authentication" and proof["challenge"] == "urn:cead:req:xyz"
    assert proof["domain"] == "https://v.example:443" and proof["expires"] > proof["created"]
    result = Verifier().verify_presentation(vp, challenge="urn:cead:req:xyz", domain="https://v.example:443")
    assert result.verified, result.problems
    assert not Verifier().verify_presentation(vp, challenge="urn:cead:req:xyz", domain="https://evil.example:443").verified


@pytest.mark.parametrize("kwargs, code", [({"lifetime": 301}, "presentation.lifetime_invalid"),
                                          ({"lifetime": 0}, "presentation.lifetime_invalid"),
                                          ({"format": "cbor"}, "presentation.format_unsupported")])
def test_presentation_rejects_bad_options(kwargs, code):
    holder = identity()
    with pytest.raises(CeadError) as err:
        build_presentation(holder.did, holder.key, holder.kid, [], **kwargs)
    assert err.value.code == code


def test_presentation_rejects_non_credentials():
    holder = identity()
    with pytest.raises(CeadError) as err:
        build_presentation(holder.did, holder.key, holder.kid, [42])
    assert err.value.code == "credential.malformed"


# ---- selection by dataset and purpose ------------------------------------------------------------------------
@pytest.fixture
def populated(tmp_path):
    """A recipient wallet with approvals, the approver's delegation chain, certifications and noise."""
    holder, council, dpo, approver, cert_body, other = (identity() for _ in range(6))
    w = make_wallet(tmp_path, holder)
    root = vc(council, "DelegatedAuthorityCredential", delegation_subject(dpo.did, council.did))
    leaf = vc(dpo, "DelegatedAuthorityCredential", delegation_subject(approver.did, council.did, parent=root))
    approval = vc(approver, "DataSharingApprovalCredential",
                  approval_subject(council.did, holder.did, chain=[leaf], requirements=[CYBER_ESSENTIALS]))
    clothing = vc(approver, "DataSharingApprovalCredential",
                  approval_subject(council.did, holder.did, datasets=[DS_CLOTHING], purposes=[P_STATS]))
    someone_elses = vc(approver, "DataSharingApprovalCredential",
                       approval_subject(council.did, other.did, datasets=[DS_CLOTHING], purposes=[P_MEALS]))
    cert = vc(cert_body, "OrganisationCertificationCredential", certification_subject(holder.did, CYBER_ESSENTIALS))
    iso = vc(cert_body, "OrganisationCertificationCredential", certification_subject(holder.did, ISO27001))
    noise = [vc(other, "VerifiableCredential", {"id": holder.did, "note": str(i)}) for i in range(5)]
    for cred in [root, leaf, approval, clothing, someone_elses, cert, iso, *noise]:
        assert w.import_credential(cred).ok
    return w, dict(root=root, leaf=leaf, approval=approval, clothing=clothing, cert=cert, iso=iso,
                   someone_elses=someone_elses)


def test_select_by_dataset_and_purpose(populated):
    w, c = populated
    chosen = [r.credential for r in select_for_transfer(w, DS_MEALS, P_MEALS)]
    assert chosen == [c["approval"], c["leaf"], c["root"], c["cert"]]
    assert [r.credential for r in select_for_transfer(w, DS_CLOTHING)] == [c["clothing"]]
    # a purpose within a broader approved one is covered; an unrelated one is not
    with pytest.raises(CeadError) as err:
        select_for_transfer(w, DS_CLOTHING, P_MEALS)
    assert err.value.code == "wallet.no_approval" and DS_CLOTHING in err.value.message


def test_missing_certification_and_delegation_are_named(tmp_path):
    holder, council, approver = identity(), identity(), identity()
    w = make_wallet(tmp_path, holder)
    delegation = vc(council, "DelegatedAuthorityCredential", delegation_subject(approver.did, council.did))
    w.import_credential(vc(approver, "DataSharingApprovalCredential",
                           approval_subject(council.did, holder.did, requirements=[ISO27001])))
    with pytest.raises(CeadError) as err:
        select_for_transfer(w, DS_MEALS)
    assert err.value.code == "wallet.certification_missing" and ISO27001 in err.value.message
    (tmp_path / "w2").mkdir()
    w2 = make_wallet(tmp_path / "w2", holder)
    w2.import_credential(vc(approver, "DataSharingApprovalCredential",
                            approval_subject(council.did, holder.did, chain=[delegation])))
    with pytest.raises(CeadError) as err:
        select_for_transfer(w2, DS_MEALS)
    assert err.value.code == "wallet.delegation_missing"


def test_present_for_request_binds_to_the_request(populated):
    w, c = populated
    body = b'{"rows": 3}'
    headers = present_for_request(w, "POST", URL, body, dataset=DS_MEALS, purpose=P_MEALS)
    manifest = decode_manifest(headers["Cead-Transfer-Manifest"])
    assert manifest == {"dataset": DS_MEALS, "purpose": P_MEALS, "recipient": w.holder,
                        "columns": ["pupil_id", "entitlement"]}
    vp = decode_presentation(headers["Cead-Presentation"])
    claims = jwt_payload(vp)
    assert claims["aud"] == origin(URL) == "https://api.example.gov.scot:8443"
    assert claims["nonce"] == request_binding("POST", URL, body, manifest)
    assert len(claims["verifiableCredential"]) == 4
    again = present_for_request(w, "POST", URL, body, dataset=DS_MEALS, purpose=P_MEALS)
    assert jwt_payload(again["Cead-Presentation"])["jti"] != claims["jti"]          # fresh every time
    other = present_for_request(w, "POST", URL, b'{"rows": 4}', dataset=DS_MEALS, purpose=P_MEALS)
    assert jwt_payload(other["Cead-Presentation"])["nonce"] != claims["nonce"]     # body digest is bound


# ---- Presentation Exchange -----------------------------------------------------------------------------------
def test_pex_chooses_the_right_credentials(populated):
    w, c = populated
    definition = {"id": "meals-transfer", "input_descriptors": [
        {"id": "approval", "name": "Approval for school meals", "constraints": {"fields": [
            {"path": ["$.type"], "filter": {"type": "array", "contains": {"const": "DataSharingApprovalCredential"}}},
            {"path": ["$.credentialSubject.datasets[*]", "$.vc.credentialSubject.datasets[*]"],
             "filter": {"type": "string", "const": DS_MEALS}}]}},
        {"id": "cyber", "constraints": {"fields": [
            {"path": ["$.credentialSubject.scheme"], "filter": {"type": "string", "pattern": "CyberEssentials$"}},
            {"path": ["$.credentialSubject.level"], "optional": True}]}},
        {"id": "iso", "constraints": {"fields": [
            {"path": ["$['credentialSubject']['scheme']"], "filter": {"enum": [ISO27001]}}]}},
    ]}
    chosen = select_credentials(w, definition=definition)
    assert chosen == [c["approval"], c["cert"], c["iso"]]
    sel = pex.select(definition, [(r.credential, r.document) for r in w.search(usable=True)])
    assert [d["id"] for d in sel.submission["descriptor_map"]] == ["approval", "cyber", "iso"]
    assert sel.submission["descriptor_map"][1]["path"] == "$.verifiableCredential[1]"
    assert sel.submission["definition_id"] == "meals-transfer"


def test_pex_unsatisfiable_definition_names_what_is_missing(populated):
    w, _ = populated
    definition = {"id": "d", "input_descriptors": [
        {"id": "approval", "constraints": {"fields": [
            {"path": ["$.type"], "filter": {"type": "array", "contains": {"const": "DataSharingApprovalCredential"}}}]}},
        {"id": "dpo", "name": "DPO delegation for housing", "constraints": {"fields": [
            {"path": ["$.credentialSubject.role"], "filter": {"const": "DataProtectionOfficer"}}]}},
        {"id": "iso9001", "constraints": {"fields": [{"path": ["$.credentialSubject.scheme"],
                                                      "filter": {"const": "urn:iso:9001"}}]}},
    ]}
    with pytest.raises(CeadError) as err:
        select_credentials(w, definition=definition)
    assert err.value.code == "pex.unsatisfied"
    assert err.value.detail["missing"] == ["dpo (DPO delegation for housing)", "iso9001"]
    assert "dpo (DPO delegation for housing)" in err.value.message and "iso9001" in err.value.message


@pytest.mark.parametrize("definition", [
    {}, {"input_descriptors": "x"}, {"input_descriptors": [{"constraints": {}}]},
    {"input_descriptors": [{"id": "a", "constraints": {"fields": [{"path": "$.type"}]}}]},
    {"input_descriptors": [{"id": "a", "constraints": {"fields": [{"path": ["type"]}]}}]},
    {"input_descriptors": [{"id": "a", "constraints": {"fields": [{"path": ["$..type"]}]}}]},
    {"input_descriptors": [{"id": "a", "constraints": {"fields": [{"path": ["$.type"], "filter": {"type": 5}}]}}]},
])
def test_pex_invalid_definitions_are_reported(definition):
    with pytest.raises(CeadError) as err:
        pex.select(definition, [("c", {"type": ["VerifiableCredential"]})])
    assert err.value.code == "pex.definition_invalid"


DOC = {"type": ["VerifiableCredential"], "credentialSubject": {"id": "did:web:a.example", "n": "x"}}


@pytest.mark.parametrize("descriptor", [
    {"id": "d", "constraints": [1]},
    {"id": "d", "constraints": "x"},
    {"id": "d", "constraints": {"fields": ["$.type"]}},
    {"id": "d", "constraints": {"fields": [None]}},
    {"id": "d", "constraints": {"fields": [{"path": ["$.type"], "filter": 5}]}},
    {"id": "d", "constraints": {"fields": [{"path": ["$.type"], "filter": ["string"]}]}},
    {"id": "d", "constraints": {"fields": [{"path": ["$.type"], "filter": {"$ref": "https://127.0.0.1:9/s"}}]}},
    {"id": "d", "constraints": {"fields": [{"path": ["$.type"], "filter": {"$ref": "#/definitions/nope"}}]}},
    {"id": "d", "constraints": {"fields": [{"path": ["$.credentialSubject.missing"], "optional": "no"}]}},
])
def test_a_bad_presentation_definition_is_invalid_not_a_crash(descriptor):
    with pytest.raises(CeadError) as err:
        pex.select({"id": "def", "input_descriptors": [descriptor]}, [("cred", DOC)])
    assert err.value.code == "pex.definition_invalid"


def test_good_definitions_still_select():
    field = {"path": ["$.credentialSubject.n"], "filter": {"type": "string", "const": "x"}}
    optional = {"path": ["$.credentialSubject.missing"], "optional": True}
    chosen = pex.select({"id": "def", "input_descriptors": [{"id": "d", "constraints": {"fields": [field, optional]}}]},
                        [("cred", DOC)])
    assert chosen.credentials == ["cred"]


def test_a_pattern_built_to_backtrack_is_refused_not_run_for_ever():
    """ReDoS: the provider's pattern "^(a|a)*$" against "aaa...a!" takes exponential time on a backtracking engine."""
    hostile = {"id": "d", "input_descriptors": [{"id": "a", "constraints": {"fields": [
        {"path": ["$.n"], "filter": {"type": "string", "pattern": "^(a|a)*$"}}]}}]}
    started = time.monotonic()
    with pytest.raises(CeadError) as err:
        pex.select(hostile, [("c", {"n": "a" * 40 + "!"})])
    assert err.value.code == "pex.definition_invalid" and "too long" in err.value.message
    assert time.monotonic() - started < 30          # a hang guard, not a speed target (that is the time limit)
    by_key = {"id": "d", "input_descriptors": [{"id": "a", "constraints": {"fields": [
        {"path": ["$.m"], "filter": {"type": "object", "patternProperties": {"^(a|a)*$": {"const": 1}}}}]}}]}
    with pytest.raises(CeadError) as err:
        pex.select(by_key, [("c", {"m": {"a" * 40 + "!": 2}})])
    assert err.value.code == "pex.definition_invalid"
    # ordinary patterns still decide, on values and on keys
    fine = {"id": "d", "input_descriptors": [{"id": "a", "constraints": {"fields": [
        {"path": ["$.n"], "filter": {"type": "string", "pattern": "^a+!$"}},
        {"path": ["$.m"], "filter": {"type": "object", "patternProperties": {"^x": {"const": 1}}}}]}}]}
    assert pex.select(fine, [("bad", {"n": "b", "m": {}}), ("good", {"n": "aa!", "m": {"xy": 1}})]).credentials \
        == ["good"]
    with pytest.raises(CeadError) as err:
        pex.select(fine, [("c", {"n": "aa!", "m": {"xy": 2}})])
    assert err.value.code == "pex.unsatisfied"


def test_json_path_subset():
    doc = {"a": {"b": [{"c": 1}, {"c": 2}], "d-e": "x"}, "type": ["T", "U"]}
    assert pex.json_path(doc, "$.a.b[*].c") == [1, 2]
    assert pex.json_path(doc, "$.a.b[1].c") == [2]
    assert pex.json_path(doc, "$['a']['d-e']") == ["x"]
    assert pex.json_path(doc, "$.type[0]") == ["T"]
    assert pex.json_path(doc, "$.missing.x") == []
    assert pex.json_path(doc, "$.a.b[5]") == []
    assert pex.json_path(doc, "$") == [doc]


def test_expired_credentials_are_not_selected(tmp_path):
    holder, issuer = identity(), identity()
    w = make_wallet(tmp_path, holder)
    w.import_credential(vc(issuer, "VerifiableCredential", {"id": holder.did, "n": 1}, valid_for=timedelta(days=2)))
    definition = {"id": "d", "input_descriptors": [{"id": "any", "constraints": {"fields": [
        {"path": ["$.credentialSubject.n"], "filter": {"const": 1}}]}}]}
    assert len(select_credentials(w, definition=definition)) == 1
    from test_wallet_support import now
    from wallet.store import WalletCredential
    from sqlmodel import Session
    with Session(w.engine) as s:  # the credential has since expired
        row = s.get(WalletCredential, w.search()[0].id)
        row.valid_until = now() - timedelta(seconds=1)
        s.add(row)
        s.commit()
    with pytest.raises(CeadError) as err:
        select_credentials(w, definition=definition)
    assert err.value.code == "pex.unsatisfied"


def test_select_for_a_derived_dataset_adds_upstream_approvals_with_their_chains(tmp_path):
    """A derived approval pins its upstream approval by digest; that one rests on a delegation (and a parent)."""
    holder, deriver, council, dpo, approver = (identity() for _ in range(5))
    root = vc(council, "DelegatedAuthorityCredential", delegation_subject(dpo.did, council.did))
    leaf = vc(dpo, "DelegatedAuthorityCredential", delegation_subject(approver.did, council.did, parent=root))
    upstream = vc(approver, "DataSharingApprovalCredential", approval_subject(council.did, deriver.did, chain=[leaf]))
    pin = {"id": jwt_payload(upstream)["id"], "digest": credential_digest(upstream)}
    derived = vc(deriver, "DataSharingApprovalCredential",
                 {**approval_subject(deriver.did, holder.did, datasets=[DS_CLOTHING]), "upstream": [pin]})
    w = make_wallet(tmp_path, holder)
    for cred in (derived, root, leaf):
        assert w.import_credential(cred).ok
    with pytest.raises(CeadError) as err:
        select_for_transfer(w, DS_CLOTHING)
    assert err.value.code == "wallet.upstream_missing" and pin["id"] in err.value.message
    assert err.value.detail["reference"] == pin
    # an approval with the same id but other content is not the pinned one
    from issuer.signing import sign_jwt
    altered = jwt_payload(upstream)
    altered["credentialSubject"]["dataItems"] = ["pupil_id"]
    assert w.import_credential(sign_jwt(altered, approver.key, approver.kid)).ok
    with pytest.raises(CeadError) as err:
        select_for_transfer(w, DS_CLOTHING)
    assert err.value.code == "wallet.upstream_missing"
    assert w.import_credential(upstream).ok
    chosen = [r.credential for r in select_for_transfer(w, DS_CLOTHING)]
    assert chosen == [derived, upstream, leaf, root]
    # a presentation by dataset carries them all
    headers = present_for_request(w, "GET", URL, None, dataset=DS_CLOTHING)
    claims = jwt_payload(decode_presentation(headers["Cead-Presentation"]))
    assert len(claims["verifiableCredential"]) == 4


def test_a_selection_that_already_holds_part_of_a_chain_is_completed_with_the_rest(tmp_path):
    """What an approval rests on is walked in one place (wallet.store.walk_pinned, also used to deliver an
    approval). The walk in presenting stopped at anything already selected: a definition that chose the derived
    approval and its upstream one got no delegation chain for the upstream; one that chose the leaf delegation,
    no root."""
    from wallet.present import complete_selection
    holder, deriver, council, dpo, approver = (identity() for _ in range(5))
    root = vc(council, "DelegatedAuthorityCredential", delegation_subject(dpo.did, council.did))
    leaf = vc(dpo, "DelegatedAuthorityCredential", delegation_subject(approver.did, council.did, parent=root))
    upstream = vc(approver, "DataSharingApprovalCredential", approval_subject(council.did, deriver.did, chain=[leaf]))
    pin = {"id": jwt_payload(upstream)["id"], "digest": credential_digest(upstream)}
    derived = vc(deriver, "DataSharingApprovalCredential",
                 {**approval_subject(deriver.did, holder.did, datasets=[DS_CLOTHING]), "upstream": [pin]})
    w = make_wallet(tmp_path, holder)
    for cred in (derived, upstream, leaf, root):
        assert w.import_credential(cred).ok
    completed, _ = complete_selection(w, [derived, upstream], dataset=DS_CLOTHING)
    assert completed == [derived, upstream, leaf, root]
    completed, _ = complete_selection(w, [upstream, leaf])
    assert completed == [upstream, leaf, root]


# ---- review: a hostile definition may not exhaust memory or run for ever ----------------------------------------
_HOSTILE_SCRIPT = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 * 1024 ** 3, 3 * 1024 ** 3))   # never take the machine down
from wallet import pex
definition = json.loads(sys.argv[1])
try:
    pex.select(definition, [("c", {"a": "s"})])
    print("selected")
except Exception as exc:
    print(getattr(exc, "code", type(exc).__name__), " ".join(str(exc).split()), sep="\t")
"""


def _select_in_a_subprocess(filter_: dict) -> str:
    """pex.select with one field filtered by ``filter_``, in a child process with 3 GB of address space and a
    generous hang guard: the code it ends with (or the exception's name)."""
    return _outcome_in_a_subprocess(filter_)[0]


def _outcome_in_a_subprocess(filter_: dict) -> tuple[str, str]:
    """As :func:`_select_in_a_subprocess`: the code and the message."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    definition = {"id": "d", "input_descriptors": [{"id": "x", "constraints": {"fields": [
        {"path": ["$.a"], "filter": filter_}]}}]}
    env = dict(os.environ, PYTHONPATH=str(root))
    try:
        done = subprocess.run([sys.executable, "-c", _HOSTILE_SCRIPT, json.dumps(definition)], env=env,
                              capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return "hung", ""
    code, _, message = (done.stdout.strip().splitlines() or [done.stderr.strip()[-200:]])[-1].partition("\t")
    return code, message


@pytest.mark.parametrize("pattern", ["a{4294967294}", "((a{1000}){1000}){1000}", "(?:(?:(?:a{100}){100}){100}){100}",
                                     "a{99999999999999999999}", "x" * 5000])
def test_a_pattern_built_to_exhaust_memory_when_compiled_is_refused(pattern):
    """Compiling a{4294967294} (or nested counted repetitions) takes gigabytes in the regex engine before any time
    limit applies: the pattern is bounded first (length, counts, counts multiplied out)."""
    assert _select_in_a_subprocess({"type": "string", "pattern": pattern}) == "pex.definition_invalid"


@pytest.mark.parametrize("pattern, why", [
    ("(?#[)a{4294967294}(?#])", "inline comment"),
    ("(?x)#[\na{4294967294}\n#]", "verbose flag"),
    ("(?ix)#[\na{4294967294}\n#]", "verbose flag"),
    ("[[:alpha:][]a{4294967294}]", "inside a character class"),
])
def test_a_pattern_hiding_a_huge_repetition_from_the_scan_is_refused_before_it_is_compiled(pattern, why):
    """Review: the scan took the '[' in a comment ((?#[), a verbose-mode # comment) or after a POSIX class
    ([[:alpha:][]...]) for the start of a character class, missed the repetition the engine then compiled, and
    the selection took gigabytes (then MemoryError). Comments and the verbose flag are refused, as is '[' inside a
    class; the refusal comes from the scan, before any compiling."""
    code, message = _outcome_in_a_subprocess({"type": "string", "pattern": pattern})
    assert code == "pex.definition_invalid" and why in message, message


@pytest.mark.parametrize("pattern", [
    "(?#c)a", "(?x)a", "(?ix)a", "(?x:a)", "(?i-x:a)", "(?V1x)a", "a(?x) b", "[[:alpha:]]", "[a[]", "(?V1)[a[b]]",
    # braces after an escape are a repetition where the engine reads them as one (\N, \p, \g then repeat a letter)
    "\\g{4294967294}", "\\N{1,4294967294}", "\\p{1,4294967294}", "\\P{2000}",
])
def test_the_pattern_scan_refuses_what_it_cannot_read_as_the_engine_does(pattern):
    with pytest.raises(CeadError) as err:
        pex._check_pattern(pattern)
    assert err.value.code == "pex.definition_invalid"


@pytest.mark.parametrize("pattern, text", [
    ("[\\[\\]]{2}", "[]"), ("[]a]+", "a]"), ("\\p{L}{2,5}", "abc"), ("\\N{LATIN SMALL LETTER A}{3}", "aaa"),
    ("(?i)abc", "ABC"), ("(?P<y>\\d{4})-(?P=y)", "2025-2025"), ("#not a comment", "#not a comment"),
    ("\\(?x\\)", "(x)"), ("(?:x){3}", "xxx"),
])
def test_ordinary_patterns_pass_the_scan(pattern, text):
    import regex
    pex._check_pattern(pattern)
    assert regex.fullmatch(pattern, text)


def test_the_scan_refuses_what_the_engine_does_not_support_without_compiling_it():
    """\\Q...\\E (which could hide a '[') is not supported by the engine: an invalid definition, nothing compiled."""
    code, message = _outcome_in_a_subprocess({"type": "string", "pattern": "\\Q[\\Ea{4294967294}\\Q]\\E"})
    assert code == "pex.definition_invalid" and "MemoryError" not in message


def _gateway_definition(certification_bodies: dict) -> dict:
    from verifier.definition import presentation_definition
    from verifier.policy import parse_policy
    policy = parse_policy({"controllers": [{"dataset": DS_MEALS, "controller": "did:web:council.example"}],
                           "required_certifications": list(certification_bodies),
                           "certification_bodies": certification_bodies})
    return presentation_definition(policy, DS_MEALS, P_MEALS)


def _approval_document(n: int, discloser: str) -> dict:
    return {"id": f"urn:uuid:{n}", "type": ["VerifiableCredential", "DataSharingApprovalCredential"],
            "issuer": discloser, "credentialSubject": {"discloser": discloser, "purposes": [P_MEALS],
                                                       "datasets": [f"https://x.example/{j}" for j in range(5)]}}


def test_a_selection_builds_each_distinct_filter_once(monkeypatch):
    """Review: a validator (check_schema + a class extended with the deadline checks) was built for every field of
    every candidate, 87% of the selection's time. It is now built once per distinct filter per selection."""
    built: list[str] = []
    real = pex._validator_class
    monkeypatch.setattr(pex, "_validator_class", lambda schema: built.append(json.dumps(schema)) or real(schema))
    same = {"type": "array", "contains": {"const": "DataSharingApprovalCredential"}}
    definition = {"id": "d", "input_descriptors": [
        {"id": f"d{k}", "constraints": {"fields": [
            {"path": ["$.type"], "filter": json.loads(json.dumps(same))},          # equal, not the same object
            {"path": ["$.credentialSubject.discloser"], "filter": {"const": f"did:web:c{k}.example"}}]}}
        for k in range(3)]}
    candidates = [(f"c{n}", _approval_document(n, f"did:web:c{n % 3}.example")) for n in range(200)]
    assert pex.select(definition, candidates).credentials == ["c0", "c1", "c2"]
    assert len(built) == 4 == len(set(built))             # the shared filter once, each discloser's once
    built.clear()
    with pytest.raises(CeadError) as err:
        pex.select(definition, candidates[3:4])           # a selection builds its own
    assert err.value.code == "pex.unsatisfied" and len(built) == 4


def test_the_gateways_own_definition_over_many_candidates_is_not_refused_as_too_slow():
    """Review: the gateway's definition (verifier.definition) over ~1000 held credentials hit the 2 s selection
    deadline (pex.definition_invalid, 'take too long') because of the validators built per candidate."""
    holder, body = "did:web:holder.example", "did:web:cb.example"
    definition = _gateway_definition({CYBER_ESSENTIALS: [body], ISO27001: [body]})
    candidates = [(f"other{n}", _approval_document(n, "did:web:other.example")) for n in range(1000)]
    approval = _approval_document(1000, "did:web:council.example")
    approval["credentialSubject"]["datasets"].append(DS_MEALS)
    certs = [{"type": ["VerifiableCredential", "OrganisationCertificationCredential"], "issuer": body,
              "credentialSubject": {"id": holder, "scheme": scheme, "status": "Certified"}}
             for scheme in (CYBER_ESSENTIALS, ISO27001)]
    candidates += [("approval", approval), ("ce", certs[0]), ("iso", certs[1])]
    started = time.monotonic()
    assert pex.select(definition, candidates, holder=holder).credentials == ["approval", "ce", "iso"]
    assert time.monotonic() - started < 120       # a hang guard only


def test_ordinary_counted_patterns_still_decide():
    definition = {"id": "d", "input_descriptors": [{"id": "x", "constraints": {"fields": [
        {"path": ["$.a"], "filter": {"type": "string", "pattern": r"^[A-Z]{2}\d{2,4}(?:-[a-z]{1,10}){0,3}$"}}]}}]}
    assert pex.select(definition, [("no", {"a": "A1"}), ("yes", {"a": "AB123-x-yz"})]).credentials == ["yes"]


def test_a_filter_that_fans_out_exponentially_is_stopped_at_the_selection_deadline():
    """Each level refers twice to the next (allOf of two $refs): 2**26 evaluations. The deadline was only checked
    in pattern searches; it is now checked on every keyword, so the selection ends with the definition invalid."""
    k = 26
    defs = {f"a{i}": {"allOf": [{"$ref": f"#/definitions/a{i + 1}"}, {"$ref": f"#/definitions/a{i + 1}"}]}
            for i in range(k)}
    defs[f"a{k}"] = {"type": "string"}
    assert _select_in_a_subprocess({"definitions": defs, "$ref": "#/definitions/a0"}) == "pex.definition_invalid"


def test_a_definition_past_the_size_limit_is_invalid():
    big = {"id": "d", "input_descriptors": [{"id": "x", "constraints": {"fields": [
        {"path": ["$.a"], "filter": {"enum": ["v" * 1000] * (pex.MAX_DEFINITION_BYTES // 1000 + 1)}}]}}]}
    with pytest.raises(CeadError) as err:
        pex.select(big, [("c", {"a": "v"})])
    assert err.value.code == "pex.definition_invalid"


# ---- a reinstated approval is usable again; wallet.no_approval says why ----------------------------------------
def _suspendable_world(tmp_path):
    """A wallet holding an approval (with its delegation and a certification), each on its issuer's suspension
    list (index 1)."""
    from test_wallet_support import StaticFetcher, StatusListFixture
    holder, council, approver, cert_body = identity(), identity(), identity(), identity()
    fetcher = StaticFetcher()
    lists = {name: StatusListFixture(issuer, fetcher, f"https://status.example/{name}", purpose="suspension")
             for name, issuer in (("delegation", council), ("approval", approver), ("cert", cert_body))}
    w = make_wallet(tmp_path, holder, fetcher)
    delegation = vc(council, "DelegatedAuthorityCredential", delegation_subject(approver.did, council.did),
                    status=lists["delegation"].entry(1))
    approval = vc(approver, "DataSharingApprovalCredential",
                  approval_subject(council.did, holder.did, chain=[delegation], requirements=[CYBER_ESSENTIALS]),
                  status=lists["approval"].entry(1))
    cert = vc(cert_body, "OrganisationCertificationCredential", certification_subject(holder.did, CYBER_ESSENTIALS),
              status=lists["cert"].entry(1))
    for credential in (delegation, approval, cert):
        assert w.import_credential(credential).ok
    return w, lists, dict(delegation=delegation, approval=approval, cert=cert)


@pytest.mark.parametrize("name, code", [("approval", "wallet.no_approval"),
                                        ("delegation", "delegation.not_in_force"),
                                        ("cert", "wallet.certification_missing")])
def test_a_reinstated_credential_is_used_without_a_manual_status_check(tmp_path, name, code):
    """After a suspension the wallet saw (--check-status), a reinstatement made the transfer fail with
    wallet.no_approval (or .delegation_missing / .certification_missing) until someone re-checked by hand; the
    wallet now re-reads the status of what it last saw suspended when it finds nothing else to present."""
    w, lists, c = _suspendable_world(tmp_path)
    lists[name].set(1, True)                     # cead suspend
    assert [p.code for p in w.check_status()] == ["wallet.status_changed"]
    with pytest.raises(CeadError) as still:      # still suspended: re-checked, and refused
        select_for_transfer(w, DS_MEALS, P_MEALS)
    assert still.value.code == code
    if name == "approval":
        assert "is suspended" in still.value.message and still.value.detail["held"][0]["state"] == "suspended"
    if name == "delegation":                     # held, but suspended: said so, not "not held"
        assert "is suspended" in still.value.message and still.value.detail["status"] == "suspended"
    lists[name].set(1, False)                    # cead reinstate
    chosen = [r.credential for r in select_for_transfer(w, DS_MEALS, P_MEALS)]
    assert chosen == [c["approval"], c["delegation"], c["cert"]]
    assert {r.status_now for r in w.search()} == {"active"} and not w.warnings()
    headers = present_for_request(w, "GET", URL, None, dataset=DS_MEALS, purpose=P_MEALS)
    assert decode_manifest(headers["Cead-Transfer-Manifest"])["dataset"] == DS_MEALS


def test_a_reinstated_approval_is_offered_to_a_published_definition_too(tmp_path):
    from wallet.present import transfer_candidates
    w, lists, c = _suspendable_world(tmp_path)
    lists["approval"].set(1, True)
    w.check_status()
    assert c["approval"] not in [r.credential for r in transfer_candidates(w, DS_MEALS, P_MEALS)]
    lists["approval"].set(1, False)
    assert c["approval"] in [r.credential for r in transfer_candidates(w, DS_MEALS, P_MEALS)]


def test_a_reinstated_certification_is_offered_to_the_gateways_definition_too(tmp_path):
    """Review: a certification the wallet last saw suspended, reinstated since, was re-checked by
    select_for_transfer but not by transfer_candidates, so discovery with the gateway's own definition was
    pex.unsatisfied where naming the dataset worked."""
    from test_wallet_support import StaticFetcher, StatusListFixture
    from wallet.present import transfer_candidates
    council, holder, body = identity(), identity(), identity()
    fetcher = StaticFetcher()
    lists = StatusListFixture(body, fetcher, url="https://status.example/susp", purpose="suspension")
    w = make_wallet(tmp_path, holder, fetcher)
    approval = vc(council, "DataSharingApprovalCredential",
                  approval_subject(council.did, holder.did, requirements=[CYBER_ESSENTIALS]))
    cert = vc(body, "OrganisationCertificationCredential", certification_subject(holder.did, CYBER_ESSENTIALS),
              status=lists.entry(3))
    assert w.import_credential(approval).ok and w.import_credential(cert).ok
    lists.set(3, True)
    w.check_status()                              # the wallet sees the certification suspended
    lists.set(3, False)                           # ... and then it is reinstated
    definition = _gateway_definition({CYBER_ESSENTIALS: [body.did]})
    definition["input_descriptors"][0]["constraints"]["fields"][2]["filter"]["const"] = council.did
    assert select_credentials(w, dataset=DS_MEALS, purpose=P_MEALS, definition=definition) == [approval, cert]
    assert [r.credential for r in transfer_candidates(w, DS_MEALS, P_MEALS)] == [cert, approval]
    assert [r.credential for r in select_for_transfer(w, DS_MEALS, P_MEALS)] == [approval, cert]


def test_a_reinstated_pinned_credential_is_among_the_transfer_candidates(tmp_path):
    """Review: _held re-checked a pinned delegation last seen suspended, but transfer_candidates filtered what it
    found through the usable credentials it had listed before that re-check, so the delegation was left out."""
    from wallet.present import transfer_candidates
    w, lists, c = _suspendable_world(tmp_path)
    lists["delegation"].set(1, True)
    w.check_status()
    lists["delegation"].set(1, False)
    assert set(r.credential for r in transfer_candidates(w, DS_MEALS, P_MEALS)) == set(c.values())


def _counting(fetcher) -> list[str]:
    fetched: list[str] = []
    real = fetcher.get
    fetcher.get = lambda url: fetched.append(url) or real(url)
    return fetched


def test_one_selection_reads_each_status_list_once_and_keeps_the_verifiers_cache(tmp_path):
    """Review: every re-check cleared the wallet verifier's whole status-list cache and read the list again, so
    one selection re-checking an approval and then a certification on the same list fetched it twice. A selection
    now reads each list afresh once, in a verifier of its own, and leaves the wallet verifier's cache alone."""
    from test_wallet_support import StaticFetcher, StatusListFixture
    holder, approver = identity(), identity()       # the approver certifies too: one list for both
    fetcher = StaticFetcher()
    shared = StatusListFixture(approver, fetcher, "https://status.example/shared", purpose="suspension")
    w = make_wallet(tmp_path, holder, fetcher)
    approval = vc(approver, "DataSharingApprovalCredential",
                  approval_subject(approver.did, holder.did, requirements=[CYBER_ESSENTIALS]), status=shared.entry(1))
    cert = vc(approver, "OrganisationCertificationCredential", certification_subject(holder.did, CYBER_ESSENTIALS),
              status=shared.entry(2))
    assert w.import_credential(approval).ok and w.import_credential(cert).ok
    shared.set(1, True)
    shared.set(2, True)
    w.check_status()
    shared.set(1, False)
    shared.set(2, False)
    cleared: list[bool] = []
    w.verifier.status.clear = lambda _clear=w.verifier.status.clear: cleared.append(True) or _clear()
    fetched = _counting(fetcher)
    assert [r.credential for r in select_for_transfer(w, DS_MEALS, P_MEALS)] == [approval, cert]
    assert fetched == [shared.url] and cleared == []


def test_one_selection_re_checks_a_credential_still_suspended_once(tmp_path):
    """Two approvals pin the same delegation, still suspended: the candidates for a definition re-check it once."""
    from wallet.present import transfer_candidates
    w, lists, c = _suspendable_world(tmp_path)
    approver, council = lists["approval"].issuer, lists["delegation"].issuer
    second = vc(approver, "DataSharingApprovalCredential",
                approval_subject(council.did, w.holder, chain=[c["delegation"]], requirements=[CYBER_ESSENTIALS]))
    assert w.import_credential(second).ok
    lists["delegation"].set(1, True)
    w.check_status()
    fetched = _counting(lists["delegation"].fetcher)
    candidates = [r.credential for r in transfer_candidates(w, DS_MEALS, P_MEALS)]
    assert c["delegation"] not in candidates and {c["approval"], second} <= set(candidates)
    assert fetched == [lists["delegation"].url]


def test_a_revoked_approval_is_never_re_read_and_no_approval_says_so(tmp_path):
    w, lists, c = _suspendable_world(tmp_path)
    from sqlmodel import Session
    from wallet.store import WalletCredential
    record = next(r for r in w.search(type="DataSharingApprovalCredential"))
    with Session(w.engine) as s:                 # seen revoked by an earlier check (revocation is final)
        row = s.get(WalletCredential, record.id)
        row.status_now = "revoked"
        s.add(row)
        s.commit()
    fetched = []
    w.verifier.status.fetcher.get = lambda url, _get=w.verifier.status.fetcher.get: fetched.append(url) or _get(url)
    with pytest.raises(CeadError) as err:
        select_for_transfer(w, DS_MEALS, P_MEALS)
    assert err.value.code == "wallet.no_approval" and fetched == []
    assert f"{record.id} from {record.issuer} is revoked" in err.value.message
    assert err.value.detail["held"] == [{"id": record.id, "credentialId": record.credential_id,
                                         "issuer": record.issuer, "state": "revoked"}]


def test_no_approval_names_expired_approvals_and_the_purposes_held(tmp_path):
    holder, council = identity(), identity()
    w = make_wallet(tmp_path, holder)
    assert w.import_credential(vc(council, "DataSharingApprovalCredential", approval_subject(council.did, holder.did),
                                  valid_for=timedelta(days=2))).ok
    with pytest.raises(CeadError) as other_purpose:
        select_for_transfer(w, DS_MEALS, P_STATS)
    assert "other purposes: cead:FreeSchoolMealAutoEnrolment" in other_purpose.value.message
    from sqlmodel import Session
    from test_wallet_support import now
    from wallet.store import WalletCredential
    with Session(w.engine) as s:
        row = s.get(WalletCredential, w.search()[0].id)
        row.valid_until = now() - timedelta(seconds=1)
        s.add(row)
        s.commit()
    with pytest.raises(CeadError) as err:
        select_for_transfer(w, DS_MEALS, P_MEALS)
    assert err.value.code == "wallet.no_approval" and " is expired (since " in err.value.message
    assert err.value.detail["held"][0]["state"] == "expired"
    with pytest.raises(CeadError) as nothing:    # nothing held at all: the message says no more than that
        select_for_transfer(w, DS_CLOTHING)
    assert "held" not in nothing.value.detail and "cannot be used" not in nothing.value.message


def test_manifest_fields_are_laid_over_the_manifest_the_wallet_makes(populated):
    """A row count (required under maxRowsPerTransfer) or fewer columns, keeping what the wallet would have sent;
    by dataset, and from a published definition (discovery) alike."""
    w, c = populated
    headers = present_for_request(w, "GET", URL, None, dataset=DS_MEALS, purpose=P_MEALS,
                                  manifest_fields={"rowCount": 200, "columns": ["pupil_id"]})
    manifest = decode_manifest(headers["Cead-Transfer-Manifest"])
    assert manifest == {"dataset": DS_MEALS, "purpose": P_MEALS, "recipient": w.holder, "columns": ["pupil_id"],
                        "rowCount": 200}
    assert jwt_payload(decode_presentation(headers["Cead-Presentation"]))["nonce"] == request_binding(
        "GET", URL, None, manifest)
    definition = {"id": "d", "input_descriptors": [{"id": "approval", "constraints": {"fields": [
        {"path": ["$.type"], "filter": {"type": "array", "contains": {"const": "DataSharingApprovalCredential"}}}]}}]}
    discovered = present_for_request(w, "GET", URL, None, dataset=DS_MEALS, purpose=P_MEALS, definition=definition,
                                     manifest_fields={"rowCount": 7})
    assert decode_manifest(discovered["Cead-Transfer-Manifest"]) == {
        "dataset": DS_MEALS, "purpose": P_MEALS, "recipient": w.holder, "columns": ["pupil_id", "entitlement"],
        "rowCount": 7}
    whole = present_for_request(w, "GET", URL, None, {"dataset": DS_MEALS, "columns": ["entitlement"]},
                                dataset=DS_MEALS, manifest_fields={"rowCount": 1})
    assert decode_manifest(whole["Cead-Transfer-Manifest"]) == {"dataset": DS_MEALS, "columns": ["entitlement"],
                                                                "rowCount": 1}


def test_approvals_a_run_attestation_pins_are_presented_with_its_output(populated):
    """A computation's output is released only with every contributing party's own approval (the gateway's
    attestation.contributor_not_approved); those approvals are for the other parties' datasets, so the wallet adds
    the ones the manifest's run attestation pins, as it holds them."""
    w, c = populated
    pins = [{"party": "did:web:dundee.example", "commitment": "sha256-" + "B" * 43,
             "approval": {"id": jwt_payload(c["someone_elses"])["id"], "digest": credential_digest(c["someone_elses"])}},
            {"party": "did:web:perth.example", "commitment": "sha256-" + "C" * 43,
             "approval": {"id": "urn:uuid:not-held", "digest": "sha256-" + "D" * 43}}]
    attestation = {"type": ["VerifiableCredential", "ComputationRunAttestationCredential"],
                   "credentialSubject": {"inputs": pins}}

    def presented(**fields) -> list:
        headers = present_for_request(w, "GET", URL, None, dataset=DS_MEALS, purpose=P_MEALS, manifest_fields=fields)
        entries = jwt_payload(decode_presentation(headers["Cead-Presentation"]))["verifiableCredential"]
        return [e["id"].split(",", 1)[1] if isinstance(e, dict) and "id" in e else e for e in entries]

    assert c["someone_elses"] not in presented()
    chosen = presented(runAttestation=attestation)
    assert chosen == [c["approval"], c["leaf"], c["root"], c["cert"], c["someone_elses"]]   # the unheld one is not
    # a presentation definition chooses exactly what is presented: nothing is added to it
    only = {"id": "only-meals", "input_descriptors": [{"id": "a", "constraints": {"fields": [
        {"path": ["$.id"], "filter": {"type": "string", "const": jwt_payload(c["approval"])["id"]}}]}}]}
    headers = present_for_request(w, "GET", URL, None, {"dataset": DS_MEALS, "runAttestation": attestation},
                                  definition=only)
    entries = jwt_payload(decode_presentation(headers["Cead-Presentation"]))["verifiableCredential"]
    assert len(entries) == 1


def test_an_approval_whose_period_has_ended_is_not_presented_and_the_wallet_says_renew_it(tmp_path):
    """An approval whose validity runs on but whose period (its notAfter) has ended would be refused by the gateway:
    the wallet does not present it, by dataset or from a gateway's definition, and says in words which approval
    ended when and to renew it. An approval still in force is chosen over a newer one that has ended."""
    from test_wallet_support import _ts, now
    holder, council = identity(), identity()
    w = make_wallet(tmp_path, holder)
    subject = approval_subject(council.did, holder.did)
    subject["notAfter"] = _ts(now() - timedelta(days=1))
    ended = w.import_credential(vc(council, "DataSharingApprovalCredential", subject,
                                   valid_for=timedelta(days=3650)))
    assert ended.ok, ended.problems
    record = ended.record
    with pytest.raises(CeadError) as err:
        present_for_request(w, "GET", URL, None, dataset=DS_MEALS, purpose=P_MEALS)
    e = err.value
    assert e.code == "wallet.no_approval"
    assert f"approval {record.id} from {council.did} is expired (since {subject['notAfter']}" in e.message
    assert "the period it approves ended then (its notAfter)" in e.message
    assert "renew it" in e.message and "new approval for a new period" in e.message
    assert e.detail["held"] == [{"id": record.id, "credentialId": record.credential_id, "issuer": council.did,
                                 "state": "expired", "ends": subject["notAfter"], "endsBy": "notAfter",
                                 "validUntil": e.detail["held"][0]["validUntil"]}]
    assert e.detail["held"][0]["validUntil"] > subject["notAfter"]
    definition = {"id": "meals", "input_descriptors": [{"id": "approval", "constraints": {"fields": [
        {"path": ["$.type"], "filter": {"type": "array", "contains": {"const": "DataSharingApprovalCredential"}}}]}}]}
    with pytest.raises(CeadError) as discovered:                    # the gateway's definition, as in discovery
        present_for_request(w, "GET", URL, None, dataset=DS_MEALS, purpose=P_MEALS, definition=definition)
    assert discovered.value.code == "pex.unsatisfied" and "renew it" in discovered.value.message
    assert discovered.value.detail["held"][0]["endsBy"] == "notAfter" and discovered.value.detail["missing"]
    # an older approval still in force is presented, not the newer one that has ended
    in_force = w.import_credential(vc(council, "DataSharingApprovalCredential",
                                      approval_subject(council.did, holder.did))).record
    from sqlmodel import Session
    from wallet.store import WalletCredential
    with Session(w.engine) as s:                                    # received before the ended one
        row = s.get(WalletCredential, in_force.id)
        row.received_at = row.received_at - timedelta(days=30)
        s.add(row)
        s.commit()
    assert [r.id for r in select_for_transfer(w, DS_MEALS, P_MEALS)] == [in_force.id]
    headers = present_for_request(w, "GET", URL, None, dataset=DS_MEALS, purpose=P_MEALS, definition=definition)
    presented = jwt_payload(decode_presentation(headers["Cead-Presentation"]))["verifiableCredential"]
    assert [c["id"].removeprefix("data:application/vc+jwt,") for c in presented] == [in_force.credential]


# ---- an approval resting on a delegation that has ended is named as such, not as "not held" -----------------------
@pytest.mark.parametrize("ended_by", ["notAfter", "validUntil"])
def test_an_approval_under_a_delegation_that_has_ended_names_it_its_end_and_the_fix(tmp_path, ended_by):
    """The approval is in force, but the delegation it rests on has ended (its scope's notAfter, or its validUntil):
    the wallet said wallet.delegation_missing ("does not hold"), though it holds it. It now says
    delegation.not_in_force (the guard rail's code for the same fact), naming the delegation from whom to whom, the
    day it ended in words, and to ask for the approval to be renewed under a new delegation."""
    from sqlmodel import Session
    from schemas.words import moment_words
    from test_wallet_support import _ts, now
    from wallet.store import WalletCredential
    holder, council, approver = identity(), identity(), identity()
    w = make_wallet(tmp_path, holder)
    subject = delegation_subject(approver.did, council.did)
    ended_at = now().replace(microsecond=0) - timedelta(days=2)
    if ended_by == "notAfter":
        subject["scope"]["notAfter"] = _ts(ended_at)
    delegation = vc(council, "DelegatedAuthorityCredential", subject, valid_for=timedelta(days=3650))
    approval = vc(approver, "DataSharingApprovalCredential",
                  approval_subject(council.did, holder.did, chain=[delegation]))
    held = w.import_credential(delegation).record
    assert w.import_credential(approval).ok
    if ended_by == "validUntil":
        with Session(w.engine) as s:               # its validity ended two days ago
            row = s.get(WalletCredential, held.id)
            row.valid_until = ended_at
            s.add(row)
            s.commit()
    with pytest.raises(CeadError) as err:
        present_for_request(w, "GET", URL, None, dataset=DS_MEALS, purpose=P_MEALS)
    e = err.value
    assert e.code == "delegation.not_in_force", e.message
    assert f"rests on the delegation {jwt_payload(delegation)['id']} from {council.did} to {approver.did}" in e.message
    assert f"ended on {moment_words(ended_at)}" in e.message
    assert ("its notAfter" if ended_by == "notAfter" else "the end of its validity") in e.message
    assert "renew the approval" in e.message and "new delegation" in e.message
    assert "does not hold" not in e.message
    assert e.detail["status"] == "expired" and e.detail["endsBy"] == ended_by and e.detail["ends"] == _ts(ended_at)
    assert e.detail["delegation"] == jwt_payload(delegation)["id"]


def test_a_revoked_delegation_is_named_and_one_not_held_is_still_missing(tmp_path):
    w, lists, c = _suspendable_world(tmp_path)
    from sqlmodel import Session
    from wallet.store import WalletCredential
    record = next(r for r in w.search() if r.credential == c["delegation"])
    with Session(w.engine) as s:                    # as the wallet last read it
        row = s.get(WalletCredential, record.id)
        row.status_now = "revoked"
        s.add(row)
        s.commit()
    with pytest.raises(CeadError) as err:
        select_for_transfer(w, DS_MEALS, P_MEALS)
    assert err.value.code == "delegation.not_in_force" and err.value.detail["status"] == "revoked"
    assert "is revoked" in err.value.message and "renew the approval" in err.value.message
    w.delete(record.id)                             # genuinely not held: as before
    with pytest.raises(CeadError) as gone:
        select_for_transfer(w, DS_MEALS, P_MEALS)
    assert gone.value.code == "wallet.delegation_missing" and "does not hold" in gone.value.message


# ---- a derived approval whose UPSTREAM approval has ended is named as such, not as "not held" ----------------------
def _derived_world(tmp_path, *, ended_at=None, ended_by=None):
    """A recipient wallet holding a derived approval (from ``deriver``) that pins an upstream approval (by
    ``approver`` for ``council``'s school-meals data, to ``deriver``; on the approver's suspension list, index 1),
    the upstream's delegation and everything else it needs. ``ended_by``: the upstream approval ended at
    ``ended_at`` by its own ``notAfter`` or by its ``validUntil``."""
    from sqlmodel import Session
    from test_wallet_support import StaticFetcher, StatusListFixture, _ts
    from wallet.store import WalletCredential
    holder, deriver, council, approver = (identity() for _ in range(4))
    fetcher = StaticFetcher()
    suspension = StatusListFixture(approver, fetcher, "https://status.example/upstream", purpose="suspension")
    delegation = vc(council, "DelegatedAuthorityCredential", delegation_subject(approver.did, council.did))
    subject = approval_subject(council.did, deriver.did, chain=[delegation])
    if ended_by == "notAfter":
        subject["notAfter"] = _ts(ended_at)
    upstream = vc(approver, "DataSharingApprovalCredential", subject, status=suspension.entry(1))
    pin = {"id": jwt_payload(upstream)["id"], "digest": credential_digest(upstream)}
    derived = vc(deriver, "DataSharingApprovalCredential",
                 {**approval_subject(deriver.did, holder.did, datasets=[DS_CLOTHING]), "upstream": [pin]})
    w = make_wallet(tmp_path, holder, fetcher)
    for credential in (derived, delegation):
        assert w.import_credential(credential).ok
    held = w.import_credential(upstream).record
    assert held is not None
    if ended_by == "validUntil":
        with Session(w.engine) as s:
            row = s.get(WalletCredential, held.id)
            row.valid_until = ended_at
            s.add(row)
            s.commit()
    people = dict(holder=holder, deriver=deriver, council=council, approver=approver)
    return w, suspension, dict(upstream=upstream, derived=derived, delegation=delegation, pin=pin, held=held), people


@pytest.mark.parametrize("ended_by", ["notAfter", "validUntil"])
def test_an_upstream_approval_that_has_ended_is_named_with_its_end_and_the_fix(tmp_path, ended_by):
    """The derived approval is in force, but the upstream approval it pins has ended (the period it approves, its
    notAfter; or its validity): the wallet said wallet.upstream_missing ("does not hold"), though it holds it. It
    now says provenance.upstream.expired (the gateway's code for the same fact), naming the upstream approval in
    words (who approved sharing what with whom), the day it ended, and what to do."""
    from schemas.words import moment_words
    from test_wallet_support import _ts, now
    ended_at = now().replace(microsecond=0) - timedelta(days=2)
    w, _, c, p = _derived_world(tmp_path, ended_at=ended_at, ended_by=ended_by)
    with pytest.raises(CeadError) as err:
        present_for_request(w, "GET", URL, None, dataset=DS_CLOTHING)
    e = err.value
    assert e.code == "provenance.upstream.expired", e.message
    derived_id, upstream_id = jwt_payload(c["derived"])["id"], c["pin"]["id"]
    assert f"The approval {derived_id} is for data derived under the upstream approval {upstream_id}" in e.message
    assert (f"by which {p['approver'].did} approved sharing {DS_MEALS} from {p['council'].did} with "
            f"{p['deriver'].did}") in e.message
    assert f"ended on {moment_words(ended_at)}" in e.message
    assert ("the period it approves, its notAfter" if ended_by == "notAfter" else "the end of its validity") \
        in e.message
    assert "renew" in e.message and "approve the derived data again" in e.message
    assert "does not hold" not in e.message
    assert e.detail["status"] == "expired" and e.detail["endsBy"] == ended_by and e.detail["ends"] == _ts(ended_at)
    assert e.detail["upstream"] == upstream_id and e.detail["reference"] == c["pin"]
    assert e.detail["approval"] == derived_id and e.detail["issuer"] == p["approver"].did


def test_a_suspended_or_revoked_upstream_approval_is_named_and_one_not_held_is_still_missing(tmp_path):
    from sqlmodel import Session
    from wallet.store import WalletCredential
    w, suspension, c, p = _derived_world(tmp_path)
    assert [r.credential for r in select_for_transfer(w, DS_CLOTHING)][:2] == [c["derived"], c["upstream"]]
    suspension.set(1, True)                          # cead suspend, seen by the wallet
    assert [x.code for x in w.check_status()] == ["wallet.status_changed"]
    with pytest.raises(CeadError) as err:            # re-read live: still suspended
        select_for_transfer(w, DS_CLOTHING)
    assert err.value.code == "provenance.upstream.suspended" and err.value.detail["status"] == "suspended"
    assert "is suspended" in err.value.message and "reinstate" in err.value.message
    suspension.set(1, False)                         # cead reinstate: used again with no manual re-check
    assert [r.credential for r in select_for_transfer(w, DS_CLOTHING)][:2] == [c["derived"], c["upstream"]]
    with Session(w.engine) as s:                     # revoked, as the wallet last read it
        row = s.get(WalletCredential, c["held"].id)
        row.status_now = "revoked"
        s.add(row)
        s.commit()
    with pytest.raises(CeadError) as err:
        select_for_transfer(w, DS_CLOTHING)
    assert err.value.code == "provenance.upstream.revoked" and err.value.detail["status"] == "revoked"
    assert "is revoked" in err.value.message and "new approval" in err.value.message
    w.delete(c["held"].id)                           # genuinely not held: as before
    with pytest.raises(CeadError) as gone:
        select_for_transfer(w, DS_CLOTHING)
    assert gone.value.code == "wallet.upstream_missing" and "does not hold" in gone.value.message
    assert gone.value.detail["reference"] == c["pin"]


def test_an_ended_approval_two_hops_up_is_named_with_the_approval_that_pins_it(tmp_path):
    """Upstream of the upstream: the message says through which upstream approval the derived one rests on it."""
    from sqlmodel import Session
    from test_wallet_support import now
    from wallet.store import WalletCredential
    holder, deriver, middle, council = (identity() for _ in range(4))
    first = vc(council, "DataSharingApprovalCredential", approval_subject(council.did, middle.did))
    first_pin = {"id": jwt_payload(first)["id"], "digest": credential_digest(first)}
    second = vc(middle, "DataSharingApprovalCredential",
                {**approval_subject(middle.did, deriver.did, datasets=[DS_CLOTHING]), "upstream": [first_pin]})
    second_pin = {"id": jwt_payload(second)["id"], "digest": credential_digest(second)}
    derived = vc(deriver, "DataSharingApprovalCredential",
                 {**approval_subject(deriver.did, holder.did, datasets=[DS_CLOTHING]), "upstream": [second_pin]})
    w = make_wallet(tmp_path, holder)
    held = {}
    for name, credential in (("derived", derived), ("second", second), ("first", first)):
        held[name] = w.import_credential(credential).record
    with Session(w.engine) as s:
        row = s.get(WalletCredential, held["first"].id)
        row.valid_until = now() - timedelta(hours=1)
        s.add(row)
        s.commit()
    with pytest.raises(CeadError) as err:
        select_for_transfer(w, DS_CLOTHING)
    assert err.value.code == "provenance.upstream.expired"
    assert (f"The approval {jwt_payload(derived)['id']} is for data derived (through the upstream approval "
            f"{second_pin['id']}) under the upstream approval {first_pin['id']}") in err.value.message
    assert err.value.detail["pinnedBy"] == second_pin["id"] and err.value.detail["reference"] == first_pin


def test_an_upstream_approval_not_yet_in_force_is_named_with_its_start(tmp_path):
    """The period the upstream approval approves has not begun (its notBefore): provenance.upstream.invalid (as a
    gateway says of a credential not yet valid), status not_yet_valid, with the day it takes effect in words."""
    from schemas.words import moment_words
    from test_wallet_support import _ts, now
    holder, deriver, council = identity(), identity(), identity()
    starts = now().replace(microsecond=0) + timedelta(days=3)
    upstream = vc(council, "DataSharingApprovalCredential",
                  {**approval_subject(council.did, deriver.did), "notBefore": _ts(starts)})
    pin = {"id": jwt_payload(upstream)["id"], "digest": credential_digest(upstream)}
    derived = vc(deriver, "DataSharingApprovalCredential",
                 {**approval_subject(deriver.did, holder.did, datasets=[DS_CLOTHING]), "upstream": [pin]})
    w = make_wallet(tmp_path, holder)
    for credential in (derived, upstream):
        assert w.import_credential(credential).ok
    with pytest.raises(CeadError) as err:
        select_for_transfer(w, DS_CLOTHING)
    e = err.value
    assert e.code == "provenance.upstream.invalid" and e.detail["status"] == "not_yet_valid"
    assert e.detail["starts"] == _ts(starts) and f"does not take effect until {moment_words(starts)}" in e.message
    assert f"by which {council.did} approved sharing {DS_MEALS} with {deriver.did}" in e.message
