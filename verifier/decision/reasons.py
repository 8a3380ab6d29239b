"""Each reason a gateway gives for refusing a transfer, in plain words: for the people who read receipts and reports
rather than the gateway's answer (an auditor reading ``cead audit``'s report, a node's page of transfers, an
analyst), where only the code was kept. The gateway's own answer carries a full sentence for each reason; a receipt
keeps the codes (stable, and free of anything a message might quote), so these words say what a code means, not
what exactly was found. The code is always shown beside them.

``reason_words(code)``: the words for a code, else for its family (``transfer.*``: "the transfer does not match its
approval"), else the code itself: never a guess presented as a finding.
"""
from __future__ import annotations

FAMILIES = {
    "presentation": "the presentation sent with the request could not be accepted",
    "manifest": "the transfer's manifest could not be read",
    "approval": "the approval relied on is not in force or not valid",
    "delegation": "the approver's delegated authority does not hold",
    "holder": "the requester is not a recipient of the approval",
    "certification": "a certification the approval requires is not held",
    "transfer": "the transfer does not match its approval",
    "provenance": "the approvals the data were derived under do not hold",
    "protocol": "the privacy protocol the approval requires was not met",
    "attestation": "the computation's run attestation does not hold",
    "computation": "the privacy-preserving computation was not authorised",
    "lawful": "a lawful-basis rule is not met",
    "scope": "the approval is wider than its delegation",
    "status": "a credential's status could not be confirmed as in force",
    "proof": "a credential's signature does not verify",
    "jose": "a credential's signature does not verify",
    "did": "a signer's identifier (DID) could not be resolved",
    "credential": "a credential is malformed or out of date",
    "policy": "the gateway's trust policy could not be applied",
    "verifier": "the gateway could not complete its checks",
    "decision": "the gateway could not complete its checks",
}

WORDS = {
    # the presentation
    "presentation.missing": "no presentation was sent with the request",
    "presentation.malformed": "the presentation could not be read",
    "presentation.expired": "the presentation had expired",
    "presentation.not_yet_valid": "the presentation was not yet valid",
    "presentation.lifetime_invalid": "the presentation's lifetime is longer than the gateway allows",
    "presentation.audience_mismatch": "the presentation was made for another gateway",
    "presentation.binding_mismatch": "the presentation was made for another request",
    "presentation.nonce_mismatch": "the presentation answers another challenge",
    "presentation.holder_mismatch": "the presentation was signed by someone other than the requester",
    "presentation.id_missing": "the presentation has no identifier, so a replay could not be detected",
    "presentation.replayed": "the presentation had already been used (a replay)",
    "presentation.replay_guard_full": "the gateway could not record the presentation against replay (guard full)",
    "presentation.replay_guard_unavailable": "the gateway could not record the presentation against replay "
                                             "(store unavailable)",
    "presentation.credential_invalid": "a credential in the presentation is not valid",
    "manifest.missing": "the request carries no manifest of what moves",
    "manifest.invalid": "the transfer's manifest is malformed",
    # the approval and the authority behind it
    "approval.missing": "no data-sharing approval was presented",
    "approval.cosigner_missing": "a co-signer the approval names has not signed it",
    "approval.discloser_not_controller": "the approval's discloser is not the controller its delegation is from",
    "approval.controller_unknown": "the controller behind the approval is not one the gateway trusts",
    "approval.exceeds_delegation": "the approval grants more than the approver's delegation allows",
    "delegation.missing": "the approver's delegation was not presented",
    "delegation.no_chain": "the approval names no delegation of authority",
    "delegation.issuer_mismatch": "a delegation was issued by someone other than the one it should come from",
    "delegation.parent_mismatch": "a delegation does not rest on the delegation above it",
    "delegation.wrong_controller": "a delegation acts for another controller",
    "delegation.widens_parent": "a delegation grants more than the delegation above it",
    "delegation.action_not_allowed": "the delegation does not allow approving disclosures",
    "delegation.too_deep": "the chain of delegations is longer than the gateway allows",
    "holder.not_recipient": "the requester is not a recipient the approval names",
    "certification.missing": "the requester did not present a certification the approval requires",
    "certification.expired": "the requester's certification had expired",
    "certification.withdrawn": "the requester's certification had been withdrawn",
    "certification.untrusted_issuer": "the certification was issued by a body the gateway does not trust",
    # the transfer against the approval
    "transfer.dataset_not_approved": "the dataset is not one the approval covers",
    "transfer.dataset_mismatch": "the request is for another dataset than its manifest names",
    "transfer.column_not_approved": "a column outside those the approval allows",
    "transfer.too_many_columns": "the table has more columns than the gateway reads",
    "transfer.purpose_not_approved": "the purpose is not one the approval allows",
    "transfer.recipient_not_approved": "the recipient is not one the approval names",
    "transfer.recipient_mismatch": "the manifest names another recipient than the requester",
    "transfer.outside_cadence": "outside the times the approval allows transfers",
    "transfer.volume_exceeded": "more rows than the approval allows in one transfer",
    "transfer.row_count_missing": "no row count was stated where the approval limits rows",
    "transfer.row_count_invalid": "the stated row count is not a number of rows",
    "transfer.rows_uncounted": "the gateway could not count the rows where the approval limits them",
    "transfer.payload_unreadable": "the data sent are not a table the gateway can read",
    "transfer.body_too_large": "the data sent are larger than the gateway reads",
    # derived data
    "provenance.upstream_missing": "an approval the data were derived under was not presented",
    "provenance.upstream": "an approval the data were derived under is not valid",
    "provenance.controller_unknown": "the controller of upstream data is not one the gateway trusts",
    "provenance.discloser_not_upstream_recipient": "the discloser did not receive the upstream data it passes on",
    "provenance.cycle": "the approvals the data were derived under form a loop",
    "provenance.too_deep": "the data were derived through more approvals than the gateway follows",
    # privacy protocols and computations
    "protocol.cell_below_threshold": "a count describes fewer people than the approval's minimum",
    "protocol.secondary_suppression_missing": "a suppressed count could be worked out from the totals",
    "protocol.column_not_approved": "a column outside those the privacy protocol allows",
    "protocol.payload_missing": "the data were not available to check against the privacy protocol",
    "protocol.payload_unparseable": "the data could not be read to check the privacy protocol",
    "protocol.manifest_mismatch": "the data do not match what the manifest says of them",
    "protocol.malformed": "the approval's privacy protocol is malformed",
    "protocol.run_missing": "the computation's run was not described",
    "protocol.run_weaker_than_approved": "the computation ran with weaker protection than approved",
    "protocol.budget_exhausted": "the privacy budget for the period is spent",
    "protocol.budget_not_started": "the approval's privacy budget period has not begun",
    "protocol.budget_unaccounted": "the release could not be charged to the privacy budget",
    "protocol.release_limit": "more releases than the approval allows in the period",
    "protocol.ledger_unavailable": "the data owner's books of releases could not be read",
    "protocol.dominance_unverifiable": "the gateway could not check that no one contributor dominates a figure",
    "protocol.perturbation_unverifiable": "the gateway could not check the noise added to the figures",
    "protocol.compute_parties_not_independent": "the computing parties are not independent organisations",
    "protocol.output_party_not_allowed": "the result went to a party the approval does not allow",
    "protocol.tre_required": "the approval allows the data only inside a trusted research environment",
    "protocol.tre_not_accredited": "the research environment is not an accredited one",
    "protocol.tre_output_missing": "the output from the research environment had not been checked",
    "protocol.tre_output_receipt_missing": "no output-checking receipt came with the research output",
    "protocol.tre_output_receipt_invalid": "the output-checking receipt does not verify",
    "protocol.tre_output_receipt_mismatch": "the output-checking receipt is for other data",
    "protocol.tre_output_receipt_untrusted": "the output-checking receipt was signed by an environment not trusted",
    "attestation.missing": "no run attestation came with the computed result",
    "attestation.invalid": "the run attestation does not verify",
    "attestation.malformed": "the run attestation is malformed",
    "attestation.unsigned": "the run attestation is not signed by every party that ran it",
    "attestation.inconsistent": "the parties' run attestations disagree",
    "attestation.output_missing": "the run attestation does not cover this output",
    "attestation.output_mismatch": "the data are not the output the run attestation records",
    "attestation.protocol_not_approved": "the computation ran a protocol the approval does not allow",
    "attestation.weaker_than_approved": "the computation ran with weaker protection than approved",
    "attestation.contributor_not_approved": "a contributor's own approval was not presented",
    "attestation.signer_not_compute_party": "the attestation is signed by a party that did not compute",
    "attestation.too_few_input_parties": "fewer organisations contributed than the approval requires",
    "attestation.too_few_organisations": "fewer organisations took part than the approval requires",
    "computation.not_authorised": "a contributor's node did not authorise the computation",
    "computation.query_budget_exhausted": "the data owner's budget of queries is spent",
    # status and signatures
    "status.revoked": "a credential relied on had been revoked",
    "status.suspended": "a credential relied on was suspended",
    "status.stale": "a status list could not be read afresh in time",
    "status.unreachable": "a status list could not be fetched",
    "status.list_invalid": "a status list does not verify",
    "status.entry_invalid": "a credential's status entry is malformed",
    "status.index_out_of_range": "a credential's status entry points outside its list",
    "status.unsupported": "a credential uses a status mechanism the gateway does not read",
    "proof.signature_invalid": "a signature does not verify",
    "jose.signature_invalid": "a signature does not verify",
    "credential.expired": "a credential relied on had expired",
    "credential.date_invalid": "a credential's dates are invalid",
    "did.unreachable": "a signer's DID document could not be fetched",
    "did.not_found": "a signer's DID document was not found",
    "lawful.rulebook_digest_mismatch": "the lawful-basis rulebook is not the one the policy pins",
    "lawful.rulebook_invalid": "the lawful-basis rulebook could not be read",
    "verifier.internal_error": "the gateway failed while checking (nothing moved)",
    "decision.incomplete": "the gateway's checks did not all run (nothing moved)",
}


# a credential that failed, by its role (``verifier.decision.context.state_code``: "delegation.revoked")
ROLES = {"approval": "the approval", "delegation": "a delegation in the chain", "certification": "a certification",
         "upstream": "an upstream approval", "provenance": "an upstream approval"}
STATES = {"revoked": "had been revoked", "suspended": "was suspended", "expired": "had expired",
          "not_yet_valid": "was not yet in force", "status_stale": "had a status that could not be read afresh",
          "issuer_unreachable": "came from an issuer that could not be reached", "invalid": "is not valid"}


def reason_words(code: str) -> str:
    """A reason code in plain words (see the module's note); the code itself when nothing is known of it."""
    if not isinstance(code, str):
        return str(code)
    words = WORDS.get(code)
    if words is not None:
        return words
    family, _, rest = code.partition(".")
    if family in ROLES and rest in STATES:
        return f"{ROLES[family]} {STATES[rest]}"
    return FAMILIES.get(family, code)


def reasons_words(codes) -> str:
    """Several reasons for one decision: each in words, its code beside it ("a column outside those the approval
    allows (transfer.column_not_approved)"), joined with semicolons."""
    return "; ".join(f"{reason_words(c)} ({c})" if reason_words(c) != c else str(c) for c in codes or [])
