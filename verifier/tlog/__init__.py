"""Transparency logs, verifier side (stateless, no database): RFC 9162 Merkle proofs, C2SP signed notes,
checkpoints and cosignatures, tlog-tiles paths. The log itself lives in ``issuer.tlog``."""
from .checkpoint import Checkpoint, SignedCheckpoint, open_checkpoint  # noqa: F401
from .merkle import (EMPTY_ROOT, leaf_hash, node_hash, verify_consistency, verify_inclusion)  # noqa: F401
from .note import NoteKey  # noqa: F401
