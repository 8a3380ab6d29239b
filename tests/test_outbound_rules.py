"""Outbound requests under the node's network rules (docs/security.md, "Outbound requests"), each against a real
HTTPS server on 127.0.0.1: with the node's default settings the request is refused, naming the address and the
setting that allows it (``network.allow_private``), both when the name resolves to 127.0.0.1 at once and when it
resolves to a public address for the check and to 127.0.0.1 for the connection (DNS rebinding: only the check on
the connected socket catches it); with ``allow_private`` it goes through.

The requests: the computations' DID and status-list fetches (``wallet.computations.attest.node_verifier``, also
inside the PSI holder's and the aggregation parties' processes), webhook notifications, checkpoints posted to a
witness, and ``cead wallet import URL``. They were sent with private addresses always allowed, or checked before
the request but not on the socket, or not checked at all."""
from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone

import pytest
import yaml
from click.testing import CliRunner

from helpers_https import https_server, rebinding
from issuer import notifications
from issuer.evidence import record, witness
from issuer.node import Node
from issuer_fixtures import PASS, make_node, ready_node
from verifier.http import Fetcher
from verifier.policy import Network
from verifier.results import CeadError

REFUSED_NOW = "resolves to non-public address 127.0.0.1"          # the check when the name is resolved
REFUSED_ON_SOCKET = "connected to non-public address 127.0.0.1"    # the check on the connected socket
SETTING = "network.allow_private: true"


def _named(message: str, how: str) -> None:
    """A refusal says what was refused, why, and which setting allows it (for a local test)."""
    assert how in message and SETTING in message and "--allow-private-addresses" in message, message


def _with_network(node: Node, **network) -> Node:
    """``node`` reopened with its config.yaml ``network`` section changed (as an operator edits it)."""
    config = yaml.safe_load((node.home / "config.yaml").read_text())
    config["network"] = {**(config.get("network") or {}), **network}
    (node.home / "config.yaml").write_text(yaml.safe_dump(config))
    return Node.open(node.home, PASS)


# ---- Fetcher.post itself -----------------------------------------------------------------------------------------

def test_fetcher_post_follows_no_redirect_and_limits_the_answer():
    from werkzeug.wrappers import Request, Response

    def app(environ, start_response):
        path = Request(environ).path
        if path == "/moved":
            return Response(status=307, headers={"Location": "https://169.254.169.254/"})(environ, start_response)
        return Response(b"x" * 2000)(environ, start_response)

    with https_server(app) as (base, ca):
        fetcher = Fetcher(allow_private=True, ca_bundle=ca, max_bytes=1000)
        moved = fetcher.post(base + "/moved", b"{}")
        assert moved.status == 307 and moved.body == b""                   # told, not followed
        with pytest.raises(CeadError) as info:
            fetcher.post(base + "/big", b"{}")
        assert info.value.code == "http.too_large"
        with pytest.raises(CeadError) as info:
            Fetcher(allow_private=True).post(base + "/big", b"{}")          # the node's CA bundle is what trusts it
        assert info.value.code == "http.certificate_untrusted"

# ---- the computations' fetches (DID documents, status lists) ----------------------------------------------------

def _psi_approval(w, name: str):
    """A holder, a learner and the holder's approval; ``name`` keeps each test's status lists its own."""
    from computations_world import approval, psi_protocol
    from transfer_world import Party
    sss, glasgow = Party(f"sss-{name}"), Party(f"glasgow-{name}")
    return sss, glasgow, approval(w, sss, recipients=[glasgow.did], protocol=psi_protocol(sss.did, glasgow.did))


def test_a_computation_node_reads_status_lists_under_its_own_network_rules(w):
    """``node_verifier`` fetched with private addresses always allowed, whatever the node's
    ``network.allow_private``: a PSI holder reached through a proxy would fetch from an address a learner chose.
    Now it takes the node's settings; the approval's status list is on 127.0.0.1 here."""
    from verifier.attestation import approval_allows_run
    from wallet.computations.attest import node_verifier
    sss, glasgow, credential = _psi_approval(w, "verifier")
    run = [{"kind": "psiCardinality", "parties": [sss.did, glasgow.did], "learners": [glasgow.did]},
           {"kind": "differentialPrivacy", "epsilon": 50.0, "delta": 1e-6}]

    def why(network):
        return approval_allows_run(credential, sss.did, "psiCardinality", run, [glasgow.did],
                                   verifier=node_verifier(network))

    refused = why(Network(ca_bundle=w.ca_bundle))                      # a node's defaults
    assert refused.startswith("its approval does not verify (status.unreachable")
    _named(refused, REFUSED_NOW)
    with rebinding() as fooled:
        refused = why({"ca_bundle": w.ca_bundle})
    assert fooled, "the check at resolution was made (and fooled)"
    _named(refused, REFUSED_ON_SOCKET)
    assert why(Network(allow_private=True, ca_bundle=w.ca_bundle)) is None
    assert why(Fetcher(allow_private=True, ca_bundle=w.ca_bundle)) is None      # node.fetcher() is taken too
    assert why(w.network) is None                                              # as a process's config gives it
    for wrong in (w.ca_bundle, {"allow_private": "perhaps"}, {"allow_privat": True}):
        with pytest.raises(CeadError) as info:
            node_verifier(wrong)                  # the old node_verifier(ca_bundle) form is refused, not guessed
        assert info.value.code == "computation.config_invalid", wrong


def test_the_psi_holder_process_checks_its_approval_under_the_network_it_is_given(w, tmp_path):
    """The holder's own process (``python -m wallet.computations.psi serve``) read status lists with private
    addresses allowed; now with its config's ``network``: a holder with the defaults refuses the query, naming
    the address and the setting."""
    from computations_world import psi_holder
    from verifier.credential import Verifier
    from wallet.computations.attest import Signer
    from wallet.computations.psi import PsiRefused, run_psi_cardinality
    sss, glasgow, credential = _psi_approval(w, "holder")
    items = [f"person-{i}" for i in range(200)]
    with psi_holder(sss, items, credential, tmp_path / "holder", network={"ca_bundle": w.ca_bundle}) as (url, ca):
        with pytest.raises(PsiRefused) as info:
            run_psi_cardinality(url, Signer(glasgow.did, glasgow.key, glasgow.kid), items, credential,
                                holder=sss.did, epsilon=50.0, delta=1e-6, verifier=Verifier(), ca_bundle=ca)
    assert info.value.problem.code == "computation.not_authorised"
    _named(info.value.problem.message, REFUSED_NOW)
    with psi_holder(sss, items, credential, tmp_path / "allowed", network=w.network) as (url, ca):
        result = run_psi_cardinality(url, Signer(glasgow.did, glasgow.key, glasgow.kid), items, credential,
                                     holder=sss.did, epsilon=50.0, delta=1e-6, verifier=Verifier(), ca_bundle=ca)
    assert result.attestation and result.run_id


def test_the_aggregation_parties_check_their_approvals_under_the_network_they_are_given(w, tmp_path):
    """Each secure-aggregation party's process gets the network settings in its config: with the defaults every
    party withholds (its approval's status list is on 127.0.0.1), and says why; with ``allow_private`` they run."""
    from computations_world import aggregation_inputs, aggregation_protocol, approval
    from transfer_world import Party
    from wallet.computations.aggregation import run_secure_aggregation
    sg, councils = Party("sg-agg"), [Party("fife-agg"), Party("dundee-agg"), Party("pkc-agg")]
    protocol = aggregation_protocol(councils, sg.did)
    approvals = [approval(w, c, recipients=[sg.did], protocol=[protocol]) for c in councils]
    cells = ["a", "b"]
    tables = [{"a": 1, "b": 2}, {"a": 3, "b": 4}, {"a": 5, "b": 6}]
    refused = run_secure_aggregation(aggregation_inputs(councils, tables, approvals, tmp_path / "refused"),
                                     cells=cells, output_parties=[sg.did], network={"ca_bundle": w.ca_bundle})
    assert refused.output is None and {r["party"] for r in refused.refused} == {c.did for c in councils}
    for party in refused.refused:
        assert party["code"] == "computation.not_authorised"
        _named(party["reason"], REFUSED_NOW)
    ran = run_secure_aggregation(aggregation_inputs(councils, tables, approvals, tmp_path / "ran"), cells=cells,
                                 output_parties=[sg.did], network=w.network)
    assert ran.table == {"a": 9, "b": 12} and not ran.refused


# ---- webhook notifications -------------------------------------------------------------------------------------

class Receiver:
    def __init__(self):
        self.calls, self.lock = [], threading.Lock()

    def __call__(self, environ, start_response):
        from werkzeug.wrappers import Request, Response
        with self.lock:
            self.calls.append(Request(environ).path)
        return Response(status=204)(environ, start_response)


def test_webhooks_are_posted_only_where_the_node_may_connect(tmp_path):
    """The webhook's address was checked before the POST, which a plain session then sent: a name that resolved
    public for the check and to 127.0.0.1 for the connection was posted to. Now the POST goes through the node's
    fetcher, whose connections check the peer."""
    receiver = Receiver()
    with https_server(receiver) as (base_url, ca_bundle):
        node = make_node(tmp_path / "h", public_url="https://fife.example", network={"ca_bundle": ca_bundle})
        config = yaml.safe_load((node.home / "config.yaml").read_text())
        config["notifications"] = [{"name": "ig", "url": base_url + "/hooks/ig", "events": ["credential.revoked"]}]
        (node.home / "config.yaml").write_text(yaml.safe_dump(config))
        node = Node.open(node.home, PASS)
        assert notifications.notify(node, "credential.revoked", {"credential": "urn:uuid:x"}) == 1
        now = datetime.now(timezone.utc)

        def attempt(node, minutes):
            counts = notifications.deliver_due(node, now=now + timedelta(minutes=minutes))
            (row,) = notifications.outbox(node)
            return counts, row

        counts, row = attempt(node, 0)
        assert counts == {"delivered": 0, "retrying": 1, "failed": 0}
        assert row.last_error.startswith("http.address_refused: Refusing to post to")
        _named(row.last_error, REFUSED_NOW)
        with rebinding() as fooled:
            counts, row = attempt(node, 5)
        assert fooled and counts["retrying"] == 1
        _named(row.last_error, REFUSED_ON_SOCKET)
        assert receiver.calls == []                                        # nothing reached the receiver
        counts, row = attempt(_with_network(node, allow_private=True), 60)
        assert counts == {"delivered": 1, "retrying": 0, "failed": 0} and row.delivered_at
        assert receiver.calls == ["/hooks/ig"]


# ---- checkpoints posted to a witness ---------------------------------------------------------------------------

def test_checkpoints_are_posted_to_a_witness_under_the_node_s_network_rules(tmp_path):
    """``http_poster(url, ca_bundle)`` posted with a plain ``requests`` call: no address check at all. It now
    takes the submitting node's fetcher."""
    from issuer.app import create_app
    w = ready_node(tmp_path / "w")
    with https_server(create_app(w)) as (base, ca):
        log_node = make_node(tmp_path / "log", public_url="https://log.example", network={"ca_bundle": ca})
        log_node._passphrase = PASS
        log = record.log_of(log_node)
        witness.watch(w, log.key.vkey())
        with pytest.raises(CeadError) as info:
            witness.submit(log, witness.http_poster(base + "/witness", log_node.fetcher()))
        assert info.value.code == "tlog.witness_unreachable" and info.value.detail["cause"] == "http.address_refused"
        _named(info.value.message, REFUSED_NOW)
        with rebinding() as fooled, pytest.raises(CeadError) as info:
            witness.submit(log, witness.http_poster(base + "/witness", log_node.fetcher()))
        assert fooled
        _named(info.value.message, REFUSED_ON_SOCKET)
        assert witness.seen(w, log.origin) is None                          # the witness saw nothing
        allowed = _with_network(log_node, allow_private=True)
        cosigned = witness.submit(log, witness.http_poster(base + "/witness", allowed.fetcher()))
        assert witness.witness_name(w) in cosigned and witness.seen(w, log.origin)
        with pytest.raises(TypeError):
            witness.http_poster(base + "/witness", ca)                  # the old form (a CA bundle path)


# ---- cead wallet import URL -------------------------------------------------------------------------------------

def test_wallet_import_fetches_a_url_under_the_node_s_network_rules(tmp_path, monkeypatch):
    """`cead wallet import URL` fetched with a plain ``requests.get`` (redirects followed, no address check): any
    URL, or a redirect from one, made the node fetch from its own network."""
    from cead.cli import main
    from test_wallet_support import approval_subject, identity, vc
    issuer = identity()
    credential = vc(issuer, "DataSharingApprovalCredential", approval_subject(issuer.did, "did:web:x.example"))
    monkeypatch.setenv("CEAD_PASSPHRASE", PASS.decode())
    with https_server(static={"/approval.jwt": credential.encode()}) as (base, ca):
        home = make_node(tmp_path / "h", network={"ca_bundle": ca}).home
        monkeypatch.setenv("CEAD_HOME", str(home))

        def run():
            return CliRunner().invoke(main, ["wallet", "import", base + "/approval.jwt"])

        def error(result):
            assert result.exit_code == 2 and "Traceback" not in result.output, result.output
            return json.loads(result.stderr.strip().splitlines()[-1])["error"]

        refused = error(run())
        assert refused["code"] == "input.unreadable" and refused["detail"]["cause"] == "http.address_refused"
        _named(refused["message"], REFUSED_NOW)
        with rebinding() as fooled:
            refused = error(run())
        assert fooled
        _named(refused["message"], REFUSED_ON_SOCKET)
        assert json.loads(CliRunner().invoke(main, ["wallet", "list", "--json"]).output)["credentials"] == []
        _with_network(Node.open(home, PASS), allow_private=True)
        stored = run()
        assert stored.exit_code == 0, stored.output
        assert json.loads(stored.output)["stored"]["issuer"] == issuer.did

