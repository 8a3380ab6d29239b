"""The demo's health and social care scenario (issue 13), as data and one step of its own.

NHS Greater Glasgow and Clyde shares daily delayed-discharge data with the Glasgow City Health and Social Care
Partnership to plan care for people ready to leave hospital: special category data under UK GDPR Art 6(1)(e) and
Art 9(2)(h) with DPA 2018 Schedule 1 Part 1 paragraph 2, the common-law duty of confidentiality met by a Public
Benefit and Privacy Panel approval, and the Caldicott Guardian's co-signature required by the board's delegation
to its DPO. The scenario shows the refusals and the allowed transfer:

- the DPO's node refuses to sign the same approval without an Art 9 condition (the lawful-basis guard rail);
- the HSCP's first pull is denied at the board's gateway: the Caldicott Guardian has not co-signed yet;
- the Caldicott Guardian co-signs (``issuer.issuing.cosign`` on their own node home) and the pull is allowed.
"""
from __future__ import annotations

from dataclasses import dataclass

DATASET = "https://data.nhsgg.scot.example/dataset/delayed-discharge-daily"


def cast() -> tuple:
    """The scenario's nodes (``demo_world.CAST`` adds them to the cast)."""
    from .demo_world import Party
    return (
        Party("nhs", "NHS Greater Glasgow and Clyde", "NHS GGC", plays=("did:web:nhsgg.scot.example",),
              data_prefix="https://data.nhsgg.scot.example/", data={"/delayed-discharge": {"dataset": DATASET}}),
        Party("hscp", "Glasgow City Health and Social Care Partnership", "Glasgow HSCP",
              plays=("did:web:glasgowhscp.example",)),
        Party("nhs-dpo", "NHS GGC Data Protection Officer", "NHS GGC DPO", org="nhs",
              plays=("did:web:nhsgg.scot.example:dpo",)),
        Party("nhs-cg", "NHS GGC Caldicott Guardian", "Caldicott Guardian", org="nhs",
              plays=("did:web:nhsgg.scot.example:caldicott-guardian",)),
    )


@dataclass(frozen=True)
class Cosign:
    """``cosigner`` adds its proof to an approval it is named in (coSigners) and returns it to the approval's issuer,
    who delivers it to ``deliver_to`` (an inbox takes a credential only from its issuer)."""
    cosigner: str
    example: str
    deliver_to: str


def script() -> list:
    from .demo_world import DELEGATES, Issue, Pull, Say
    return [
        Say("Health and social care: NHS Greater Glasgow and Clyde shares daily delayed-discharge data with the "
            "Glasgow City HSCP (Art 9(2)(h) with DPA 2018 Sch 1 Pt 1 para 2; a PBPP approval; the Caldicott "
            "Guardian must co-sign)."),
        Issue("certbody", "health-certification.json", deliver_to="hscp"),
        Issue("nhs", "health-delegation.json", deliver_to="nhs-dpo", changes={"name": DELEGATES["nhs-dpo"]}),
        Issue("nhs-dpo", "health-approval-refused-no-art9.json", under="health-delegation.json",
              refused="lawful.special_category_condition_missing"),
        Issue("nhs-dpo", "health-approval.json", deliver_to="hscp", under="health-delegation.json"),
        Pull("hscp", "nhs", "/delayed-discharge", "health-transfer-allowed.json", "deny", "approval.cosigner_missing",
             label="daily extract before the Caldicott Guardian co-signs"),
        Cosign("nhs-cg", "health-approval.json", deliver_to="hscp"),
        Pull("hscp", "nhs", "/delayed-discharge", "health-transfer-allowed.json", "allow",
             label="daily extract, co-signed by the Caldicott Guardian"),
    ]


def cosign(demo, step: Cosign) -> None:
    """The co-signer's node adds its proof (as ``cead cosign`` does); the approval's issuer delivers it."""
    from issuer import issuing
    live = demo.live[step.cosigner]
    signed = issuing.cosign(live._node, demo.issued[step.example])
    demo.issued[step.example] = signed
    demo.by_id[signed["id"]] = signed
    demo.echo(f"  - {live.party.name} co-signed {signed['id']}")
    issuer = signed["issuer"]["id"] if isinstance(signed["issuer"], dict) else signed["issuer"]
    sender = next(other for other in demo.live.values() if other.did == issuer)
    demo.deliver(sender, demo.live[step.deliver_to], signed, "DataSharingApprovalCredential")
