"""Run as a subprocess by tests/test_evidence_log.py: append to a node log forever, printing ``ack <index> <leaf
hash hex>`` after each append has committed (what a caller would take as acknowledged)."""
import sys

from issuer import db
from issuer.evidence.log import TransparencyLog

engine = db.make_engine(sys.argv[1])
log = TransparencyLog(engine, "crash.example/log")
n = 0
while True:
    appended = log.append("receipt", {"receipt": f"{n:064x}"}, {"n": n})
    print("ack", appended.index, appended.leaf_hash.hex(), flush=True)
    n += 1
