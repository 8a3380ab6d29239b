"""A trust policy that requires logged, witnessed approvals: a valid but unlogged approval is denied; logged but
not yet witnessed, still denied; logged and co-signed by enough named witnesses, allowed. A key added to the DID
document without a log entry (a quiet re-key) is refused."""
from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest

from issuer.app import create_app
from issuer.evidence import record, witness
from issuer.keys import PrivateKey
from issuer.node import Node
from issuer_fixtures import PASS, ready_node
from helpers_https import https_server
from schemas.models import credential_digest
from transfer_world import codes, world
from verifier.policy import parse_policy
from verifier.results import CeadError


def _poster(node):
    def post(body):
        answer = witness.add_checkpoint(node, body)
        return answer.status, answer.body
    return post


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("policy")
    holder = {}
    with world() as w, https_server(lambda environ, start: holder["app"](environ, start)) as (base, ca):
        port = base.rsplit(":", 1)[1]
        node, _ = Node.init(tmp / "deputy", "Fife Housing IAO deputy", PASS, domain=f"localhost:{port}",
                            public_url=base)
        node._passphrase = PASS
        holder["app"] = create_app(node)
        bundle = tmp / "cas.pem"
        bundle.write_text(open(w.ca_bundle).read() + open(ca).read())
        w1, w2 = ready_node(tmp / "w1"), ready_node(tmp / "w2")
        deputy = SimpleNamespace(did=node.did, key=node.key, kid=node.verification_method_id, name="deputy-web")
        w.d2 = w.delegation(w.iao, deputy, parent=w.d1, max_depth=0)
        w.approval = w.make_approval(deputy, chain=[w.d1, w.d2])
        transparency = {"require_for": ["approval"], "min_witnesses": 2, "max_age": 3600,
                        "witnesses": [witness.witness_key(w1).vkey(), witness.witness_key(w2).vkey()]}
        decider = w.decider(transparency=transparency,
                            network={"allow_private": True, "ca_bundle": str(bundle)})
        yield SimpleNamespace(w=w, node=node, w1=w1, w2=w2, deputy=deputy, decider=decider)


def decide(env):
    request = env.w.request()
    return env.decider.decide(env.w.present(request), request)


def _log(env, credential, vm=None):
    record.issued(env.node, None, credential_id=env.w.doc(credential)["id"], types=["DataSharingApprovalCredential"],
                  digest=credential_digest(credential), verification_method=vm or env.deputy.kid)


def test_unlogged_then_logged_then_witnessed(env):
    decision = decide(env)   # valid in every other way, but not in the issuer's log
    assert not decision.allowed and codes(decision) == {"transparency.not_logged"}, [p.to_dict() for p in decision.reasons]
    _log(env, env.w.approval)
    decision = decide(env)   # logged, but no witness has co-signed a checkpoint that includes it
    assert codes(decision) == {"transparency.witnesses_insufficient"}
    log = record.log_of(env.node)
    witness.watch(env.w1, log.key.vkey())
    witness.submit(log, _poster(env.w1))
    decision = decide(env)   # one witness of the two the policy asks for
    assert codes(decision) == {"transparency.witnesses_insufficient"}
    witness.watch(env.w2, log.key.vkey())
    witness.submit(log, _poster(env.w2))
    decision = decide(env)
    assert decision.allowed, [p.to_dict() for p in decision.reasons]


def test_a_key_added_without_a_log_entry_is_refused(env):
    node = env.node
    quiet = PrivateKey.generate()
    node.config["keys"].append({"id": "key-quiet", "kind": "Ed25519", "file": "keys/none.pem",
                                "public": quiet.public.to_multikey(), "status": "previous", "created": "x"})
    try:
        env.decider.verifier.resolver.clear()
        kid = f"{node.did}#key-quiet"
        signer = SimpleNamespace(did=node.did, key=quiet, kid=kid, name="quiet")
        approval = env.w.make_approval(signer, chain=[env.w.d1, env.w.d2])
        _log(env, approval, kid)
        log = record.log_of(node)
        for w in (env.w1, env.w2):
            witness.submit(log, _poster(w))
        request = env.w.request()
        bundle = [approval, env.w.d1, env.w.d2, env.w.cert]
        decision = env.decider.decide(env.w.present(request, bundle), request)
        assert codes(decision) == {"transparency.key_not_logged"}, codes(decision)
    finally:
        node.config["keys"].pop()
        env.decider.verifier.resolver.clear()


def test_policy_names_real_witness_keys():
    with pytest.raises(CeadError) as err:
        parse_policy({"transparency": {"witnesses": ["not a key"], "min_witnesses": 1}})
    assert err.value.code == "policy.invalid"
    with pytest.raises(CeadError):
        parse_policy({"transparency": {"witnesses": [], "min_witnesses": 1}})
