"""Evidence at a node: its append-only Merkle log (``log``), witnessing other nodes' logs (``witness``), stored
decision receipts (``receipts``) and the public ``/log/`` endpoints (``routes``). See docs/evidence.md."""
from pathlib import Path

VERSIONS_DIR = Path(__file__).parent / "migrations" / "versions"
