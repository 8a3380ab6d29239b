"""Private set intersection cardinality between two nodes over HTTPS, with OpenMined's ``openmined-psi``
(ECDH-based PSI, cardinality only: the learner learns |A ∩ B| and nothing about which members are shared; the
other party learns only the size of the learner's set).

Roles: the *holder* (the non-learning party, e.g. Social Security Scotland) serves ``psi_app``; the *learner*
(e.g. Glasgow) calls ``run_psi_cardinality``. Before taking part:

- the holder checks the learner's presentation (a ``vp+jwt`` by the learner bound to the request's SHA-256), that
  its own approval allows the run (``verifier.attestation.approval_allows_run``: it is the holder's, it allows a
  ``psiCardinality`` at least as strict, the learner is a learner and a recipient), minimum set sizes on both
  sides, and charges its query budget (``budget.QueryBudget``) before answering;
- the learner checks the same approval names it as learner and recipient, before sending anything.

Differential privacy: the holder draws the noise, so the learner never sees the exact count. The learner adds
``2T`` public decoy identifiers (``cead-decoy:<run>:<i>``) to its set; the holder adds ``T + L`` of them to its own
set, ``L`` a discrete Laplace draw of scale ``1/epsilon`` truncated to [-T, T]. The learner obtains
|A ∩ B| + T + L and releases that minus T. The truncation makes the mechanism (epsilon, delta)-DP with
``delta`` the probability that ``|L| > T`` (``T`` is chosen from the approval's delta). Sensitivity 1: adding or
removing one person changes |A ∩ B| by at most one. Threat model: semi-honest (a learner that leaves the decoys
out of its set would see the exact count plus the holder's extra decoys no longer matched: it gains nothing about
L, but the semi-honest model is what the approval must name).

The run ends with a run attestation issued by the learner (which alone knows the output) and co-signed by the
holder, after the holder has compared it with what it recorded for the run.
"""
from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import secrets
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from flask import Flask, jsonify, request

from schemas.attestation import commitment, output_digest
from schemas.errors import CeadError, Problem
from schemas.values import xsd_datetime
from schemas.models import DataSharingApproval, DifferentialPrivacy, PsiCardinality, Ref, credential_digest
from verifier.attestation import approval_allows_run
from verifier.credential import Verifier
from verifier.protocols import parse_protocols

from .attest import (KEY_PASSPHRASE_ENV, Signer, combine, new_run_id, node_verifier, now_utc, read_key, sign,
                     unsigned_attestation)
from .budget import QueryBudget

IMPLEMENTATION = "openmined-psi"
PRESENTATION_HEADER = "Cead-Presentation"
DEFAULT_MIN_SET_SIZE = 100
MAX_DECOYS = 100_000
MAX_REQUEST_BYTES = 256 * 1024 * 1024   # a blinded set of a few million identifiers
_random = random.SystemRandom()


def implementation_version() -> str:
    from importlib.metadata import version
    return version("openmined-psi")


def _psi():
    import private_set_intersection.python as psi
    return psi


# ---- the noise ------------------------------------------------------------------------------------------------

def decoy_offset(epsilon: float, delta: float) -> int:
    """T such that a discrete Laplace(1/epsilon) draw exceeds T in absolute value with probability <= delta."""
    if not (epsilon > 0 and 0 < delta < 1):
        raise CeadError("computation.mechanism_unsupported", "PSI noise needs epsilon > 0 and 0 < delta < 1.")
    # P(|L| > T) = 2 e^{-eps (T+1)} / (1 + e^{-eps})
    t = math.ceil(math.log(2 / (delta * (1 + math.exp(-epsilon)))) / epsilon - 1)
    t = max(t, 0)
    if 2 * t > MAX_DECOYS:
        raise CeadError("computation.mechanism_unsupported", f"epsilon {epsilon} with delta {delta} would need "
                        f"{2 * t} decoys (at most {MAX_DECOYS}); ask for a larger epsilon or delta.")
    return t


def _geometric(p: float) -> int:
    """Failures before the first success, success probability p (inverse transform)."""
    u = 1.0 - _random.random()          # (0, 1]
    return int(math.floor(math.log(u) / math.log(1.0 - p))) if p < 1 else 0


def discrete_laplace(epsilon: float, bound: int) -> int:
    """A draw of the two-sided geometric (discrete Laplace) distribution of scale 1/epsilon, clamped to [-bound,
    bound]. The difference of two geometric variables is discrete Laplace."""
    p = 1.0 - math.exp(-epsilon)
    value = _geometric(p) - _geometric(p)
    return max(-bound, min(bound, value))


def decoys(run_id: str, count: int) -> list[str]:
    return [f"cead-decoy:{run_id}:{i}" for i in range(count)]


# ---- shared -------------------------------------------------------------------------------------------------

def _body_nonce(body: bytes) -> str:
    return "urn:cead:psi:" + hashlib.sha256(body).hexdigest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not base64")
    return base64.b64decode(text, validate=True)


def _run_protocols(protocol: Any) -> tuple[PsiCardinality, DifferentialPrivacy]:
    protocols = parse_protocols(protocol)
    psi = [p for p in protocols if isinstance(p, PsiCardinality)]
    dp = [p for p in protocols if isinstance(p, DifferentialPrivacy)]
    if len(psi) != 1 or len(dp) != 1 or len(protocols) != 2:
        raise ValueError("a PSI run states one psiCardinality and one differentialPrivacy entry")
    if dp[0].epsilon is None or not dp[0].delta:
        raise ValueError("the run's differentialPrivacy entry needs epsilon and a delta > 0 (the decoy mechanism "
                         "is (epsilon, delta)-DP)")
    return psi[0], dp[0]


def _ref(credential: Any) -> dict:
    doc = credential if isinstance(credential, dict) else None
    if doc is None:
        from verifier.jose import to_document, unverified_claims
        doc = to_document(unverified_claims(credential), "vc")
    return Ref(id=doc.get("id") or "urn:cead:unidentified-approval", digest=credential_digest(credential)).to_json()


# ---- the holder (non-learning party) ----------------------------------------------------------------------------

@dataclass
class Holder:
    """What the holder's node brings: identity, its set, the approval that authorises it, its query budget."""
    signer: Signer
    items: list[str]
    approval: Any                      # the holder's own data-sharing approval (JSON or vc+jwt)
    budget: QueryBudget
    verifier: Verifier
    min_set_size: int = DEFAULT_MIN_SET_SIZE
    origin: str | None = None          # the holder's https origin, the audience of learners' presentations


def _refuse(problem: Problem, status: int = 403):
    return jsonify({"allowed": False, "problems": [problem.to_dict()]}), status


def _authenticate(holder: Holder, body: bytes) -> tuple[str | None, Problem | None]:
    vp = request.headers.get(PRESENTATION_HEADER)
    if not vp:
        return None, Problem("computation.unauthenticated", f"A PSI request needs a {PRESENTATION_HEADER} header: a "
                             "presentation by the learner bound to the request body.")
    result = holder.verifier.verify_presentation(vp, nonce=_body_nonce(body), audience=holder.origin)
    if not result.verified:
        return None, Problem("computation.unauthenticated", "The learner's presentation does not verify: "
                             + ", ".join(p.code for p in result.problems), {"problems": [p.code for p in
                                                                                       result.problems]})
    return result.issuer, None


def psi_app(holder: Holder) -> Flask:
    """The holder's PSI endpoints: ``POST /computations/psi/query`` and ``POST /computations/psi/attest``."""
    app = Flask("cead-psi")
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    approval_doc = holder.approval if isinstance(holder.approval, dict) else None

    def approval_subject() -> DataSharingApproval:
        doc = approval_doc
        if doc is None:
            result = holder.verifier.verify_credential(holder.approval)
            doc = result.document
        return DataSharingApproval.from_credential(doc)

    @app.post("/computations/psi/query")
    def query():
        body = request.get_data(cache=True)
        learner, problem = _authenticate(holder, body)
        if problem:
            return _refuse(problem, 401)
        try:
            message = json.loads(body)
            run_id = message["runId"]
            psi_run, dp_run = _run_protocols(message["protocol"])
            psi_request = _psi().Request()
            psi_request.ParseFromString(_unb64(message["request"]))
            learner_commitment = message["learnerCommitment"]
            if not (isinstance(run_id, str) and run_id.startswith("urn:cead:run:") and len(run_id) <= 80):
                raise ValueError("runId must be urn:cead:run:<id>")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return _refuse(Problem("computation.request_invalid", f"The PSI request cannot be read: {exc}"), 400)
        except Exception:  # protobuf DecodeError
            return _refuse(Problem("computation.request_invalid", "The PSI request message is not a PSI request."),
                           400)
        if learner not in psi_run.learners or set(psi_run.parties) != {holder.signer.did, learner}:
            return _refuse(Problem("computation.not_authorised", f"{learner} is not the learner of a PSI between "
                                   f"it and {holder.signer.did} in this run.", {"learner": learner}))
        why = approval_allows_run(holder.approval, holder.signer.did, "psiCardinality", [psi_run, dp_run],
                                  psi_run.learners, verifier=holder.verifier)
        if why:
            return _refuse(Problem("computation.not_authorised", f"{holder.signer.did} does not take part: {why}"))
        subject = approval_subject()
        dp_approved = next((p for p in subject.privacy_protocol if isinstance(p, DifferentialPrivacy)), None)
        if dp_approved is None or dp_approved.budget is None:
            return _refuse(Problem("computation.budget_missing", "The holder's approval sets no differential-privacy "
                                   "budget, so no PSI query can be accounted (membership inference by repeated "
                                   "queries would be unbounded)."))
        try:
            offset = decoy_offset(dp_run.epsilon, dp_run.delta)
        except CeadError as exc:
            return _refuse(exc.problem, 400)
        learner_size = len(psi_request.encrypted_elements) - 2 * offset
        if learner_size < holder.min_set_size or len(holder.items) < holder.min_set_size:
            return _refuse(Problem("computation.set_too_small", f"Both sets must hold at least "
                                   f"{holder.min_set_size} members (learner {max(learner_size, 0)}, holder "
                                   f"{len(holder.items)}): the intersection of a small set singles people out.",
                                   {"minSetSize": holder.min_set_size}))
        started = now_utc()
        holder_commitment, salt = commitment(set(holder.items))
        record = {"runId": run_id, "learner": learner, "learnerCommitment": learner_commitment,
                  "holderCommitment": holder_commitment, "holderSalt": salt, "approval": _ref(holder.approval),
                  "protocol": [psi_run.to_json(), dp_run.to_json()], "startedAt": xsd_datetime(started),
                  "minSetSize": holder.min_set_size}
        budget = dp_approved.budget
        problem = holder.budget.charge(run_id=run_id, approval=credential_digest(holder.approval),
                                       anchor=subject.not_before, period=budget.period, epsilon=dp_run.epsilon,
                                       max_epsilon=budget.epsilon, max_queries=budget.max_releases, learner=learner,
                                       now=started, record=json.dumps(record))
        if problem:
            return _refuse(problem)
        noise = offset + discrete_laplace(dp_run.epsilon, offset)
        server = _psi().server.CreateWithNewKey(False)     # cardinality only: the response is shuffled
        setup = server.CreateSetupMessage(0.0, len(psi_request.encrypted_elements),
                                          list(holder.items) + decoys(run_id, 2 * offset)[:noise],
                                          _psi().DataStructure.RAW)
        response = server.ProcessRequest(psi_request)
        return jsonify({"allowed": True, "setup": _b64(setup.SerializeToString()),
                        "response": _b64(response.SerializeToString()), "holderCommitment": holder_commitment,
                        "approval": record["approval"], "startedAt": record["startedAt"], "offset": offset,
                        "minSetSize": holder.min_set_size})

    @app.post("/computations/psi/attest")
    def attest():
        body = request.get_data(cache=True)
        learner, problem = _authenticate(holder, body)
        if problem:
            return _refuse(problem, 401)
        try:
            document = json.loads(body)["attestation"]
        except (ValueError, KeyError, TypeError):
            return _refuse(Problem("computation.request_invalid", "Send {\"attestation\": credential}."), 400)
        problem = _check_for_cosigning(holder, learner, document)
        if problem:
            return _refuse(problem)
        return jsonify({"allowed": True, "proof": sign(document, holder.signer)})

    return app


def _check_for_cosigning(holder: Holder, learner: str, document: Any) -> Problem | None:
    """The holder co-signs only what it recorded: its own commitment and approval, the learner's commitment, the
    protocol as charged, the run's start, the learner as issuer and sole output party; and only once."""
    from schemas.attestation import RunAttestation
    result = holder.verifier.verify_credential(document)
    if not result.verified or result.issuer != learner or result.co_signers:
        return Problem("computation.attestation_refused", "Only an attestation issued and signed by the learner "
                       "alone is co-signed.", {"problems": [p.code for p in result.problems]})
    try:
        subject = RunAttestation.from_credential(result.document)
    except CeadError as exc:
        return Problem("computation.attestation_refused", exc.problem.message)
    stored = holder.budget.record(subject.id)
    if stored is None:
        return Problem("computation.attestation_refused", f"No PSI query {subject.id} was answered here.")
    record, attested = json.loads(stored[0]), stored[1]
    inputs = {i.party: (i.commitment, i.approval.to_json() if i.approval else None) for i in subject.inputs}
    expected_inputs = {holder.signer.did: (record["holderCommitment"], record["approval"]),
                       learner: (record["learnerCommitment"], None)}
    wrong = []
    if record["learner"] != learner:
        wrong.append("learner")
    if inputs != expected_inputs:
        wrong.append("inputs")
    if subject.protocol_kind != "psiCardinality" or subject.implementation != IMPLEMENTATION:
        wrong.append("protocol")
    if subject.run_parameters.get("protocol") != record["protocol"]:
        wrong.append("runParameters")
    if set(subject.compute_parties) != {holder.signer.did, learner} or subject.output_parties != [learner]:
        wrong.append("parties")
    if xsd_datetime(subject.started_at) != record["startedAt"]:
        wrong.append("startedAt")
    if wrong:
        return Problem("computation.attestation_refused", f"The attestation differs from the run recorded here in "
                       f"{', '.join(wrong)}.", {"differs": wrong})
    if attested or not holder.budget.mark_attested(subject.id):
        return Problem("computation.attestation_refused", f"Run {subject.id} has been co-signed already.")
    return None


# ---- the learner --------------------------------------------------------------------------------------------

@dataclass
class PsiResult:
    run_id: str
    cardinality: int                   # the noised intersection size (what may be released)
    output: bytes                      # the released bytes (JSON), covered by the attestation
    attestation: dict


class PsiRefused(CeadError):
    pass


def _post(client, url: str, payload: dict, signer: Signer, audience: str) -> dict:
    from wallet.present import build_presentation
    body = json.dumps(payload, separators=(",", ":")).encode()
    vp = build_presentation(signer.did, signer.key, signer.kid, [], audience=audience, nonce=_body_nonce(body))
    response = client.post(url, content=body, headers={"Content-Type": "application/json", PRESENTATION_HEADER: vp})
    try:
        answer = response.json()
    except ValueError:
        raise CeadError("computation.unreachable", f"{url} answered {response.status_code} without JSON.") from None
    if response.status_code != 200 or not answer.get("allowed"):
        problems = answer.get("problems") or [{"code": "computation.refused", "message": str(answer)[:200]}]
        first = problems[0]
        raise PsiRefused(first.get("code", "computation.refused"), first.get("message", ""), problems=problems)
    return answer


def run_psi_cardinality(holder_url: str, signer: Signer, items: Iterable[str], approval: Any, *,
                        holder: str, epsilon: float, delta: float, verifier: Verifier,
                        ca_bundle: str | None = None, run_id: str | None = None,
                        threat_model: str = "semiHonest") -> PsiResult:
    """The learner's side: check ``approval`` (the holder's approval naming this node as learner), run the PSI
    cardinality with the holder at ``holder_url`` (https origin), compute the noised count, issue the attestation
    and have the holder co-sign it. Raises ``PsiRefused`` (a CeadError) naming the holder's reason."""
    import httpx
    items = sorted(set(items))
    run_id = run_id or new_run_id()
    psi_run = PsiCardinality(parties=[holder, signer.did], learners=[signer.did], threat_model=threat_model)
    dp_run = DifferentialPrivacy(epsilon=epsilon, delta=delta)
    why = approval_allows_run(approval, holder, "psiCardinality", [psi_run, dp_run], [signer.did],
                              verifier=verifier)
    if why:
        raise PsiRefused("computation.not_authorised", f"{signer.did} does not take part: {why}")
    offset = decoy_offset(epsilon, delta)
    own_commitment, _salt = commitment(set(items))
    client = _psi().client.CreateWithNewKey(False)
    psi_request = client.CreateRequest(items + decoys(run_id, 2 * offset))
    protocol = [psi_run.to_json(), dp_run.to_json()]
    origin = holder_url.rstrip("/")
    import ssl
    with httpx.Client(verify=ssl.create_default_context(cafile=ca_bundle) if ca_bundle else True,
                      timeout=300) as http:
        answer = _post(http, origin + "/computations/psi/query",
                       {"runId": run_id, "protocol": protocol, "request": _b64(psi_request.SerializeToString()),
                        "learnerCommitment": own_commitment}, signer, origin)
        setup = _psi().ServerSetup()
        setup.ParseFromString(_unb64(answer["setup"]))
        response = _psi().Response()
        response.ParseFromString(_unb64(answer["response"]))
        noised = client.GetIntersectionSize(setup, response) - int(answer["offset"])
        completed = now_utc()
        output = json.dumps({"run": run_id, "intersectionCardinality": noised,
                             "mechanism": "discreteLaplace", "epsilon": epsilon, "delta": delta,
                             "nonce": secrets.token_hex(16)}, sort_keys=True).encode() + b"\n"
        document = unsigned_attestation(
            signer.did, id=run_id, protocol_kind="psiCardinality", implementation=IMPLEMENTATION,
            implementation_version=implementation_version(),
            run_parameters={"kind": "psiCardinality", "protocol": protocol, "minSetSize": answer["minSetSize"],
                            "noise": {"mechanism": "discreteLaplace", "sensitivity": 1,
                                      "unitOfPrivacy": "person", "truncation": int(answer["offset"])}},
            inputs=[{"party": holder, "commitment": answer["holderCommitment"], "approval": answer["approval"]},
                    {"party": signer.did, "commitment": own_commitment}],
            compute_parties=[signer.did, holder], output_parties=[signer.did],
            output_digest=output_digest(output), started_at=answer["startedAt"], completed_at=completed)
        own_proof = sign(document, signer)
        issued = combine(document, [own_proof])
        cosign = _post(http, origin + "/computations/psi/attest", {"attestation": issued}, signer, origin)
    attestation = combine(document, [own_proof, cosign["proof"]])
    return PsiResult(run_id, noised, output, attestation)


# ---- the holder's process -----------------------------------------------------------------------------------

def serve(config_path: str) -> None:
    """Run the holder's PSI endpoints over HTTPS (a process of its own); prints ``listening <url>`` when ready.

    The config (JSON): did, kid, keyPem (a PKCS#8 file, ``attest.write_key``; its passphrase in the environment),
    items (a file of identifiers, one a line), approval (a credential file), ledger (SQLite path), minSetSize,
    cert and certKey (the TLS certificate), network (the node's network settings, the fields of config.yaml's
    ``network``: ``attest.network_settings(node.network)``; DIDs and status lists are fetched under them, so a
    holder on 127.0.0.1 needs ``allow_private`` and its CA in ``ca_bundle``), port (0: any)."""
    import ssl

    from werkzeug.serving import make_server

    config = json.loads(Path(config_path).read_text("utf-8"))
    key = read_key(config["keyPem"])
    approval_text = Path(config["approval"]).read_text("utf-8").strip()
    approval = approval_text if not approval_text.startswith("{") else json.loads(approval_text)
    items = [line.strip() for line in Path(config["items"]).read_text("utf-8").splitlines() if line.strip()]
    verifier = node_verifier(config.get("network"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config["cert"], config["certKey"])
    holder = Holder(Signer(config["did"], key, config["kid"]), items, approval, QueryBudget(config["ledger"]),
                    verifier, int(config.get("minSetSize", DEFAULT_MIN_SET_SIZE)))
    server = make_server("127.0.0.1", int(config.get("port", 0)), psi_app(holder), threaded=True,
                         ssl_context=context)
    holder.origin = f"https://localhost:{server.server_port}"
    print(f"listening {holder.origin}", flush=True)
    server.serve_forever()


@contextmanager
def holder_process(config: dict, workdir: str | Path, key_passphrase: str | None = None
                   ) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start ``serve`` in a process of its own with ``config`` (written to ``workdir``; ``key_passphrase`` goes in
    its environment); yields its https origin."""
    import os
    path = Path(workdir) / "psi-holder.json"
    path.write_text(json.dumps(config), "utf-8")
    env = {k: v for k, v in os.environ.items() if k != KEY_PASSPHRASE_ENV}
    if key_passphrase:
        env[KEY_PASSPHRASE_ENV] = key_passphrase
    proc = subprocess.Popen([sys.executable, "-m", "wallet.computations.psi", "serve", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        if not line.startswith("listening "):
            proc.kill()
            raise CeadError("computation.unreachable", "The PSI holder process did not start: "
                            + (line + proc.stderr.read())[-500:])
        yield line.split()[1], proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            stream.close()


if __name__ == "__main__":  # pragma: no cover - run as a process by run_holder_process / the demo
    if len(sys.argv) != 3 or sys.argv[1] != "serve":
        print("usage: python -m wallet.computations.psi serve CONFIG.json", file=sys.stderr)
        sys.exit(2)
    serve(sys.argv[2])
