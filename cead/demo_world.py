"""The cast of the demo and the scenario it plays, as data.

Every credential and transfer manifest comes from ``schemas/examples``; the demo only swaps the example DIDs for the
live nodes' DIDs (``Cast.substitute``) and re-pins ``{"id", "digest"}`` references to what was really signed.
Example parties that have no node in the demo (Perth and Kinross, an input party of the homelessness secure
aggregation) keep their example DIDs in the scripted steps: they are only named in protocol descriptions, never
resolved (``demo_computations`` gives Perth and Kinross a key of its own for the real run).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import schemas

EXAMPLES = Path(schemas.__file__).parent / "examples"


@dataclass(frozen=True)
class Party:
    """A node of the demo: an organisation (did:web) or a person issuing for it (did:key, ``org`` set)."""
    key: str
    name: str
    short: str
    plays: tuple[str, ...] = ()          # example DIDs this node stands for
    org: str | None = None               # for a person: the organisation they act for
    data: dict[str, dict] = field(default_factory=dict)   # data API routes: path -> {"dataset", "payloads"?}
    data_prefix: str | None = None       # dataset IRIs this organisation controls (trust policy)

    @property
    def is_person(self) -> bool:
        return self.org is not None

    @property
    def provides_data(self) -> bool:
        return bool(self.data)


CAST: tuple[Party, ...] = (
    Party("certbody", "Scottish Cyber Assurance (certification body)", "Cert body",
          plays=("did:web:iasme.example", "did:web:bsi-assurance.example")),
    Party("police", "Police Scotland", "Police Scotland", plays=("did:web:police.scot.example",),
          data_prefix="https://data.police.scot.example/",
          data={"/recorded-crime": {"dataset": "https://data.police.scot.example/dataset/recorded-crime-monthly"}}),
    Party("sg-justice", "Scottish Government Justice Analytical Services", "SG Justice",
          plays=("did:web:gov.scot.example:justice-analysis",)),
    Party("sg-childpov", "Scottish Government child-poverty and homelessness analysts", "SG Child Poverty",
          plays=("did:web:gov.scot.example:child-poverty-analysis",
                 "did:web:gov.scot.example:homelessness-statistics")),
    Party("sss", "Social Security Scotland", "Social Security Scot",
          plays=("did:web:socialsecurity.gov.scot.example",),
          data_prefix="https://data.socialsecurity.gov.scot.example/",
          data={"/scottish-child-payment": {
              "dataset": "https://data.socialsecurity.gov.scot.example/dataset/scottish-child-payment-recipients"}}),
    Party("fife", "Fife Council", "Fife Council",
          plays=("did:web:fife.example", "did:web:fife.example:education", "did:web:fife.example:housing"),
          data_prefix="https://data.fife.example/",
          data={"/homelessness-hl1": {
              "dataset": "https://data.fife.example/dataset/homelessness-applications-hl1",
              "payloads": {"2026Q3-draft": "homelessness-payload-refused-small-cell.csv"},
              "outputs": True}}),   # pooled tables from the secure aggregation Fife took part in (?output=)
    Party("dundee", "Dundee City Council", "Dundee City", plays=("did:web:dundeecity.example",)),
    # Glasgow's DPO acts for the council: the derived approval is signed by the council itself.
    Party("glasgow", "Glasgow City Council", "Glasgow City",
          plays=("did:web:glasgow.example", "did:web:glasgow.example:dpo"),
          data_prefix="https://data.glasgow.example/",
          data={"/scp-fsm-take-up": {"dataset": "https://data.glasgow.example/dataset/scp-fsm-take-up"}}),
    # people (did:key), each with a node home of their own so their status lists are served
    Party("police-iao", "Police Scotland Information Asset Owner (justice data)", "Police IAO", org="police",
          plays=("did:web:police.scot.example:iao:justice-data",)),
    Party("sss-dpo", "Social Security Scotland Data Protection Officer", "SSS DPO", org="sss",
          plays=("did:web:socialsecurity.gov.scot.example:dpo",)),
    Party("fife-dpo", "Fife Council Data Protection Officer", "Fife DPO", org="fife",
          plays=("did:web:fife.example:dpo",)),
    Party("fife-housing-iao", "Fife Council housing Information Asset Owner", "Fife Housing IAO", org="fife",
          plays=("did:web:fife.example:housing-iao",)),
)


# The names the demo's delegations give their delegates (credentialSubject.name, attested by the delegating
# organisation's or DPO's signature): other nodes' pages show "Jane Smith (Information Asset Owner for ...)"
# instead of the delegate node's address. Fictional people and a post.
DELEGATES = {"police-iao": "Jane Smith", "fife-dpo": "Alex Morgan", "fife-housing-iao": "Head of Housing Analysis",
             "sss-dpo": "Priya Shah", "nhs-dpo": "Morag Campbell"}


def party(key: str) -> Party:
    for p in CAST:
        if p.key == key:
            return p
    raise KeyError(key)


def load_example(name: str) -> Any:
    return json.loads((EXAMPLES / name).read_text(encoding="utf-8"))


def expected_cases() -> dict[tuple[str, str], dict]:
    """``schemas/examples/expected.json`` by (subject file, check)."""
    data = load_example("expected.json")
    return {(c["subject"], c["check"]): c for c in data["cases"]}


def vocabulary_file() -> Path:
    """The examples' vocabulary (DCAT ``isPartOf`` of the datasets), given to every node and data API."""
    return EXAMPLES / load_example("expected.json")["vocabulary"]


# ---- the script ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Say:
    text: str


@dataclass(frozen=True)
class Issue:
    """``issuer`` signs an example credential over its VC-API and delivers it to ``deliver_to``'s inbox.

    ``under``: the example of the signer's own delegation (the issuer's guard rail checks the new credential lies
    within it). ``refused``: the code the issuer is expected to refuse with (nothing is then delivered).
    """
    issuer: str
    example: str
    deliver_to: str | None = None
    under: str | None = None
    refused: str | None = None
    changes: dict = field(default_factory=dict)   # credentialSubject fields changed for the live run
    note: str = ""


@dataclass(frozen=True)
class Request:
    """``recipient``'s node sends a data-sharing request (``wallet.sharing.send_request``) to ``issuer``'s node,
    which approves it (``wallet.sharing.approve``, the function behind the approvals page) under its delegation
    ``under`` and delivers the approval to the requester's inbox.

    The request names what the approval ``example`` grants (datasets, data items, purposes, the recipient's lawful
    basis, cadence, agreement); the approver adds the rest of the example's subject.
    """
    recipient: str
    issuer: str
    example: str
    under: str
    justification: str


@dataclass(frozen=True)
class Pull:
    """``recipient``'s pipeline requests data from ``provider``'s API with a fresh presentation and a manifest."""
    recipient: str
    provider: str
    path: str
    manifest: str | dict
    expect: str                  # "allow" or "deny"
    reason: str | None = None    # the reason code a denial must carry
    changes: dict = field(default_factory=dict)
    query: str = ""
    label: str = ""
    present: tuple[str, ...] = ()   # examples to present explicitly (default: the wallet chooses by dataset)
    approval: str = ""              # manifest "derived": the approval example whose dataset, columns, purpose it asks


@dataclass(frozen=True)
class Revoke:
    issuer: str
    example: str


MONTHS_FULL = ("2026-08", "2026-09", "2026-10")
MONTHS_FAST = ("2026-09", "2026-10")


def script(fast: bool = False) -> list:
    months = MONTHS_FAST if fast else MONTHS_FULL
    steps: list = [
        Say("Certification: the certification body certifies the recipients' security."),
        Issue("certbody", "police-certification.json", deliver_to="sg-justice"),
        Issue("certbody", "fsm-certification.json", deliver_to="fife"),
        Issue("certbody", "homelessness-certification.json", deliver_to="sg-childpov"),

        Say("Justice statistics: Police Scotland's DPO delegates approval authority to an Information Asset Owner; "
            "Scottish Government justice analysts send a request for the monthly recorded-crime extract to the "
            "IAO's node, and the IAO approves it."),
        Issue("police", "police-delegation.json", deliver_to="police-iao", changes={"name": DELEGATES["police-iao"]}),
        Request("sg-justice", "police-iao", "police-approval.json", under="police-delegation.json",
                justification="Monthly recorded-crime extract for the Recorded Crime in Scotland statistics."),
        Say(f"The analysts' pipeline pulls {len(months)} monthly updates, each checked by the verifier at the "
            "Police Scotland gateway."),
    ]
    steps += [Pull("sg-justice", "police", "/recorded-crime", "police-transfer-allowed.json", "allow",
                   changes={"period": m}, query=f"?period={m}", label=f"monthly extract {m}") for m in months]
    steps += [
        Pull("sg-justice", "police", "/recorded-crime", "police-transfer-refused-new-column.json", "deny",
             "transfer.column_not_approved", query="?period=2026-11", label="extract with home_postcode added"),

        Say("Homelessness statistics: Fife's DPO sub-delegates to the housing IAO; a sub-delegation that would "
            "lower the minimum cell count to 5 is refused by the issuer's guard rail."),
        Issue("fife", "homelessness-delegation.json", deliver_to="fife-dpo", changes={"name": DELEGATES["fife-dpo"]}),
        Issue("fife-dpo", "homelessness-subdelegation-refused-min5.json", under="homelessness-delegation.json",
              refused="scope.too_wide"),
        Issue("fife-dpo", "homelessness-subdelegation.json", deliver_to="fife-housing-iao",
              under="homelessness-delegation.json", changes={"name": DELEGATES["fife-housing-iao"]}),
        Issue("fife-housing-iao", "homelessness-approval.json", deliver_to="sg-childpov",
              under="homelessness-subdelegation.json"),
        Say("A table that only declares it is a secure aggregation's output is no evidence: Fife's gateway refuses "
            "it without the run attestation (the real aggregation, and its release, come after the script)."),
        Pull("sg-childpov", "fife", "/homelessness-hl1", "homelessness-transfer-refused-small-cell.json", "deny",
             "attestation.missing", query="?table=2026Q3-draft",
             label="table declaring a secure aggregation, no run attestation"),

        Say("Free school meals: Social Security Scotland's DPO approves Fife's weekly extract for auto-enrolment."),
        Issue("sss", "fsm-delegation.json", deliver_to="sss-dpo", changes={"name": DELEGATES["sss-dpo"]}),
        Issue("sss-dpo", "fsm-approval.json", deliver_to="fife", under="fsm-delegation.json"),
        Pull("fife", "sss", "/scottish-child-payment", "fsm-transfer-allowed.json", "allow",
             label="weekly extract for auto-enrolment"),
        Pull("fife", "sss", "/scottish-child-payment", "fsm-transfer-refused-purpose.json", "deny",
             "transfer.purpose_not_approved", label="same data for school clothing grants"),

        Say("Child poverty: a private-set-intersection count with differential privacy, four releases a year "
            "(the PSI itself really runs after the script, SSS keeping the books)."),
        Issue("sss", "child-poverty-delegation.json", deliver_to="sss-dpo", changes={"name": DELEGATES["sss-dpo"]}),
        Issue("sss-dpo", "child-poverty-approval.json", deliver_to="glasgow", under="child-poverty-delegation.json"),
        # a manifest declaring a PSI with DP, and that nothing has been spent, is no evidence of a run
        Pull("glasgow", "sss", "/scottish-child-payment", "child-poverty-transfer-refused-fifth-release.json",
             "deny", "attestation.missing", label="DP count declared by Glasgow (manifest: 0 spent), no attestation"),

        Say("Glasgow's take-up report is a derived dataset: its approval is checked through the upstream approval."),
        # The example's report is due in 2027; the live run moves its window to now.
        Issue("glasgow", "child-poverty-derived-approval.json", deliver_to="sg-childpov",
              changes={"notBefore": "2026-11-01T00:00:00Z", "cadence": "R1/2026-11-15T00:00:00Z/P1M"},
              note="report window moved to now for the live run"),
        # a pipeline presenting only the derived approval (named explicitly), then the wallet's own choice, which
        # adds the upstream approval and the delegation behind it
        Pull("sg-childpov", "glasgow", "/scp-fsm-take-up", "derived", "deny", "provenance.upstream_missing",
             label="take-up report without its upstream approval", present=("child-poverty-derived-approval.json",),
             approval="child-poverty-derived-approval.json"),
        Pull("sg-childpov", "glasgow", "/scp-fsm-take-up", "derived", "allow", label="take-up report",
             approval="child-poverty-derived-approval.json"),

        Say("Revocation: the Police Scotland IAO revokes the approval; the next scheduled pull is denied."),
        Revoke("police-iao", "police-approval.json"),
        Pull("sg-justice", "police", "/recorded-crime", "police-transfer-allowed.json", "deny", "status.revoked",
             changes={"period": "2026-11"}, query="?period=2026-11", label="monthly extract after revocation"),
    ]
    from .demo_health import script as health_and_care   # issue 13: Art 9(2)(h), PBPP, Caldicott Guardian
    return steps + health_and_care()


def check_script_against_expected(steps: list) -> list[str]:
    """The script's expectations must agree with ``expected.json`` wherever both speak of the same example."""
    cases = expected_cases()
    problems = []
    for step in steps:
        if isinstance(step, Pull) and isinstance(step.manifest, str):
            case = cases.get((step.manifest, "transfer"))
            if case is not None and case["allowed"] != (step.expect == "allow") and not step.changes:
                problems.append(f"{step.manifest}: expected.json says allowed={case['allowed']}")
        if isinstance(step, Issue) and step.example.startswith("homelessness-subdelegation"):
            case = cases.get((step.example, "delegation_within"))
            if case is not None and case["allowed"] != (step.refused is None):
                problems.append(f"{step.example}: expected.json says allowed={case['allowed']}")
    return problems


def _with_health_and_care() -> tuple[Party, ...]:
    from .demo_health import cast
    return CAST + cast()


CAST = _with_health_and_care()
