"""The node database: SQLModel tables for the issuer, the engine, and the Alembic migration runner.

Tables are created and changed only by Alembic migrations (never ``create_all``), so upgrading a node keeps its
rows. Each package keeps its own migration history in its own version table: the issuer's revisions live in
``issuer/migrations/versions`` (table ``alembic_version_issuer``); another package (the wallet) passes its own
folder to ``migrate(..., extra_version_locations=[".../wallet/migrations/versions"])`` and gets the table
``alembic_version_<package>`` (the folder two levels above ``versions``). The issuer never needs to know the
wallet's revisions, and the wallet's revisions never block an issuer-only upgrade.
"""
from __future__ import annotations

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
CONNECT_TIMEOUT = 10   # seconds to wait for a database server to answer


def utcnow() -> str:
    """Timestamps are stored as ISO 8601 UTC strings (``2025-01-31T12:00:00Z``): portable across databases."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# ---- tables ----------------------------------------------------------------------------------------------------

class StatusList(SQLModel, table=True):
    """One published Bitstring Status List. Bits are derived from ``StatusEntry.value``; ``version`` is bumped
    on every change and the signed list credential is cached with the version it was signed at."""
    __tablename__ = "issuer_status_list"
    id: Optional[int] = Field(default=None, primary_key=True)
    purpose: str = Field(index=True)
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

def make_engine(url: str) -> Engine:
    """An engine for ``url``. SQLite gets a busy timeout and ``BEGIN IMMEDIATE`` transactions, so concurrent
    writers queue instead of failing; ``postgresql://`` URLs use the psycopg 3 driver."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if not url.startswith("sqlite"):
        try:
            parsed = make_url(url)
            # never wait forever for a server that does not answer (psycopg's connect_timeout, in seconds)
            connect_args = ({"connect_timeout": CONNECT_TIMEOUT} if parsed.drivername.startswith("postgresql")
                            and "connect_timeout" not in parsed.query else {})
            return create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
        except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
            raise CeadError("node.config_invalid", f"Unusable database URL {_safe_url(url)!r}: "
                            f"{_first_line(exc)}. Use sqlite:///PATH or postgresql://USER@HOST/DB.") from None
    try:
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
        raise CeadError("node.config_invalid", f"Unusable database URL {_safe_url(url)!r}: {_first_line(exc)}. "
                        "Use sqlite:///PATH or postgresql://USER@HOST/DB.") from None

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None          # let SQLAlchemy's BEGIN below take effect
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


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
