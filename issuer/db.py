"""The node database: SQLModel tables for the issuer, the engine, and the Alembic migration runner.

Tables are created and changed only by Alembic migrations (never ``create_all``), so upgrading a node keeps its
rows. Each package keeps its own migration history in its own version table: the issuer's revisions live in
``issuer/migrations/versions`` (table ``alembic_version_issuer``); another package (the wallet) passes its own
folder to ``migrate(..., extra_version_locations=[".../wallet/migrations/versions"])`` and gets the table
``alembic_version_<package>`` (the folder two levels above ``versions``). The issuer never needs to know the
wallet's revisions, and the wallet's revisions never block an issuer-only upgrade.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Optional

from sqlalchemy import UniqueConstraint, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import (ArgumentError, DisconnectionError, InterfaceError, NoSuchModuleError, OperationalError,
                            SQLAlchemyError)
from sqlalchemy.exc import TimeoutError as SATimeoutError
from sqlmodel import Field, Session, SQLModel, create_engine

from verifier.results import CeadError

MIGRATIONS = Path(__file__).parent / "migrations"
ISSUER_VERSIONS = MIGRATIONS / "versions"


@dataclass(frozen=True)
class Limits:
    """How long the node waits on its database, at most (docs/production.md, "Database waits"). Every wait is
    bounded; one that runs out is a ``db.unavailable`` error (HTTP 503 with ``Retry-After``), never a hang."""
    connect: int = 3                # s to open a connection (libpq connect_timeout: whole seconds, at least 2)
    statement: float = 4            # PostgreSQL statement_timeout: the server cancels a longer statement
    lock: float = 3                 # PostgreSQL lock_timeout: the longest wait for a row or table lock
    idle_in_transaction: float = 15  # PostgreSQL idle_in_transaction_session_timeout: a client gone mid-transaction
    wait: float = 5                 # the node's own bound on any one wait for the server (a server that accepts
    #                                 but never answers: frozen, or a network partition); the connection is then cut
    pool_wait: float = 3            # s a request waits for a free connection
    pool_size: int = 5              # connections kept open ...
    max_overflow: int = 10          # ... and opened beyond them under load (PostgreSQL: at most 15 per process)
    sqlite_busy: float = 5          # SQLite busy timeout: the longest wait for another writer


LIMITS = Limits()
CONNECT_TIMEOUT = LIMITS.connect   # (kept for callers of the old name)


def utcnow() -> str:
    """Timestamps are stored as ISO 8601 UTC strings (``2025-01-31T12:00:00Z``): portable across databases."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# ---- tables ----------------------------------------------------------------------------------------------------

class StatusList(SQLModel, table=True):
    """One published Bitstring Status List. Bits are derived from ``StatusEntry.value``; ``version`` is bumped
    on every change and the signed list credential is cached with the version it was signed at. ``seq`` numbers the
    lists of a purpose (0, 1, ...); (purpose, seq) is unique, which keeps one current list per purpose."""
    __tablename__ = "issuer_status_list"
    __table_args__ = (UniqueConstraint("purpose", "seq", name="uq_issuer_status_list_purpose_seq"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    purpose: str = Field(index=True)
    seq: int = 0
    size: int
    version: int = 0
    signed: Optional[str] = None
    signed_version: int = -1
    created: str = Field(default_factory=utcnow)


class StatusEntry(SQLModel, table=True):
    """An allocated index. The unique constraint is what guarantees an index is never handed out twice."""
    __tablename__ = "issuer_status_entry"
    __table_args__ = (UniqueConstraint("list_id", "idx", name="uq_issuer_status_entry_list_idx"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    list_id: int = Field(foreign_key="issuer_status_list.id", index=True)
    idx: int
    purpose: str
    credential_id: str = Field(index=True)
    value: bool = False


class IssuedCredential(SQLModel, table=True):
    """The register: every credential this node signed (never the private key)."""
    __tablename__ = "issuer_credential"
    id: str = Field(primary_key=True)
    types: str                              # comma-separated, e.g. "VerifiableCredential,DelegatedAuthorityCredential"
    subject: Optional[str] = None
    subject_name: Optional[str] = None      # the subject's name as the credential states it (a delegation's name, a
                                            # certification's legalName); None when it states none
    issued_at: str = Field(default_factory=utcnow, index=True)
    valid_from: Optional[str] = None
    valid_until: Optional[str] = None
    format: str                             # eddsa-rdfc-2022 | eddsa-jcs-2022 | vc+jwt
    verification_method: str
    digest: str                             # schemas.models.credential_digest of what was delivered
    status: str = "active"                  # active | suspended | revoked
    status_entries: str = "[]"              # JSON list of the credentialStatus entries
    issued_by: Optional[str] = None         # token name (HTTP) or "cli"
    updated_at: str = Field(default_factory=utcnow)
    datasets: Optional[str] = None          # an approval's datasets and purposes (JSON lists): public metadata the
    purposes: Optional[str] = None          # node publishes as the approvals in force (issuer.catalogue)


class IssueRecord(SQLModel, table=True):
    """What an issuing request returned, so that a retry gets the same signed credential (``issuer.idempotency``).
    ``key_hash`` is SHA-256 of the token name and the client's ``Idempotency-Key`` (unique; none without a key)."""
    __tablename__ = "issuer_issue_record"
    __table_args__ = (UniqueConstraint("key_hash", name="uq_issuer_issue_record_key_hash"),)
    credential_id: str = Field(primary_key=True)
    key_hash: Optional[str] = None
    request_hash: str
    issued_by: Optional[str] = None
    response: str                           # JSON: {"id", "format", "credential", "verifiableCredential"}
    created: str = Field(default_factory=utcnow)


class StatusEvent(SQLModel, table=True):
    """Accountability log of status changes."""
    __tablename__ = "issuer_status_event"
    id: Optional[int] = Field(default=None, primary_key=True)
    credential_id: str = Field(index=True)
    action: str                             # revoke | suspend | reinstate
    at: str = Field(default_factory=utcnow)
    by: Optional[str] = None
    reason: Optional[str] = None


class Token(SQLModel, table=True):
    """A bearer token for the issuing API; only its SHA-256 hash is stored."""
    __tablename__ = "issuer_token"
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    token_hash: str = Field(unique=True)
    scopes: str                             # comma-separated
    created: str = Field(default_factory=utcnow)
    revoked: bool = False


# ---- engine and migrations -------------------------------------------------------------------------------------

def make_engine(url: str, limits: Limits | None = None) -> Engine:
    """An engine for ``url`` whose every wait is bounded by ``limits`` (default ``LIMITS``). SQLite gets a busy
    timeout and ``BEGIN IMMEDIATE`` transactions, so concurrent writers queue (for at most ``sqlite_busy``) instead
    of failing; ``postgresql://`` URLs use the psycopg 3 driver with server-side statement, lock and
    idle-in-transaction timeouts, a connect timeout, and the node's own watchdog on every wait."""
    limits = limits or LIMITS
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if not url.startswith("sqlite"):
        try:
            parsed = make_url(url)
            connect_args: dict = {}
            if parsed.drivername.startswith("postgresql"):
                if "connect_timeout" not in parsed.query:   # never wait forever for a server that does not answer
                    connect_args["connect_timeout"] = max(2, int(limits.connect))
                # the node's timeouts first, so that options given in the URL can still override them
                ours = (f"-c statement_timeout={int(limits.statement * 1000)} -c lock_timeout={int(limits.lock * 1000)}"
                        f" -c idle_in_transaction_session_timeout={int(limits.idle_in_transaction * 1000)}")
                given = parsed.query.get("options")
                given = " ".join(given) if isinstance(given, tuple) else given
                parsed = parsed.update_query_dict({"options": f"{ours} {given}" if given else ours})
            engine = create_engine(parsed, pool_size=limits.pool_size, max_overflow=limits.max_overflow,
                                   pool_timeout=limits.pool_wait, connect_args=connect_args)
        except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
            raise CeadError("node.config_invalid", f"Unusable database URL {_safe_url(url)!r}: "
                            f"{_first_line(exc)}. Use sqlite:///PATH or postgresql://USER@HOST/DB.") from None
        if parsed.drivername.startswith("postgresql"):
            _bound_waits(engine, limits.wait)
        return engine
    try:
        engine = create_engine(url, pool_timeout=limits.pool_wait,
                               connect_args={"timeout": limits.sqlite_busy, "check_same_thread": False})
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
        raise CeadError("node.config_invalid", f"Unusable database URL {_safe_url(url)!r}: {_first_line(exc)}. "
                        "Use sqlite:///PATH or postgresql://USER@HOST/DB.") from None

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None          # let SQLAlchemy's BEGIN below take effect
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(limits.sqlite_busy * 1000)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


# ---- the watchdog: no wait on a PostgreSQL server lasts longer than Limits.wait ---------------------------------

class _Watchdog:
    """Cuts the connection of any wait on the server that outlasts its deadline.

    Server-side timeouts only help while the server answers; a frozen server, or a network partition where the
    TCP connection stays open, leaves the driver waiting for a reply forever (psycopg has no read timeout). So the
    node arms a deadline before each round trip (ping, statement, commit, rollback, reset) and disarms it when the
    reply came; one thread shuts down the socket of a connection whose deadline passed, the driver's wait ends
    with an error, SQLAlchemy discards the connection, and the request answers 503 ``db.unavailable``."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._armed: dict[int, tuple[float, Any]] = {}
        self._fired: set[int] = set()
        self._thread: threading.Thread | None = None

    def arm(self, dbapi_conn: Any, seconds: float) -> None:
        with self._cond:
            self._armed[id(dbapi_conn)] = (time.monotonic() + seconds, dbapi_conn)
            self._fired.discard(id(dbapi_conn))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="cead-db-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()

    def disarm(self, dbapi_conn: Any) -> bool:
        """Stop watching; True when the deadline had already cut the connection."""
        with self._cond:
            self._armed.pop(id(dbapi_conn), None)
            fired = id(dbapi_conn) in self._fired
            self._fired.discard(id(dbapi_conn))
            return fired

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for key, (deadline, conn) in list(self._armed.items()):
                    if deadline <= now:
                        del self._armed[key]
                        self._fired.add(key)
                        _cut(conn)
                nearest = min((d for d, _ in self._armed.values()), default=None)
                self._cond.wait(None if nearest is None else max(0.01, nearest - now))


def _cut(dbapi_conn: Any) -> None:
    """Shut down the connection's socket (under the watchdog's lock, so it is still this connection's)."""
    try:
        if getattr(dbapi_conn, "closed", True):
            return
        fd = dbapi_conn.pgconn.socket
        sock = socket.socket(fileno=os.dup(fd))
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()
    except Exception:   # already closed, or no socket: nothing to cut
        pass


WATCHDOG = _Watchdog()


def _bound_waits(engine: Engine, seconds: float) -> None:
    """Arm the watchdog around every round trip of ``engine``'s connections; a checkout pings first (armed too)."""
    from sqlalchemy.exc import DisconnectionError as _Disconnected

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_conn, record, proxy):
        WATCHDOG.arm(dbapi_conn, seconds)
        try:
            with dbapi_conn.cursor() as cur:
                cur.execute("SELECT 1")
            dbapi_conn.rollback()
        except Exception as exc:
            if WATCHDOG.disarm(dbapi_conn):      # the server did not answer in time: fail now, do not retry
                raise SATimeoutError(f"The database did not answer within {seconds:g} s.") from None
            raise _Disconnected(str(exc)) from None   # a dropped connection: the pool opens a fresh one
        WATCHDOG.disarm(dbapi_conn)

    def arm(conn, *_args, **_kw):
        try:
            WATCHDOG.arm(conn.connection.dbapi_connection, seconds)
        except Exception:
            pass

    def disarm(conn, *_args, **_kw):
        try:
            WATCHDOG.disarm(conn.connection.dbapi_connection)
        except Exception:
            pass

    event.listen(engine, "before_cursor_execute", arm)
    event.listen(engine, "after_cursor_execute", disarm)

    @event.listens_for(engine, "handle_error")
    def _error(context):
        conn = getattr(context, "connection", None)
        if conn is not None:
            disarm(conn)

    dialect = engine.dialect     # this engine's own: commit and rollback (also the pool's reset) are round trips too
    for name in ("do_commit", "do_rollback"):
        def bounded(dbapi_conn, _call=getattr(dialect, name)):
            WATCHDOG.arm(dbapi_conn, seconds)
            try:
                _call(dbapi_conn)
            finally:
                WATCHDOG.disarm(dbapi_conn)
        setattr(dialect, name, bounded)

    for name in ("checkin", "close", "invalidate", "soft_invalidate", "detach", "close_detached"):
        def _done(dbapi_conn, *_args, **_kw):
            if dbapi_conn is not None:
                WATCHDOG.disarm(dbapi_conn)
        event.listen(engine, name, _done)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:300]


def _safe_url(url: Any) -> str:
    """A database URL for a message: never its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable URL>"


def database_error(exc: BaseException, url: Any = None) -> CeadError:
    """A database failure as a coded one-line error: ``db.unavailable`` when the database cannot be reached or
    opened (server down, wrong host or credentials, a SQLite file that cannot be opened), ``db.error`` for any other
    database fault (e.g. a schema newer than this version of Cead). A ``CeadError`` is returned as it is."""
    if isinstance(exc, CeadError):
        return exc
    where = f" {_safe_url(url)}" if url is not None else ""
    if isinstance(exc, (OperationalError, InterfaceError, DisconnectionError, SATimeoutError)):
        return CeadError("db.unavailable", f"The database{where} cannot be reached: {_first_line(exc)}")
    return CeadError("db.error", f"Database error{where}: {_first_line(exc)}")


def is_database_error(exc: BaseException) -> bool:
    """Whether ``exc`` comes from the database layer (SQLAlchemy, its driver, or an Alembic migration)."""
    from alembic.util.exc import CommandError
    return isinstance(exc, (SQLAlchemyError, CommandError))


def check_connection(engine: Engine) -> None:
    """Connect once, or raise ``db.unavailable`` (used by ``cead init`` before it writes anything)."""
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as exc:
        raise database_error(exc, engine.url) from None


def session(engine: Engine) -> Session:
    return Session(engine, expire_on_commit=False)


def _upgrade(engine: Engine, location: Path, version_table: str, revision: str = "heads") -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", str(location))
    cfg.attributes["version_table"] = version_table
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        conn.commit()


def migrate(engine_or_url: Engine | str, extra_version_locations: Iterable[str | Path] = ()) -> Engine:
    """Bring the database to the newest schema: the issuer's tables, then each extra location's tables."""
    engine = make_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
    _upgrade(engine, ISSUER_VERSIONS, "alembic_version_issuer")
    from .evidence import VERSIONS_DIR as evidence_versions   # the node's log and receipts (issue 15)
    _upgrade(engine, evidence_versions, "alembic_version_evidence")
    for loc in extra_version_locations:
        path = Path(loc).resolve()
        _upgrade(engine, path, f"alembic_version_{path.parents[1].name}")
    return engine
upgrade = migrate
