"""Where a dataset series' releases come from: a directory of release files, a database table, or an upstream
paginated REST API with an API key. Each source lists releases (newest last) and reads one release's body.

A release is one issue of a DCAT dataset series: an id, the time it was issued, a media type and a body.
"""
from __future__ import annotations

import base64
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from verifier.results import CeadError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Release:
    id: str
    issued: datetime          # timezone-aware, UTC
    media_type: str = "text/csv"

    @property
    def key(self) -> tuple[datetime, str]:
        return (self.issued, self.id)

    def to_dict(self, base_url: str | None = None) -> dict[str, Any]:
        out = {"id": self.id, "issued": iso(self.issued), "mediaType": self.media_type}
        if base_url is not None:
            out["url"] = f"{base_url}/{self.id}"
        return out


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def parse_time(value: Any, what: str) -> datetime:
    """An ISO 8601 date or date-time (a date-time without a zone is taken as UTC); ``provider.time_invalid``."""
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip()
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise CeadError("provider.time_invalid", f"{what} {text!r} is not an ISO 8601 date or date-time "
                            "(e.g. 2026-03-31 or 2026-03-31T09:00:00Z).") from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


RELEASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")   # \Z: no trailing newline
LEADING_DATE = re.compile(r"^(\d{4}-\d{2}(?:-\d{2})?)")


class FilesSource:
    """Release files in a directory: ``<id>.csv`` (``pattern``, default ``*.csv``). A release's time of issue is
    the ISO date its file name starts with (``2026-03.csv``, ``2026-03-31-returns.csv``), else the file's
    modification time."""

    def __init__(self, directory: str | Path, pattern: str = "*.csv", media_type: str = "text/csv"):
        self.directory = Path(directory)
        self.pattern = pattern
        self.media_type = media_type

    def releases(self, since: datetime | None = None) -> list[Release]:
        try:
            paths = [p for p in self.directory.glob(self.pattern) if p.is_file()]
        except OSError as exc:
            raise CeadError("provider.source_unavailable", f"Cannot read {self.directory}: {exc}") from None
        out = []
        for path in paths:
            rid = path.stem
            if not RELEASE_ID.match(rid) or path.name.startswith("."):
                continue      # a partly written file (".x.tmp") or a name that cannot be a URL segment
            match = LEADING_DATE.match(rid)
            try:
                if match:
                    text = match.group(1)
                    issued = parse_time(text + ("-01" if len(text) == 7 else ""), "release")
                else:
                    issued = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
            except (CeadError, OSError):
                continue
            if since is None or issued > since:
                out.append(Release(rid, issued, self.media_type))
        return sorted(out, key=lambda r: r.key)

    def body(self, release_id: str) -> bytes | None:
        if not RELEASE_ID.match(release_id):
            return None
        for path in self.directory.glob(self.pattern):
            if path.stem == release_id and path.is_file():
                return path.read_bytes()
        return None


class DatabaseSource:
    """A table with one row per release (SQLAlchemy URL: PostgreSQL or SQLite). ``columns`` maps ``id``,
    ``issued``, ``media_type`` and ``body`` to the table's column names.

    A row is a release once its body is there (a row whose body is NULL is not listed, so a producer may write the
    row first and its body after). A row whose id cannot be a URL segment, or whose ``issued`` is not a time, is
    left out and said once in the log (``wallet.provider.sources``), naming the row. Messages never show the
    URL's password (give it in PGPASSWORD or ~/.pgpass rather than in the URL)."""

    COLUMNS = ("id", "issued", "media_type", "body")

    def __init__(self, url: str, table: str, columns: dict[str, str] | None = None, schema: str | None = None,
                 *, where: str = "database", given: str | None = None):
        import sqlalchemy as sa
        self.columns = {"id": "release_id", "issued": "issued", "media_type": "media_type", "body": "body"}
        self.columns.update(columns or {})
        self.where = where
        self.shown = _hide_password(given or url)      # as the configuration wrote it
        try:
            self.engine = sa.create_engine(url, pool_pre_ping=True)
        except Exception as exc:  # an unknown dialect, a missing driver
            reason = str(exc).replace(url, self.shown)
            raise CeadError("provider.config_invalid", f"{where}.database: cannot use {self.shown}: {reason} "
                            "(write postgresql://HOST/DB or sqlite:///FILE.db)", key=f"{where}.database") from None
        c = self.columns
        self.table = sa.Table(table, sa.MetaData(), sa.Column(c["id"], sa.String), sa.Column(c["issued"]),
                              sa.Column(c["media_type"], sa.String), sa.Column(c["body"]), schema=schema)
        self.name = f"{schema}.{table}" if schema else table
        self._sa = sa
        self._said: set[tuple[str, str]] = set()

    def dispose(self) -> None:
        """Forget the pooled connections (in a worker process after a fork: never share a parent's connection)."""
        self.engine.dispose(close=False)

    def _run(self, statement):
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(statement))
        except self._sa.exc.SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise CeadError("provider.source_unavailable", f"{self.where}: the release table {self.name} at "
                            f"{self.shown} cannot be read: {reason}", key=self.where) from None

    def _say_once(self, rid: str, why: str) -> None:
        if (rid, why) not in self._said:
            self._said.add((rid, why))
            log.warning("%s: row %r of %s is not served: %s", self.where, rid, self.name, why)

    def releases(self, since: datetime | None = None) -> list[Release]:
        t, c = self.table.c, self.columns
        query = self._sa.select(t[c["id"]], t[c["issued"]], t[c["media_type"]]).where(t[c["body"]].is_not(None))
        out = []
        for rid, issued, media in self._run(query):
            rid = str(rid)
            if not RELEASE_ID.match(rid):
                self._say_once(rid, f"its {c['id']} is not a release id (letters, digits, '.', '_', '-'; it is a "
                               "URL segment)")
                continue
            try:
                moment = parse_time(issued, c["issued"])
            except CeadError as exc:
                self._say_once(rid, exc.message)
                continue
            if since is None or moment > since:
                out.append(Release(rid, moment, media or "text/csv"))
        return sorted(out, key=lambda r: r.key)

    def body(self, release_id: str) -> bytes | None:
        if not RELEASE_ID.match(release_id):
            return None
        t, c = self.table.c, self.columns
        rows = self._run(self._sa.select(t[c["body"]]).where(t[c["id"]] == release_id)
                         .where(t[c["body"]].is_not(None)))
        if not rows:
            return None
        value = rows[0][0]
        if isinstance(value, str):
            return value.encode("utf-8")
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value)
        raise CeadError("provider.source_unavailable", f"{self.where}: the {c['body']} of release {release_id} is "
                        f"a {type(value).__name__}, not text or bytes (use a text or bytea/BLOB column).",
                        key=self.where)


def _hide_password(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url
        return make_url(url).render_as_string(hide_password=True)
    except Exception:   # not a URL SQLAlchemy reads: say no more of it than its scheme
        return url.split("://", 1)[0] + "://..."


class ApiSource:
    """An upstream REST API with cursor paging and an API key (the shape NHS Scotland's data APIs use):
    ``GET {url}?{cursor_param}=C`` answers ``{items_field: [{id, issued, mediaType}], next_field: C or null}`` and
    ``GET {url}/{id}`` the release itself. The key goes upstream in ``key_header``; it never reaches a client."""

    def __init__(self, url: str, api_key: str, *, key_header: str = "X-API-Key", items_field: str = "items",
                 next_field: str = "next", cursor_param: str = "cursor", verify: str | bool = True,
                 max_pages: int = 1000, timeout: float = 30.0):
        import requests
        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.session.headers[key_header] = api_key
        self.items_field, self.next_field, self.cursor_param = items_field, next_field, cursor_param
        self.verify, self.max_pages, self.timeout = verify, max_pages, timeout

    def _get(self, url: str, params: dict | None = None):
        import requests
        try:
            response = self.session.get(url, params=params, verify=self.verify, timeout=self.timeout,
                                        allow_redirects=False)
        except requests.RequestException as exc:
            raise CeadError("provider.upstream_failed", f"The upstream API at {self.url} cannot be reached: "
                            f"{exc.__class__.__name__}") from None
        return response

    def releases(self, since: datetime | None = None) -> list[Release]:
        out, cursor = [], None
        for _ in range(self.max_pages):
            response = self._get(self.url, {self.cursor_param: cursor} if cursor else None)
            if response.status_code != 200:
                raise CeadError("provider.upstream_failed", f"The upstream API at {self.url} answered HTTP "
                                f"{response.status_code} (is the API key right?).", status=response.status_code)
            try:
                page = response.json()
                items = page[self.items_field]
            except (ValueError, KeyError, TypeError):
                raise CeadError("provider.upstream_failed", f"The upstream API at {self.url} did not answer with "
                                f"a page of {self.items_field!r}.") from None
            for item in items if isinstance(items, list) else []:
                try:
                    release = Release(str(item["id"]), parse_time(item["issued"], "issued"),
                                      str(item.get("mediaType") or "text/csv"))
                except (KeyError, TypeError, CeadError):
                    continue
                if RELEASE_ID.match(release.id) and (since is None or release.issued > since):
                    out.append(release)
            cursor = page.get(self.next_field) if isinstance(page, dict) else None
            if not cursor:
                break
        return sorted(out, key=lambda r: r.key)

    def body(self, release_id: str) -> bytes | None:
        if not RELEASE_ID.match(release_id):
            return None
        response = self._get(f"{self.url}/{release_id}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise CeadError("provider.upstream_failed", f"The upstream API answered HTTP {response.status_code} "
                            f"for release {release_id}.", status=response.status_code)
        return response.content


# ---- paging ------------------------------------------------------------------------------------------------------
def encode_cursor(release: Release) -> str:
    raw = json.dumps([iso(release.issued), release.id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        issued, rid = json.loads(raw)
        return parse_time(issued, "cursor"), str(rid)
    except (ValueError, TypeError, CeadError):
        raise CeadError("provider.cursor_invalid", "The cursor is not one this provider gave; start again "
                        "without it.") from None


def page(releases: list[Release], cursor: str | None, limit: int) -> tuple[list[Release], str | None]:
    """``limit`` releases after ``cursor`` (oldest first) and the cursor for the next page (None: the last)."""
    if cursor:
        after = decode_cursor(cursor)
        releases = [r for r in releases if r.key > after]
    chosen = releases[:limit]
    more = len(releases) > limit
    return chosen, (encode_cursor(chosen[-1]) if more and chosen else None)
