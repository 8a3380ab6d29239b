"""Run as a subprocess by tests/test_receipt_spool.py: a gateway that signs a final receipt per decision and spools
it forever, printing ``ack <jti>`` once each append has returned (when a response carrying it could leave)."""
import sys
import uuid

from issuer.evidence.spool import ReceiptSpool
from issuer.keys import PrivateKey
from jwcrypto import jwk
from verifier.receipts import ReceiptSigner

signer = ReceiptSigner(jwk.JWK(**PrivateKey.generate().private_jwk()), kid="did:web:gw.example#key-1")
spool = ReceiptSpool(sys.argv[1], max_segment=int(sys.argv[2]) if len(sys.argv) > 2 else 64 * 1024 * 1024)
n = 0
while True:
    jti = f"urn:uuid:{uuid.uuid4()}"
    spool(signer.sign({"jti": jti, "decision": "allow", "reasons": [], "holder": "did:web:r.example",
                       "approval": "urn:uuid:a", "payload": {"direction": "push", "sha256": f"{n:064x}",
                                                             "bytes": 1, "rows": n}}))
    print("ack", jti, flush=True)
    n += 1
