"""The receipt spool: a gateway hands each signed receipt to the node's log without making the decision wait for the
database, and a separate *sequencer* process appends them to the log in group commits.

Why a spool and another process: storing, logging and proving a receipt costs the database a transaction, and in
the gateway's own process (even on another thread) that work takes interpreter time from decisions. The gateway
therefore does only the cheap part in-line (sign the receipt, hash the bytes that moved) and then *spools* it:

- **Spooling is one ``write`` system call** of the compact JWS and a newline to the gateway process's own segment
  file (``<spool>/<ns>-<pid>.spool``; append-only, no ``fsync`` by default). It returns before the response that
  carries the receipt leaves, so **a receipt is acknowledged once it is in the spool**: from then on it is in the
  operating system's page cache, and a SIGKILL or crash of the gateway process, of the sequencer, or of both,
  cannot lose it. (Power loss can lose the page cache: ``fsync=True`` makes each append survive that too, at the
  cost of one disk flush per decision.) If the write fails (disk full), the append raises and the decision's
  answer carries no acknowledged receipt.
- **The sequencer** (:func:`drain`, run in its own process by :func:`run` or ``python -m issuer.evidence.spool``)
  reads every segment from the offset it last committed, stores and logs each batch in one transaction
  (``receipts.keep_many``: rows, log entries, subtree hashes and the head together), and only then records the new
  offset (``<segment>.offset``). A crash between the commit and that record replays the batch, which is
  idempotent: a receipt already stored is never logged twice, so the log has no gap and no duplicate.
- **The inclusion proof comes later**: once sequenced, the stored receipt has its log index, and
  ``cead receipts show`` (or ``GET /log/evidence?digest=`` with the receipt's SHA-256) gives its inclusion proof.

A segment grows to ``max_segment`` bytes, then its producer seals it (``<segment>.sealed``) and opens another; the
sequencer deletes a sealed segment once it has committed all of it. A gateway process that forks (a pre-forking
server) opens its own segment in each child.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from verifier.results import CeadError

log = logging.getLogger(__name__)

SUFFIX = ".spool"
MAX_SEGMENT = 64 * 1024 * 1024
MAX_LINE = 256 * 1024          # a receipt is a few kB; a longer line is not a receipt
MAX_READ = 8 * 1024 * 1024     # what one drain reads of a segment (a long backlog is taken in several)


_PID = os.getpid()   # this process's id without a system call per receipt; a forked child records its own


def _forked() -> None:
    global _PID
    _PID = os.getpid()


os.register_at_fork(after_in_child=_forked)


class ReceiptSpool:
    """The gateway's end: a ``Decider.receipt_sink`` that appends each receipt to this process's segment."""

    def __init__(self, folder: str | Path, *, fsync: bool = False, max_segment: int = MAX_SEGMENT):
        self.folder = Path(folder)
        self.fsync = fsync
        self.max_segment = max_segment
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0
        self._path: Path | None = None
        self._size = 0
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CeadError("receipt.spool_failed", f"Cannot create the receipt spool {str(self.folder)!r}: "
                            f"{exc.strerror}. Give the gateway a writable folder.") from None

    def _open(self) -> None:
        self._pid = _PID
        self._path = self.folder / f"{time.time_ns():020d}-{self._pid}{SUFFIX}"
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        self._size = 0

    def _seal(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
            (self._path.parent / (self._path.name + ".sealed")).touch()
        self._fd = None

    def append(self, token: str) -> None:
        """Spool one receipt (a compact JWS, or a batched receipt: one line either way). Returns once it is
        acknowledged (see the module's note)."""
        if "\n" in token or len(token) >= MAX_LINE:
            raise CeadError("receipt.invalid", "A receipt to spool is one line (a compact JWS or a batched "
                            "receipt) without newlines.")
        self._write(token.encode("ascii") + b"\n")

    def append_many(self, tokens) -> None:
        """Spool several receipts with one ``write`` (the receipts that shared a signature, handed over by the
        signer's group commit): all acknowledged when it returns, none when it raises."""
        for token in tokens:
            if "\n" in token or len(token) >= MAX_LINE:
                raise CeadError("receipt.invalid", "A receipt to spool is one line (a compact JWS or a batched "
                                "receipt) without newlines.")
        self._write("\n".join(tokens).encode("ascii") + b"\n")

    def _write(self, data: bytes) -> None:
        with self._lock:
            try:
                if self._fd is None or self._pid != _PID:   # (_PID: this process's id, kept across forks)
                    self._fd = None   # a forked child never writes (or seals) its parent's segment
                    self._open()
                written = os.write(self._fd, data)
                if written != len(data):   # a short write (disk full): the receipt is not acknowledged
                    raise OSError(28, "short write")
                if self.fsync:
                    os.fdatasync(self._fd)
            except OSError as exc:
                raise CeadError("receipt.spool_failed", f"Cannot spool the receipt to {str(self.folder)!r}: "
                                f"{exc.strerror or exc}. Free disk space or fix the folder's permissions.") from None
            self._size += len(data)
            if self._size >= self.max_segment:
                self._seal()

    def __call__(self, token: str, claims: dict | None = None) -> None:   # a Decider.receipt_sink
        if "\n" in token or len(token) >= MAX_LINE:
            raise CeadError("receipt.invalid", "A receipt to spool is one line (a compact JWS or a batched "
                            "receipt) without newlines.")
        self._write(token.encode("ascii") + b"\n")

    def close(self) -> None:
        with self._lock:
            self._seal()


# ---- the sequencer's end ---------------------------------------------------------------------------------------

def _offset_path(segment: Path) -> Path:
    return segment.parent / (segment.name + ".offset")


def _read_offset(segment: Path) -> int:
    try:
        return int(_offset_path(segment).read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def _write_offset(segment: Path, offset: int) -> None:
    target = _offset_path(segment)
    tmp = target.parent / (target.name + ".tmp")
    tmp.write_text(str(offset))
    os.replace(tmp, target)   # no fsync needed: a lost offset only replays committed, idempotent work


def _producer_gone(segment: Path) -> bool:
    try:
        pid = int(segment.name[: -len(SUFFIX)].rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return True
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def pending(folder: str | Path) -> int:
    """Bytes spooled but not yet committed to the log (0 when the sequencer has caught up)."""
    total = 0
    for segment in sorted(Path(folder).glob("*" + SUFFIX)):
        try:
            total += segment.stat().st_size - _read_offset(segment)
        except FileNotFoundError:
            continue
    return total


def drain(node, folder: str | Path, *, max_batch: int = 512, prove: bool = False, on_stored=None) -> int:
    """Commit everything spooled so far to the node's log (group commits of up to ``max_batch`` receipts); returns
    how many receipts were committed. ``prove``: also make each batch's inclusion proofs (what the benchmark
    charges). ``on_stored(list[Stored])`` is called after each commit (notifications, a benchmark's clock)."""
    from .receipts import PROVIDER, _parse, _prove_rows, keep_many, tell_denials
    folder = Path(folder)
    done = 0
    for segment in sorted(folder.glob("*" + SUFFIX)):
        offset = _read_offset(segment)
        try:
            with open(segment, "rb") as f:
                f.seek(offset)
                data = f.read(MAX_READ)
        except FileNotFoundError:
            continue
        end = data.rfind(b"\n") + 1          # a line without its newline is still being written: not yet
        lines = data[:end].split(b"\n")[:-1] if end else []
        position = offset
        batch: list[tuple[str, dict]] = []
        for i, line in enumerate(lines):
            position += len(line) + 1
            try:
                token = line.decode("ascii")
                claims, _, _ = _parse(token)
                batch.append((token, claims))
            except (UnicodeDecodeError, CeadError):
                log.error("receipt spool %s: skipped a line at byte %d that is not a receipt", segment.name,
                          position - len(line) - 1)
            if len(batch) >= max_batch or (i == len(lines) - 1):
                if batch:
                    with node.engine.begin() as conn:
                        stored = keep_many(conn, [t for t, _ in batch], PROVIDER, node, [c for _, c in batch])
                    done += len(batch)
                    if prove:
                        _prove_rows(node, stored)
                    fresh = [s for s in stored if s.newly_logged]   # a replayed batch tells nobody twice
                    if hasattr(node, "config"):   # a node (not a bare database): its subscribers hear of denials
                        try:
                            tell_denials(node, fresh)
                        except Exception:   # a notification must never stop the log
                            log.exception("could not queue denial notifications")
                    if on_stored is not None:
                        on_stored(stored)
                _write_offset(segment, position)
                batch = []
        sealed = segment.parent / (segment.name + ".sealed")
        if (sealed.exists() or _producer_gone(segment)) and segment.stat().st_size == _read_offset(segment):
            for path in (segment, _offset_path(segment), sealed):
                path.unlink(missing_ok=True)
    return done


def run(node, folder: str | Path, *, interval: float = 0.05, stop: threading.Event | None = None,
        prove: bool = False, on_stored=None) -> None:
    """The sequencer's loop: drain, then wait ``interval`` seconds (the group-commit window: receipts spooled
    meanwhile go into the next transaction together, so the log costs one commit per window, not per decision)."""
    while stop is None or not stop.is_set():
        try:
            drain(node, folder, prove=prove, on_stored=on_stored)
        except Exception:   # the database is down, say: keep the spool, say so loudly, try again
            log.exception("the receipt sequencer could not commit; retrying")
            time.sleep(max(interval, 1.0))
        time.sleep(interval)
    drain(node, folder, prove=prove, on_stored=on_stored)


class _DatabaseNode:
    """A node reduced to what sequencing needs (its database and log origin), for ``--database``."""

    def __init__(self, url: str, origin: str):
        from issuer import db
        from .log import TransparencyLog
        self.engine = db.make_engine(url)
        self._tlog = TransparencyLog(self.engine, origin)
        self.did = None


def main(argv: list[str] | None = None) -> int:
    """``python -m issuer.evidence.spool (--node HOME | --database URL --origin ORIGIN) SPOOL [--once]``"""
    import argparse
    import signal
    parser = argparse.ArgumentParser(prog="python -m issuer.evidence.spool",
                                     description="Sequence spooled receipts into the node's log.")
    parser.add_argument("spool")
    parser.add_argument("--node", help="the node home (its config.yaml names the database)")
    parser.add_argument("--database", help="a database URL instead of a node home (tests, benchmarks)")
    parser.add_argument("--origin", default="sequencer.invalid/log")
    parser.add_argument("--once", action="store_true", help="drain what is spooled and exit")
    parser.add_argument("--interval", type=float, default=0.05, help="the group-commit window in seconds")
    parser.add_argument("--prove", action="store_true", help="make each batch's inclusion proofs")
    parser.add_argument("--report", action="store_true", help="print 'stored <id> <log index> <unix time>' per receipt")
    parser.add_argument("--nice", type=int, default=10,
                        help="lower the sequencer's CPU priority by this much (default 10): on a busy machine the "
                             "decisions come first, the log a few milliseconds later")
    args = parser.parse_args(argv)
    if args.nice:
        os.nice(args.nice)
    logging.basicConfig(level=logging.INFO)
    if args.node:
        from issuer.node import Node
        node = Node.open(Path(args.node), migrate=False)
    elif args.database:
        node = _DatabaseNode(args.database, args.origin)
    else:
        parser.error("give --node HOME or --database URL")
    on_stored = None
    if args.report:
        import sys
        print(f"ready {time.process_time():.6f}", flush=True)   # the CPU spent starting, apart from sequencing

        def on_stored(rows):
            now = time.time()
            sys.stdout.write("".join(f"stored {r.id} {r.log_index} {now:.6f}\n" for r in rows))
            sys.stdout.flush()
    if args.once:
        drain(node, args.spool, prove=args.prove, on_stored=on_stored)
        return 0
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    run(node, args.spool, interval=args.interval, stop=stop, prove=args.prove, on_stored=on_stored)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
