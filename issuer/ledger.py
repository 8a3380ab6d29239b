"""The data owner's privacy-budget ledger, in the node's database (SQLite or PostgreSQL).

Implements ``verifier.ledger.PrivacyLedger``. Each charge is one transaction: take the dataset's lock (its row in
``ledger_account``: ``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already serialises
writers), read the dataset's releases in the current period, apply ``verifier.ledger.affordable`` and insert the
release, or roll back. So of any number of gateways racing for the last unit of a budget, exactly one wins. Releases
of every approval on the same dataset whose data subjects overlap share the budget.

Outputs kept for differencing (``issuer_ledger_output``) hold the bytes this node released of a series.
"""
from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import datetime, timezone
from typing import Optional

from sqlalchemy import UniqueConstraint, select
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel

from verifier.ledger import Budget, Release, affordable, iso
from verifier.results import Problem


class LedgerAccount(SQLModel, table=True):
    """One row per dataset: the lock every charge on that dataset takes."""
    __tablename__ = "issuer_ledger_account"
    id: Optional[int] = Field(default=None, primary_key=True)
    dataset: str = Field(unique=True)
    created: str


class LedgerRelease(SQLModel, table=True):
    """One release, recorded before its data left."""
    __tablename__ = "issuer_ledger_release"
    id: str = Field(primary_key=True)
    dataset: str = Field(index=True)
    subjects: str = "[]"                     # JSON list of data-subject category IRIs; [] = all
    unit: Optional[str] = None
    approval: str
    recipient: str
    mechanism: Optional[str] = None
    epsilon: Optional[float] = None
    delta: Optional[float] = None
    rho: Optional[float] = None
    series: Optional[str] = None
    output_sha256: Optional[str] = None
    at: str = Field(index=True)              # verifier.ledger.iso (fixed width, orders as text)


class LedgerOutput(SQLModel, table=True):
    """An output this node released, kept for differencing later releases of the same series."""
    __tablename__ = "issuer_ledger_output"
    __table_args__ = (UniqueConstraint("dataset", "series", "sha256", name="uq_issuer_ledger_output_series_sha"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    dataset: str = Field(index=True)
    series: str
    sha256: str
    payload: str                             # base64 of the bytes released
    approval: str
    recipient: str
    at: str


class SqlLedger:
    """The ledger on an engine made by ``issuer.db.make_engine`` and migrated by ``issuer.db.migrate``."""

    def __init__(self, engine: Engine, clock=None):
        self.engine = engine
        self.clock = clock or (lambda: datetime.now(timezone.utc))

    def _lock(self, conn, dataset: str) -> None:
        table = LedgerAccount.__table__
        dialect = conn.dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        conn.execute(insert(table).values(dataset=dataset, created=iso(self.clock()))
                     .on_conflict_do_nothing(index_elements=["dataset"]))
        conn.execute(select(table.c.id).where(table.c.dataset == dataset).with_for_update())

    def charge(self, release: Release, budget: Budget | None, now: datetime | None = None) -> list[Problem]:
        now = now or self.clock()
        table = LedgerRelease.__table__
        with self.engine.begin() as conn:
            self._lock(conn, release.dataset)
            if budget is not None:
                window = budget.window(now)
                earlier = []
                if window is not None:
                    rows = conn.execute(select(table).where(table.c.dataset == release.dataset,
                                                            table.c.at >= iso(window[0]),
                                                            table.c.at < iso(window[1]))).mappings().all()
                    earlier = [{**r, "subjects": json.loads(r["subjects"])} for r in rows]
                problems = affordable(release, budget, earlier, now)
                if problems:
                    conn.rollback()
                    return problems
            conn.execute(table.insert().values(
                id=str(uuid.uuid4()), dataset=release.dataset, subjects=json.dumps(sorted(release.subjects)),
                unit=release.unit, approval=release.approval, recipient=release.recipient,
                mechanism=release.mechanism, epsilon=release.epsilon, delta=release.delta, rho=release.rho,
                series=release.series, output_sha256=release.output_sha256, at=iso(now)))
        return []

    def releases(self, dataset: str) -> list[dict]:
        """Every release of ``dataset`` recorded, oldest first (for auditors)."""
        table = LedgerRelease.__table__
        with self.engine.connect() as conn:
            rows = conn.execute(select(table).where(table.c.dataset == dataset).order_by(table.c.at)).mappings()
            return [{**r, "subjects": json.loads(r["subjects"])} for r in rows]

    def earlier_outputs(self, dataset: str, series: str) -> list[bytes]:
        table = LedgerOutput.__table__
        with self.engine.connect() as conn:
            rows = conn.execute(select(table.c.payload).where(table.c.dataset == dataset, table.c.series == series)
                                .order_by(table.c.at, table.c.id)).scalars().all()
        return [base64.b64decode(p) for p in rows]

    def record_output(self, dataset: str, series: str, payload: bytes, approval: str, recipient: str) -> None:
        table = LedgerOutput.__table__
        digest = hashlib.sha256(payload).hexdigest()
        with self.engine.begin() as conn:
            self._lock(conn, dataset)
            exists = conn.execute(select(table.c.id).where(table.c.dataset == dataset, table.c.series == series,
                                                           table.c.sha256 == digest)).first()
            if exists is None:
                conn.execute(table.insert().values(dataset=dataset, series=series, sha256=digest,
                                                   payload=base64.b64encode(payload).decode("ascii"),
                                                   approval=approval, recipient=recipient, at=iso(self.clock())))


# ---- the authenticated local endpoint (for a verifier service in front of nginx/Envoy) -------------------------

LOOPBACK = {"127.0.0.1", "::1"}


def blueprint(node, body_json):
    """``POST /ledger/charge`` ``{"release": {...}, "budget": {...} | null}`` -> ``{"problems": [...]}``;
    ``POST /ledger/outputs`` ``{"dataset", "series"}`` -> ``{"outputs": [base64...]}``;
    ``POST /ledger/outputs/record`` ``{"dataset", "series", "payload" (base64), "approval", "recipient"}``.
    Each needs a bearer token with the ``ledger`` scope and a loopback client (the gateway on the same host);
    anyone else gets ``auth.not_local`` (403)."""
    from flask import Blueprint, jsonify, request

    from verifier.results import CeadError

    from . import tokens

    bp = Blueprint("ledger", __name__)
    ledger = SqlLedger(node.engine)

    def guard() -> dict:
        if request.remote_addr not in LOOPBACK:
            raise CeadError("auth.not_local", "The privacy-budget ledger answers only the gateway on this host.")
        tokens.require(tokens.authenticate(node.engine, request.headers.get("Authorization")), "ledger")
        return body_json()

    def text(body: dict, name: str) -> str:
        value = body.get(name)
        if not isinstance(value, str) or not value:
            raise CeadError("request.invalid", f"'{name}' must be a non-empty string.", field=name)
        return value

    @bp.post("/ledger/charge")
    def charge():
        body = guard()
        try:
            release = Release.from_json(body.get("release"))
            budget = Budget.from_json(body["budget"]) if body.get("budget") is not None else None
        except ValueError as exc:
            raise CeadError("request.invalid", f"The charge is malformed: {exc}.") from None
        problems = ledger.charge(release, budget)
        return jsonify({"problems": [p.to_dict() for p in problems]})

    @bp.post("/ledger/outputs")
    def outputs():
        body = guard()
        found = ledger.earlier_outputs(text(body, "dataset"), text(body, "series"))
        return jsonify({"outputs": [base64.b64encode(b).decode("ascii") for b in found]})

    @bp.post("/ledger/outputs/record")
    def record():
        body = guard()
        try:
            payload = base64.b64decode(text(body, "payload"), validate=True)
        except ValueError:
            raise CeadError("request.invalid", "'payload' must be base64.", field="payload") from None
        ledger.record_output(text(body, "dataset"), text(body, "series"), payload, text(body, "approval"),
                             text(body, "recipient"))
        return jsonify({"recorded": True})

    return bp
