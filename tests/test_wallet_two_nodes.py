"""Two nodes on 127.0.0.1 (did:web over HTTPS with a test CA) and a data API behind the verifier middleware.

The provider's node issues an approval and delivers it to the recipient's inbox; the recipient's pipeline client
pulls three monthly updates, each with a new presentation; after the approval is revoked the fourth pull is denied
with the reason.
"""
from __future__ import annotations

from contextlib import ExitStack
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask, jsonify, request

from helpers_https import https_server
from issuer import issuing
from issuer.node import Node
from verifier.decision import Decider
from verifier.http import Fetcher
from verifier.middleware import CeadMiddleware
from verifier.policy import parse_policy
from wallet.app import create_node_app
from wallet.client import CeadAuth, TransferDenied, deliver
from wallet.store import Wallet, make_verifier

from test_wallet_support import approval_subject

DATASET = "https://data.example.gov.scot/dataset/school-meals"
PURPOSE = "cead:FreeSchoolMealAutoEnrolment"
PASSPHRASE = b"two nodes test passphrase"


class Late:
    """A WSGI app set after the server is listening (a did:web names the port, which is known only then)."""
    app = None

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


def _serve(stack: ExitStack) -> tuple[Late, str, str]:
    late = Late()
    base, ca = stack.enter_context(https_server(late))
    return late, base, ca


def test_approval_delivered_then_three_pulls_then_revoked(tmp_path):
    with ExitStack() as stack:
        (late_a, base_a, ca_a), (late_b, base_b, ca_b), (late_d, base_d, ca_d) = (_serve(stack) for _ in range(3))
        bundle = tmp_path / "ca-bundle.pem"
        bundle.write_text("".join(open(p).read() for p in (ca_a, ca_b, ca_d)))
        fetcher = Fetcher(allow_private=True, ca_bundle=str(bundle))

        nodes = {}
        for name, late, base in (("provider", late_a, base_a), ("recipient", late_b, base_b)):
            node, _ = Node.init(tmp_path / name, name.title(), PASSPHRASE, domain=urlsplit(base).netloc,
                                public_url=base)
            wallet = Wallet.from_node(node, verifier=make_verifier(fetcher))
            late.app = create_node_app(node, wallet=wallet)
            nodes[name] = (node, wallet)
        provider, _ = nodes["provider"]
        recipient, recipient_wallet = nodes["recipient"]
        assert provider.did.startswith("did:web:localhost%3A")

        # the data API, protected by the verifier middleware; the provider controls the dataset
        policy = parse_policy({"controllers": [{"dataset": DATASET, "controller": provider.did}],
                               "network": {"allow_private": True, "ca_bundle": str(bundle)},
                               "caches": {"status_lists": {"size": 16, "ttl": 0}}})
        seen = []
        api = Flask("data-api")

        @api.get("/meals")
        def meals():
            seen.append(request.headers["Cead-Presentation"])
            return jsonify({"month": request.args["month"], "rows": 3})

        api.wsgi_app = CeadMiddleware(api.wsgi_app, Decider(policy), dataset_for=lambda env: DATASET)
        late_d.app = api

        # 1. the provider issues an approval and delivers it to the recipient's inbox
        subject = approval_subject(provider.did, recipient.did, datasets=[DATASET], purposes=[PURPOSE])
        credential = {"@context": ["https://www.w3.org/ns/credentials/v2", "https://w3id.org/cead/v1"],
                      "type": ["VerifiableCredential", "DataSharingApprovalCredential"], "credentialSubject": subject}
        issued = issuing.issue(provider, credential, {"format": "vc+jwt"})
        answer = deliver(provider.did, provider.key, provider.verification_method_id, [issued.credential],
                         f"{base_b}/inbox", verify=str(bundle))
        stored = recipient_wallet.get(answer["stored"][0]["id"])
        assert stored.credential_id == issued.id and stored.status_at_receipt == "active"

        # 2. three monthly pulls, each with a new presentation
        session = requests.Session()
        auth = CeadAuth(recipient_wallet, dataset=DATASET, purpose=PURPOSE)
        for month in ("2025-01", "2025-02", "2025-03"):
            response = session.get(f"{base_d}/meals", params={"month": month}, auth=auth, verify=str(bundle))
            assert response.status_code == 200, response.text
            assert response.json() == {"month": month, "rows": 3}
        assert len(seen) == 3 and len(set(seen)) == 3

        # 3. the provider revokes the approval: the fourth pull is denied with the reason
        issuing.change_status(provider, issued.id, "revoke", reason="agreement ended")
        with pytest.raises(TransferDenied) as err:
            session.get(f"{base_d}/meals", params={"month": "2025-04"}, auth=auth, verify=str(bundle))
        assert err.value.status == 403
        assert "status.revoked" in [p.code for p in err.value.reasons]
        assert len(seen) == 3

        # and the recipient's wallet notices the change since receipt
        changed = recipient_wallet.check_status()
        assert [(p.code, p.detail["status"]) for p in changed] == [("wallet.status_changed", "revoked")]


def test_nodes_set_up_with_cead_init_serve_their_inboxes_with_cead_issuer_serve(tmp_path):
    """`cead init --ca-bundle --allow-private-addresses` then `cead issuer serve`: the recipient node's wallet
    resolves the sender's did:web and reads its status list on 127.0.0.1, so a delivery (an approval with the
    delegation it pins) is accepted and stored. A node without those settings cannot verify the same credential."""
    from click.testing import CliRunner

    from cead.cli import main
    from cead.processes import LocalCA, ProcessGroup, Service, free_port, python_argv
    from schemas.models import credential_digest
    from wallet.present import select_for_transfer

    from test_wallet_support import delegation_subject, identity, vc

    ca = LocalCA(tmp_path / "ca")
    env = {"CEAD_PASSPHRASE": PASSPHRASE.decode()}
    ports = {"sender": free_port(), "recipient": free_port()}
    for name, port in ports.items():
        result = CliRunner().invoke(main, [
            "init", "--name", name.title(), "--home", str(tmp_path / name), "--domain", f"127.0.0.1:{port}",
            "--public-url", f"https://127.0.0.1:{port}", "--ca-bundle", str(ca.ca_pem), "--allow-private-addresses"],
            env=env)
        assert result.exit_code == 0, result.output
    with ProcessGroup(ca) as group:
        for name, port in ports.items():
            argv = python_argv("issuer", "serve", "--home", str(tmp_path / name), "--port", str(port),
                               "--tls-cert", str(ca.cert_pem), "--tls-key", str(ca.key_pem))
            group.start(Service(name, argv, port, "/.well-known/did.json", tmp_path / f"{name}.log", env=env))
        for service_ in group.services:
            group.wait_ready(service_, timeout=60)
        sender, recipient = Node.open(tmp_path / "sender", PASSPHRASE), Node.open(tmp_path / "recipient")

        controller = identity()   # the controller's delegation to the sender (did:key, no status list)
        delegation = vc(controller, "DelegatedAuthorityCredential", delegation_subject(sender.did, controller.did))
        subject = approval_subject(controller.did, recipient.did, datasets=[DATASET], purposes=[PURPOSE],
                                   chain=[delegation])
        approval = issuing.issue(sender, {"@context": ["https://www.w3.org/ns/credentials/v2",
                                                       "https://w3id.org/cead/v1"],
                                          "type": ["VerifiableCredential", "DataSharingApprovalCredential"],
                                          "credentialSubject": subject}).credential
        assert approval["credentialStatus"]["statusListCredential"].startswith(f"https://127.0.0.1:{ports['sender']}")

        plain, _ = Node.init(tmp_path / "plain", "Plain", PASSPHRASE, domain="plain.example")
        refused = Wallet.from_node(plain).verifier.verify_credential(approval)
        assert [p.code for p in refused.problems] == ["http.address_refused"]

        answer = deliver(sender.did, sender.key, sender.verification_method_id, [approval, delegation],
                         f"https://127.0.0.1:{ports['recipient']}/inbox", verify=str(ca.ca_pem))
        assert [s["duplicate"] for s in answer["stored"]] == [False, False]
        wallet = Wallet.from_node(recipient)
        records = select_for_transfer(wallet, DATASET, PURPOSE)
        assert [r.digest for r in records] == [credential_digest(approval), credential_digest(delegation)]
        assert records[0].status_at_receipt == "active" and records[0].source == f"inbox:{sender.did}"


def test_a_reinstated_approval_is_pulled_under_again_without_a_manual_status_check(tmp_path):
    """`cead suspend`, the recipient's `wallet list --check-status` (the wallet marks it suspended), then
    `cead reinstate`: the next pull used to fail with wallet.no_approval until someone re-checked by hand; the
    wallet now re-reads the status of the approval it last saw suspended and pulls under it again."""
    from wallet.client import fetch
    from wallet.present import select_for_transfer
    from verifier.results import CeadError
    with ExitStack() as stack:
        (late_a, base_a, ca_a), (late_b, base_b, ca_b), (late_d, base_d, ca_d) = (_serve(stack) for _ in range(3))
        bundle = tmp_path / "ca-bundle.pem"
        bundle.write_text("".join(open(p).read() for p in (ca_a, ca_b, ca_d)))
        fetcher = Fetcher(allow_private=True, ca_bundle=str(bundle))
        nodes = {}
        for name, late, base in (("provider", late_a, base_a), ("recipient", late_b, base_b)):
            node, _ = Node.init(tmp_path / name, name.title(), PASSPHRASE, domain=urlsplit(base).netloc,
                                public_url=base)
            late.app = create_node_app(node, wallet=Wallet.from_node(node, verifier=make_verifier(fetcher)))
            nodes[name] = (node, Wallet.from_node(node, verifier=make_verifier(fetcher)))
        provider, recipient, wallet = nodes["provider"][0], nodes["recipient"][0], nodes["recipient"][1]
        policy = parse_policy({"controllers": [{"dataset": DATASET, "controller": provider.did}],
                               "network": {"allow_private": True, "ca_bundle": str(bundle)},
                               "caches": {"status_lists": {"size": 16, "ttl": 0}}})
        api = Flask("data-api")
        api.get("/meals")(lambda: jsonify({"rows": 3}))
        api.wsgi_app = CeadMiddleware(api.wsgi_app, Decider(policy), dataset_for=lambda env: DATASET)
        late_d.app = api

        subject = approval_subject(provider.did, recipient.did, datasets=[DATASET], purposes=[PURPOSE])
        issued = issuing.issue(provider, {"@context": ["https://www.w3.org/ns/credentials/v2",
                                                       "https://w3id.org/cead/v1"],
                                          "type": ["VerifiableCredential", "DataSharingApprovalCredential"],
                                          "credentialSubject": subject},
                               {"credentialStatus": {"type": "BitstringStatusListEntry",
                                                     "statusPurpose": ["revocation", "suspension"]}})
        assert wallet.import_credential(issued.credential).ok
        url = f"{base_d}/meals"
        assert fetch(wallet, url, dataset=DATASET, purpose=PURPOSE, verify=str(bundle)).json() == {"rows": 3}

        issuing.change_status(provider, issued.id, "suspend")
        assert [p.detail["status"] for p in wallet.check_status()] == ["suspended"]
        with pytest.raises(CeadError) as err:
            fetch(wallet, url, dataset=DATASET, purpose=PURPOSE, verify=str(bundle))
        assert err.value.code == "wallet.no_approval" and "is suspended" in err.value.message

        issuing.change_status(provider, issued.id, "reinstate")
        assert fetch(wallet, url, dataset=DATASET, purpose=PURPOSE, verify=str(bundle)).json() == {"rows": 3}
        assert [r.status_now for r in select_for_transfer(wallet, DATASET, PURPOSE)] == ["active"]
        assert wallet.warnings() == []
