"""The provider's configuration file (YAML or JSON), checked in full before anything is served.

Every problem raises ``CeadError("provider.config_invalid")`` naming the key (``series.hl1.source.table``) and
what to write there. Paths are relative to the configuration file. Secrets (the upstream API key) are never in the
file: it names the environment variable that holds them.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from schemas.values import read_text
from verifier.results import CeadError

from .sources import ApiSource, DatabaseSource, FilesSource, parse_time

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}\Z")   # \Z: no trailing newline (which $ admits)
TOP_KEYS = {"policy", "node", "public_url", "state", "poll_seconds", "stream", "page", "ca_bundle", "series"}
SERIES_KEYS = {"dataset", "title", "source", "push"}
SOURCE_KEYS = {"files", "pattern", "media_type", "database", "table", "schema", "columns", "api", "api_key_env",
               "key_header", "items_field", "next_field", "cursor_param"}
PUSH_KEYS = {"url", "dataset", "purpose", "from"}


def bad(key: str, message: str) -> CeadError:
    return CeadError("provider.config_invalid", f"{key}: {message}", key=key)


@dataclass
class PushTarget:
    url: str
    dataset: str
    purpose: str | None = None
    after: datetime | None = None
    key: str = "push"            # where it is in the configuration, e.g. series.q.push[0]


@dataclass
class Series:
    name: str
    dataset: str
    source: Any
    title: str | None = None
    push: list[PushTarget] = field(default_factory=list)


@dataclass
class ProviderConfig:
    path: Path
    policy: Path
    series: dict[str, Series]
    node: Path | None = None
    public_url: str | None = None
    state: Path = Path("provider-state")
    poll_seconds: float = 1.0
    heartbeat_seconds: float = 15.0
    stream_max_seconds: float = 300.0
    stream_max_clients: int = 50
    default_limit: int = 100
    max_limit: int = 1000
    ca_bundle: str | None = None


def _https(key: str, value: Any, *, allow_loopback_http: bool = True) -> str:
    if not isinstance(value, str):
        raise bad(key, "give an absolute https URL.")
    parts = urlsplit(value)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme not in ("https", "http") or not parts.hostname or (
            parts.scheme == "http" and not (allow_loopback_http and loopback)):
        raise bad(key, f"{value!r} is not an absolute https URL"
                  + (" (plain http only on 127.0.0.1)." if allow_loopback_http else "."))
    return value


def _number(data: dict, key: str, where: str, default: float, minimum: float, integer: bool = False):
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum or (
            integer and not isinstance(value, int)):
        raise bad(f"{where}{key}", f"give a {'whole ' if integer else ''}number of at least {minimum}.")
    return value


def _unknown(data: dict, allowed: set[str], where: str) -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        raise bad(f"{where}{extra[0]}", f"unknown key; the keys here are {', '.join(sorted(allowed))}.")


def _source(data: Any, where: str, base: Path, ca_bundle: str | None):
    if not isinstance(data, dict):
        raise bad(where, "give a mapping with one of files, database or api.")
    _unknown(data, SOURCE_KEYS, where + ".")
    kinds = [k for k in ("files", "database", "api") if k in data]
    if len(kinds) != 1:
        raise bad(where, "give exactly one of files (a directory), database (a SQLAlchemy URL) or api (a URL).")
    kind = kinds[0]
    if kind == "files":
        if not isinstance(data["files"], str):
            raise bad(f"{where}.files", "give the directory of release files.")
        directory = base / data["files"]
        if not directory.is_dir():
            raise bad(f"{where}.files", f"{directory} is not a directory.")
        return FilesSource(directory, str(data.get("pattern", "*.csv")), str(data.get("media_type", "text/csv")))
    if kind == "database":
        url = data["database"]
        if not isinstance(url, str) or not url.startswith(("postgresql", "sqlite")):
            raise bad(f"{where}.database", "give a SQLAlchemy URL: postgresql://host/db or sqlite:///file.db.")
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            url = "sqlite:///" + str(base / url[len("sqlite:///"):])
        elif url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://"):]
        table = data.get("table")
        if not isinstance(table, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$", table):
            raise bad(f"{where}.table", "give the name of the release table (letters, digits, _).")
        columns = data.get("columns", {})
        if not isinstance(columns, dict) or set(columns) - set(DatabaseSource.COLUMNS) or not all(
                isinstance(v, str) and v for v in columns.values()):
            raise bad(f"{where}.columns", "map id, issued, media_type and body to column names.")
        if url.startswith("sqlite:///"):
            # SQLite would create a missing file (an empty database, no table): the provider only reads
            path = url[len("sqlite:///"):].split("?", 1)[0]
            if not Path(path).is_file():
                raise bad(f"{where}.database", f"no SQLite database file {path}; the provider reads an existing one "
                          "and creates nothing.")
        schema = data.get("schema")
        if schema is not None and (not isinstance(schema, str) or not schema):
            raise bad(f"{where}.schema", "give the name of the schema that holds the table.")
        return DatabaseSource(url, table, columns, schema, where=where, given=data["database"])
    url = _https(f"{where}.api", data["api"])
    env = data.get("api_key_env")
    if not isinstance(env, str) or not env:
        raise bad(f"{where}.api_key_env", "name the environment variable that holds the upstream API key "
                  "(the key itself never goes in this file).")
    key = os.environ.get(env)
    if not key:
        raise bad(f"{where}.api_key_env", f"the environment variable {env} is not set.")
    options = {k: str(data[k]) for k in ("key_header", "items_field", "next_field", "cursor_param") if k in data}
    return ApiSource(url, key, verify=ca_bundle or True, **options)


def parse_config(data: Any, path: Path) -> ProviderConfig:
    base = path.parent
    if not isinstance(data, dict):
        raise bad("(top)", "the provider configuration must be a mapping.")
    _unknown(data, TOP_KEYS, "")
    if not isinstance(data.get("policy"), str):
        raise bad("policy", "name the gateway's trust policy file.")
    policy = base / data["policy"]
    if not policy.is_file():
        raise bad("policy", f"{policy} is not a file.")
    ca_bundle = data.get("ca_bundle")
    if ca_bundle is not None:
        if not isinstance(ca_bundle, str) or not (base / ca_bundle).is_file():
            raise bad("ca_bundle", "name a PEM file of the certificate authorities to trust.")
        ca_bundle = str(base / ca_bundle)
    node = data.get("node")
    if node is not None and (not isinstance(node, str) or not (base / node / "config.yaml").is_file()):
        raise bad("node", "name the provider's node home (a directory made by `cead init`).")
    stream = data.get("stream", {}) or {}
    paging = data.get("page", {}) or {}
    if not isinstance(stream, dict) or not isinstance(paging, dict):
        raise bad("stream" if not isinstance(stream, dict) else "page", "give a mapping.")
    _unknown(stream, {"heartbeat_seconds", "max_seconds", "max_clients"}, "stream.")
    _unknown(paging, {"default_limit", "max_limit"}, "page.")
    series_data = data.get("series")
    if not isinstance(series_data, dict) or not series_data:
        raise bad("series", "give at least one series: a mapping of name to {dataset, source}.")
    series: dict[str, Series] = {}
    for name, entry in series_data.items():
        where = f"series.{name}"
        if not isinstance(name, str) or not NAME.match(name):
            raise bad(where, "a series name is lower-case letters, digits and hyphens (it is a URL segment).")
        if not isinstance(entry, dict):
            raise bad(where, "give a mapping with dataset and source.")
        _unknown(entry, SERIES_KEYS, where + ".")
        dataset = entry.get("dataset")
        if not isinstance(dataset, str) or not urlsplit(dataset).scheme:
            raise bad(f"{where}.dataset", "give the IRI of the DCAT dataset series.")
        pushes = []
        for i, target in enumerate(entry.get("push", []) or []):
            at = f"{where}.push[{i}]"
            if not isinstance(target, dict):
                raise bad(at, "give a mapping with url and dataset.")
            _unknown(target, PUSH_KEYS, at + ".")
            if not isinstance(target.get("dataset"), str):
                raise bad(f"{at}.dataset", "give the IRI of the dataset the recipient collects (what its gateway "
                          "checks the approval against).")
            after = None
            if "from" in target:
                try:
                    after = parse_time(target["from"], f"{at}.from")
                except CeadError as exc:
                    raise bad(f"{at}.from", exc.message) from None
            # https only: the push carries the provider's presentation and the release (never plain http, not even
            # on 127.0.0.1); where it may go is the node's network rules' to say (Provider.check_push_targets)
            pushes.append(PushTarget(_https(f"{at}.url", target.get("url"), allow_loopback_http=False),
                                     target["dataset"], target.get("purpose"), after, key=at))
        if pushes and node is None:
            raise bad("node", "pushing needs the provider's node (its wallet presents the approval).")
        series[name] = Series(name, dataset, _source(entry.get("source"), f"{where}.source", base, ca_bundle),
                              entry.get("title"), pushes)
    public_url = data.get("public_url")
    if public_url is not None:
        public_url = _https("public_url", public_url).rstrip("/")
    default_limit = _number(paging, "default_limit", "page.", 100, 1, True)
    return ProviderConfig(
        path=path, policy=policy, series=series, node=base / node if node else None, public_url=public_url,
        state=base / str(data.get("state", "provider-state")),
        poll_seconds=_number(data, "poll_seconds", "", 1.0, 0.05),
        heartbeat_seconds=_number(stream, "heartbeat_seconds", "stream.", 15.0, 0.1),
        stream_max_seconds=_number(stream, "max_seconds", "stream.", 300.0, 1),
        stream_max_clients=_number(stream, "max_clients", "stream.", 50, 1, True),
        default_limit=default_limit, max_limit=_number(paging, "max_limit", "page.", max(1000, default_limit), 1, True),
        ca_bundle=ca_bundle)


def load_config(path: str | Path) -> ProviderConfig:
    path = Path(path).resolve()
    try:
        text = read_text(path, str(path))
    except OSError as exc:
        raise CeadError("provider.config_unreadable", f"Cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:     # not UTF-8 text
        raise CeadError("provider.config_unreadable", f"{exc}.") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CeadError("provider.config_invalid", f"{path} is not valid YAML or JSON: {exc}", key="(file)") \
            from None
    return parse_config(data, path)
