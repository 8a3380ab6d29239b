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
        w1, w2 = ready_node(tmp / "w1"), ready_node(tmp / "w2", "dundee.example")
        deputy = SimpleNamespace(did=node.did, key=node.key, kid=node.verification_method_id, name="deputy-web")
        w.d2 = w.delegation(w.iao, deputy, parent=w.d1, max_depth=0)
        w.approval = w.make_approval(deputy, chain=[w.d1, w.d2])
        transparency = {"require_for": ["approval"], "min_witnesses": 2, "max_age": 3600,
                        "witnesses": [witness.witness_key(w1).vkey(), witness.witness_key(w2).vkey()]}
        decider = w.decider(transparency=transparency,
                            network={"allow_private": True, "ca_bundle": str(bundle)})
        yield SimpleNamespace(w=w, node=node, w1=w1, w2=w2, deputy=deputy, decider=decider, bundle=str(bundle))


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


def test_one_witness_counts_once_however_many_of_its_keys_co_signed(env):
    """After a witness rotates its key, a checkpoint submitted again carries a cosignature by each of its keys; a
    policy that names both keys (as it must while older checkpoints are still in use) counts that witness once."""
    if "transparency.not_logged" in codes(decide(env)):
        _log(env, env.w.approval)
    log = record.log_of(env.node)
    for w in (env.w1, env.w2):
        witness.watch(w, log.key.vkey())    # (idempotent: the first test may have made them watch it)
        witness.submit(log, _poster(w))
    before = witness.witness_key(env.w1).vkey()
    env.w1.rotate_key()
    after = witness.witness_key(env.w1).vkey()
    assert after != before
    witness.submit(log, _poster(env.w1))     # co-signed again, now with the new key: both cosignatures kept
    both_keys = {"require_for": ["approval"], "min_witnesses": 2, "max_age": 3600, "witnesses": [before, after]}
    network = {"allow_private": True, "ca_bundle": env.bundle}
    one_witness = env.w.decider(transparency=both_keys, network=network)
    decision = one_witness.decide(env.w.present(request := env.w.request()), request)
    assert codes(decision) == {"transparency.witnesses_insufficient"}, [p.to_dict() for p in decision.reasons]
    problem = next(p for p in decision.reasons if p.code == "transparency.witnesses_insufficient")
    assert "co-signed by 1 of the witnesses" in problem.message
    two_witnesses = env.w.decider(transparency={**both_keys, "witnesses": [before, after,
                                                                          witness.witness_key(env.w2).vkey()]},
                                  network=network)
    decision = two_witnesses.decide(env.w.present(request := env.w.request()), request)
    assert decision.allowed, [p.to_dict() for p in decision.reasons]

