"""C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint): ``<origin>\\n<size>\\n<base64 root>\\n[extensions]``,
carried in a signed note signed by the log's key and co-signed by witnesses."""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Sequence

from ..results import CeadError
from . import note as notes
from .merkle import HASH_SIZE

_SIZE = re.compile(r"^(0|[1-9][0-9]{0,18})$")


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = field(default=())

    def text(self) -> str:
        return (f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"
                + "".join(line + "\n" for line in self.extensions))

    @classmethod
    def parse(cls, text: str) -> "Checkpoint":
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise CeadError("tlog.checkpoint_invalid", "A checkpoint is an origin, a size and a root hash, one per "
                            "line, each ending in a newline.")
        origin, size, root = lines[0], lines[1], lines[2]
        if not origin or origin != origin.strip():
            raise CeadError("tlog.checkpoint_invalid", "The checkpoint's origin line is empty or padded.")
        if not _SIZE.match(size):
            raise CeadError("tlog.checkpoint_invalid", f"The checkpoint's tree size {size[:30]!r} is not a number.")
        try:
            raw = base64.b64decode(root, validate=True)
        except (binascii.Error, ValueError):
            raise CeadError("tlog.checkpoint_invalid", "The checkpoint's root hash is not base64.") from None
        if len(raw) != HASH_SIZE:
            raise CeadError("tlog.checkpoint_invalid", "The checkpoint's root hash is not 32 bytes.")
        extensions = tuple(lines[3:-1])
        if any(not e for e in extensions):
            raise CeadError("tlog.checkpoint_invalid", "The checkpoint has an empty extension line.")
        return cls(origin, int(size), raw, extensions)


@dataclass(frozen=True)
class SignedCheckpoint:
    checkpoint: Checkpoint
    note: str                                   # the whole signed note, as received
    witnesses: tuple[notes.Verified, ...] = ()  # verified cosignatures by the witness keys asked about

    @property
    def witness_names(self) -> list[str]:
        return [w.key.name for w in self.witnesses]


def open_checkpoint(note: str | bytes, log_key: notes.NoteKey,
                    witness_keys: Sequence[notes.NoteKey] = ()) -> SignedCheckpoint:
    """Verify a checkpoint note: signed by ``log_key`` (whose name must be the origin), plus any cosignatures by
    ``witness_keys``. Raises ``tlog.signature_invalid`` / ``tlog.checkpoint_invalid``."""
    text, verified = notes.verify(note, [log_key, *witness_keys])
    if not any(v.key == log_key for v in verified):
        raise CeadError("tlog.signature_invalid", f"The checkpoint is not signed by the log key {log_key.name}.")
    cp = Checkpoint.parse(text)
    if cp.origin != log_key.name:
        raise CeadError("tlog.checkpoint_invalid", f"The checkpoint's origin {cp.origin!r} is not the log "
                        f"{log_key.name!r}.")
    if isinstance(note, bytes):
        note = note.decode()
    return SignedCheckpoint(cp, note, tuple(v for v in verified if v.key != log_key))
