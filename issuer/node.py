"""The node home: an organisation's identity (did:web or did:key), its keys encrypted at rest, its config and
its database. ``Node`` is the one object the issuer, the wallet and the command line use.

Layout of a home directory (``--home``, ``$CEAD_HOME`` or ``./cead-home``)::

    config.yaml     name, domain, path, did, public_url, database_url (null = node.db here), keys,
                    network (how the node's wallet fetches DID documents and status lists: allow_http,
                    allow_private, ca_bundle, timeout, as in a trust policy), vocabulary (a JSON/YAML file of
                    ``broader``/``isPartOf`` terms for the guard rail and the wallet), notifications and
                    notifications_interval (docs/notifications.md), witnesses and witness_interval (the
                    witness endpoints the log is submitted to, docs/evidence.md); relative paths resolve against
                    the home
    keys/*.pem      PKCS#8, encrypted with the passphrase ($CEAD_PASSPHRASE or a prompt), mode 0600
    node.db         SQLite database (unless database_url names another, e.g. PostgreSQL), mode 0600 (its -journal
                    and -wal files take the same mode)

The passphrase is never stored. ``cead init`` on an existing home never overwrites keys.
"""
from __future__ import annotations

import copy
import logging
import os
import ssl
import threading
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote, urlsplit

import yaml
from pydantic import ValidationError

from schemas.values import read_text
from schemas.vocab import Vocabulary, extended, registry
from verifier.http import NODE_PRIVATE_FIX, Fetcher
from verifier.keys import ED25519, KINDS, P256, PublicKey
from verifier.policy import Network, format_error
from verifier.results import CeadError

from . import db
from .keys import PrivateKey

log_ = logging.getLogger(__name__)
CONFIG = "config.yaml"
PASSPHRASE_ENV = "CEAD_PASSPHRASE"
HOME_ENV = "CEAD_HOME"


def default_home() -> Path:
    return Path(os.environ.get(HOME_ENV) or "cead-home")


def did_web(domain: str, path: str | None = None) -> str:
    """``did:web`` for a host (port percent-encoded, ``127.0.0.1:8443`` -> ``127.0.0.1%3A8443``) and path.

    The verifier's own reading decides what is valid (one rule: ``verifier.did.did_web_url`` and
    ``did_web_from_url``): a DNS name or IPv4 address, a port 1-65535, path segments of unreserved characters other
    than ``.`` and ``..``; and the DID must be the one a verifier derives back from its URL (so no ``:443``, no
    empty port). Raises ``node.domain_invalid`` naming the value."""
    from verifier.did import did_web_from_url, did_web_url
    if not isinstance(domain, str) or not domain:
        raise CeadError("node.domain_invalid", f"Not a host name (with optional port): {domain!r}.")
    if path is not None and not isinstance(path, str):
        raise CeadError("node.domain_invalid", f"Not a did:web path: {path!r}.")
    segments = path.strip("/").split("/") if path and path.strip("/") else []
    did = ":".join(["did:web:" + quote(domain.lower(), safe=".-")] + [quote(s, safe="") for s in segments])
    try:
        url = did_web_url(did)
        canonical = did_web_from_url(url)
    except (CeadError, ValueError):
        where = f"{domain!r}" + (f" with path {path!r}" if segments else "")
        raise CeadError("node.domain_invalid", f"{where} does not make a valid did:web: give a host name or IPv4 "
                        "address, an optional port 1-65535 (e.g. fife.example or 127.0.0.1:8443) and path segments "
                        "of letters, digits and . _ ~ - (not '.' or '..').", domain=domain) from None
    if canonical != did:
        raise CeadError("node.domain_invalid", f"{domain!r} does not make a canonical did:web: verifiers read "
                        f"{url} as {canonical}; use that form.", domain=domain)
    return did


def check_public_url(url: Any, network: Network | None = None) -> str:
    """The node's public base URL (status-list URLs start with it), without a trailing slash: an absolute ``https``
    URL with a host and no query, fragment or user name (the verifier's URL rule, ``did_web_from_url``). Plain
    ``http`` only where the node's network settings allow it: ``allow_http``, or a loopback host with
    ``allow_private`` (a development setup on one machine). Raises ``node.public_url_invalid`` naming the value."""
    from verifier.did import did_web_from_url
    text = url if isinstance(url, str) else ""
    scheme, sep, rest = text.partition("://")
    scheme = scheme.lower()
    bad = CeadError("node.public_url_invalid", f"--public-url {str(url)[:200]!r} is not an absolute https URL "
                    "with a host name (e.g. https://fife.example or https://fife.example/cead); no query, fragment "
                    "or user name.", url=str(url)[:200])
    if not sep or scheme not in ("https", "http"):
        raise bad
    try:
        did_web_from_url("https://" + rest.rstrip("/"))
        parts = urlsplit("https://" + rest)
        host, port = parts.hostname or "", parts.port
    except (CeadError, ValueError):
        raise bad from None
    if port == 0 or "@" in parts.netloc:
        raise bad
    if scheme == "http":
        net = network or Network()
        loopback = host == "localhost" or host.startswith("127.")
        if not (net.allow_http or (loopback and net.allow_private)):
            raise CeadError("node.public_url_invalid", f"--public-url {text[:200]!r} is plain http: use https (http "
                            "only for a loopback address with --allow-private-addresses, or with network.allow_http, "
                            "for development).", url=text[:200])
    return f"{scheme}://{rest}".rstrip("/")


def passphrase_from_env() -> bytes | None:
    value = os.environ.get(PASSPHRASE_ENV)
    return value.encode() if value else None


class Node:
    """An opened node home. Keys are decrypted on first use and kept in memory only."""

    def __init__(self, home: Path, config: dict[str, Any], passphrase: bytes | None = None):
        self.home = Path(home)
        self.config = config
        self.network = parse_network(config.get("network"), self.home)
        self.vocabulary = load_vocabulary(config.get("vocabulary"), self.home)
        self._passphrase = passphrase
        self._keys: dict[str, PrivateKey] = {}
        self._engine = None
        self._lock = threading.Lock()
        # which config.yaml the keys were read from (inode, mtime, size): another process's `cead key rotate` or
        # `cead key retire` replaces the file, and a running node (`cead issuer serve`) takes its new keys from
        # it on its next use of a key (_fresh), without a restart
        self._config_stamp = _stamp_of(self.home / CONFIG)
        self._config_lock = threading.Lock()
        # how the guard rail reads the status of the signer's own delegation (issuer.delegation_status); None: a
        # StatusLists with this node's network settings
        self.status_checker = None

    # ---- creating and opening ---------------------------------------------------------------------------
    @classmethod
    def init(cls, home: str | Path, name: str, passphrase: bytes | Callable[[], bytes] | None, *,
             domain: str | None = None, path: str | None = None, did_method: str = "web",
             database_url: str | None = None,
             public_url: str | None = None, network: dict[str, Any] | None = None,
             vocabulary: str | Path | None = None) -> tuple["Node", bool]:
        """Create a node home; returns ``(node, created)``. An existing home is opened and never overwritten
        (``CeadError('node.exists_conflict')`` if the flags ask for a different identity; its settings are
        left as they are). ``passphrase`` may be a callable (a prompt), called only once everything else is
        known to be good.

        ``network``: the ``network`` settings of a trust policy (``allow_http``, ``allow_private``, ``ca_bundle``,
        ``timeout``); ``vocabulary``: a JSON/YAML file for ``schemas.vocab.Vocabulary.load``. File paths given
        here are relative to the current directory and stored absolute. Bad values raise
        ``node.config_invalid`` before anything is written.
        """
        home = Path(home)
        if (home / CONFIG).exists():
            node = cls.open(home, passphrase() if callable(passphrase) else passphrase)
            wanted = did_web(domain, path) if did_method == "web" and domain else None
            if (did_method == "key") != node.did.startswith("did:key:") or (wanted and wanted != node.did):
                raise CeadError("node.exists_conflict",
                                f"{home} already holds the node {node.did}; its keys are never overwritten.")
            return node, False
        # Everything is checked before anything is written (or anyone is asked for a passphrase), and config.yaml
        # is written last: a refusal or a crash leaves no home that a re-run would take for a node.
        if not isinstance(name, str) or not name.strip():
            raise CeadError("node.name_required", "The organisation needs a name (--name).")
        if did_method not in ("web", "key"):
            raise CeadError("node.did_method", f"Unsupported DID method {did_method!r}; use web or key.")
        if did_method == "web" and not domain:
            raise CeadError("node.domain_required", "A did:web node needs --domain.")
        web_did = did_web(domain, path) if did_method == "web" else None
        if isinstance(network, dict) and isinstance(network.get("ca_bundle"), (str, Path)):
            network = {**network, "ca_bundle": str(Path(network["ca_bundle"]).expanduser().resolve())}
        parsed_network = parse_network(network, home, given="--ca-bundle")
        settings = {"network": parsed_network.model_dump(),
                    "vocabulary": str(Path(vocabulary).expanduser().resolve()) if vocabulary else None}
        load_vocabulary(settings["vocabulary"], home, given="--vocabulary")  # fail now, before any key is written
        if public_url is not None:
            public_url = check_public_url(public_url, parsed_network)
        elif domain:
            public_url = check_public_url(_default_public_url(domain, path), parsed_network)
        if database_url is not None:
            if not isinstance(database_url, str) or not database_url.strip():
                raise CeadError("node.config_invalid", "--database-url is empty; omit it for SQLite in the home.")
            db.check_connection(db.make_engine(database_url))   # a bad URL or an unreachable server: nothing written
        if callable(passphrase):    # asked for only now that the settings are known to be good
            passphrase = passphrase()
        if not passphrase:
            raise CeadError("key.passphrase_required", "A passphrase is needed to encrypt the keys at rest.")
        ed = PrivateKey.generate(ED25519)
        if did_method == "key":
            from verifier.did import did_key
            did = did_key(ed.public)
            keys = [{"id": ed.public.to_multikey(), "kind": ED25519, "file": "keys/ed25519-1.pem",
                     "public": ed.public.to_multikey(), "status": "active", "created": db.utcnow()}]
            pairs = [(ed, keys[0])]
        else:
            did = web_did
            p256 = PrivateKey.generate(P256)
            keys = [{"id": "key-1", "kind": ED25519, "file": "keys/key-1.pem", "public": ed.public.to_multikey(),
                     "status": "active", "created": db.utcnow()},
                    {"id": "key-p256-1", "kind": P256, "file": "keys/key-p256-1.pem",
                     "public": p256.public.to_multikey(), "status": "active", "created": db.utcnow()}]
            pairs = [(ed, keys[0]), (p256, keys[1])]
        config = {
            "name": name.strip(), "did": did, "did_method": did_method,
            "domain": domain if did_method == "web" else None, "path": (path or "").strip("/") or None,
            "public_url": public_url, "database_url": database_url, **settings, "keys": keys,
        }
        node = cls(home, config, passphrase)
        home.mkdir(parents=True, exist_ok=True)
        try:
            db.migrate(node.engine)                  # the tables first: a database that fails leaves no node
        except Exception as exc:
            if not db.is_database_error(exc):
                raise
            raise db.database_error(exc, node.database_url) from None
        (home / "keys").mkdir(mode=0o700, exist_ok=True)
        for key, meta in pairs:
            _write_key(home / meta["file"], key, passphrase)
        node.save_config()                           # last: config.yaml is what makes the home a node
        node._log_keys("key.added", keys)            # the node's log starts with its keys (issue 15)
        return node, True

    @classmethod
    def open(cls, home: str | Path | None = None, passphrase: bytes | str | None = None,
             migrate: bool = False) -> "Node":
        home = Path(home) if home else default_home()
        stamp = _stamp_of(home / CONFIG)     # before reading: a change made while it is read is seen next time
        try:
            text = read_text(home / CONFIG, str(home / CONFIG))
        except FileNotFoundError:
            raise CeadError("node.not_found", f"No node at {home} (run `cead init`).") from None
        except OSError as exc:        # a directory, no permission
            raise CeadError("node.config_invalid", f"Cannot read {home / CONFIG}: {exc.strerror or exc}.") from None
        except ValueError as exc:     # not UTF-8 text
            raise CeadError("node.config_invalid", f"{exc}.") from None
        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise CeadError("node.config_invalid", f"{home / CONFIG} is not valid YAML: {exc}") from None
        if not isinstance(config, dict) or not isinstance(config.get("did"), str) or not config.get("keys"):
            raise CeadError("node.config_invalid", f"{home / CONFIG} lacks a did or keys.")
        if isinstance(passphrase, str):
            passphrase = passphrase.encode()
        node = cls(home, config, passphrase)
        node._config_stamp = stamp
        if migrate:
            db.migrate(node.engine)
        return node

    def save_config(self) -> None:
        """Atomically and durably: the new file is flushed to disk before it replaces the old one (a crash leaves
        the old or the new config, never an empty one beside keys it no longer lists). Mode 0600: a
        ``database_url`` may carry a password."""
        tmp = self.home / (CONFIG + ".tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(yaml.safe_dump(self.config, sort_keys=False))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.home / CONFIG)
        _fsync_dir(self.home)
        self._config_stamp = _stamp_of(self.home / CONFIG)

    def _fresh(self) -> None:
        """Take the keys from config.yaml again if the file changed since they were read: a key rotation or
        retirement by another process (`cead key rotate` while `cead issuer serve` runs) holds in this one from its
        next signature on, so a running node never goes on signing with a key that was rotated away or retired.
        Only ``keys`` is taken (settings given at start, such as `serve --public-url`, stay); a file that cannot be
        read as a node's config leaves the keys as they were (logged)."""
        path = self.home / CONFIG
        stamp = _stamp_of(path)
        if stamp is None or stamp == self._config_stamp:
            return
        with self._config_lock:
            if stamp == self._config_stamp:
                return
            try:
                data = yaml.safe_load(read_text(path, str(path)))
                keys = data.get("keys") if isinstance(data, dict) else None
                if data.get("did") != self.did or not _keys_valid(keys):
                    raise ValueError("its did or keys are missing or malformed")
            except (OSError, ValueError, yaml.YAMLError, AttributeError) as exc:
                log_.warning("%s changed but was not taken: %s; the node keeps the keys it had", path, exc)
                self._config_stamp = stamp
                return
            self.config["keys"] = keys
            self._config_stamp = stamp

    # ---- identity ---------------------------------------------------------------------------------------
    @property
    def did(self) -> str:
        return self.config["did"]

    @property
    def name(self) -> str:
        return self.config.get("name", "")

    @property
    def public_url(self) -> str:
        url = self.config.get("public_url")
        if not url:
            raise CeadError("node.public_url_missing",
                            "This node has no public URL for its status lists (set public_url or --public-url).")
        return url.rstrip("/")

    def _active(self, kind: str) -> dict:
        self._fresh()
        for meta in reversed(self.config["keys"]):
            if meta["kind"] == kind and meta.get("status") == "active":
                return meta
        raise CeadError("key.missing", f"This node has no active {kind} key.")

    def has_key(self, kind: str) -> bool:
        """Whether the node has a current signing key of ``kind`` (a did:key node has only its Ed25519 key)."""
        self._fresh()
        return any(m["kind"] == kind and m.get("status") == "active" for m in self.config["keys"])

    def vm_id(self, meta: dict) -> str:
        return f"{self.did}#{meta['id']}"

    @property
    def verification_method_id(self) -> str:
        """The DID URL of the current Ed25519 signing key."""
        return self.vm_id(self._active(ED25519))

    def verification_method_for(self, kind: str = ED25519) -> str:
        return self.vm_id(self._active(kind))

    def signing_key(self, kind: str = ED25519) -> PrivateKey:
        """The current signing key of ``kind`` (decrypted on first use with the passphrase)."""
        return self._private(self._active(kind))

    def signer(self, kind: str = ED25519) -> tuple[PrivateKey, str]:
        """The current signing key of ``kind`` and its verification method id, read together (a rotation by
        another process between two separate reads could otherwise pair one key with the other's id)."""
        meta = self._active(kind)
        return self._private(meta), self.vm_id(meta)

    def private_key_for(self, public_multikey: str) -> PrivateKey:
        """The private half of the node's key whose public key is ``public_multikey``, if it is not retired (the
        log's checkpoints are signed with the key the log itself names: ``issuer.evidence.log``). Raises
        ``key.missing`` (config.yaml does not hold it) or ``key.retired``."""
        self._fresh()
        for meta in self.config["keys"]:
            if meta.get("public") == public_multikey:
                if meta.get("status") == "retired":
                    raise CeadError("key.retired", f"The key {meta['id']} is retired: nothing is signed with it "
                                    "any more.", key=meta["id"])
                return self._private(meta)
        raise CeadError("key.missing", f"config.yaml of {self.home} holds no key {public_multikey[:24]}...",
                        key=public_multikey)

    def _private(self, meta: dict) -> PrivateKey:
        with self._lock:
            if meta["id"] not in self._keys:
                passphrase = self._passphrase or passphrase_from_env()
                if not passphrase:
                    raise CeadError("key.locked", f"The node's keys are encrypted; set {PASSPHRASE_ENV}.")
                self._keys[meta["id"]] = PrivateKey.from_pem((self.home / meta["file"]).read_bytes(), passphrase)
            return self._keys[meta["id"]]

    @property
    def key(self) -> PrivateKey:
        return self.signing_key(ED25519)

    def public_keys(self, retired: bool = False) -> list[tuple[str, PublicKey]]:
        """``[(vm_id, PublicKey)]`` of the keys that are (``retired=False``) or are not in use any more."""
        self._fresh()
        return [(self.vm_id(m), PublicKey.from_multikey(m["public"]))
                for m in self.config["keys"] if (m.get("status") == "retired") == retired]

    def did_document(self) -> dict:
        """Current and previous keys under every purpose; retired keys only as key material (no purpose)."""
        from verifier.did import build_did_document
        return build_did_document(self.did, self.public_keys(), retired=self.public_keys(retired=True))

    # ---- key rotation -----------------------------------------------------------------------------------
    def rotate_key(self, kind: str = ED25519) -> str:
        """Add a new active key of ``kind``; the previous one stays in the DID document until retired.

        Crash-safe in three durable steps, each leaving the node signing only with keys its log names: (1) the new
        key's file is written and config.yaml names it ``pending`` (nothing signs with a pending key: credentials
        are signed by the ``active`` one, checkpoints by the key the log names); (2) it is logged (``key.added``);
        (3) config.yaml makes it ``active`` and the one before ``previous``. For the Ed25519 key, which signs the
        log's checkpoints, step 2 writes the entry and the checkpoint of the tree that ends with it in one
        transaction, that checkpoint signed by the previous key and the new one: the previous key vouches for the
        new one in the log, which is what lets a witness follow the rotation (``issuer.evidence.witness.add_key``).

        A rotation cut short (a crash, a failing database) is completed by rotating again: a pending key is
        logged if it is not yet, then made active, rather than a further key made; so is an active key a rotation
        from before this order left without its entry. Should step 2 fail in this process, config.yaml and the key
        file are put back as they were."""
        if self.did.startswith("did:key:"):
            raise CeadError("key.rotate_unsupported", "A did:key node cannot rotate keys; its DID is its key.")
        passphrase = self._passphrase or passphrase_from_env()
        if not passphrase:
            raise CeadError("key.locked", f"Set {PASSPHRASE_ENV} to encrypt the new key.")
        if kind not in KINDS:
            raise CeadError("key.unsupported", f"Unsupported key type {kind!r}; use one of {', '.join(KINDS)}.")
        self._fresh()
        # proves the passphrase is the node's before writing a key with it (a first key of a new curve is
        # proven with the node's Ed25519 key)
        self.signing_key(kind if self.has_key(kind) else ED25519)
        unfinished = self.unfinished_rotation(kind)
        if unfinished is not None and not (self.home / unfinished["file"]).exists() \
                and unfinished.get("status") == "pending" and not self._logged(unfinished):
            # its key file is gone and nothing names or used it: that rotation is undone, and a new one made
            log_.warning("the rotation to %s was cut short and its key file %s is gone: undone", unfinished["id"],
                         unfinished["file"])
            self.config["keys"] = [m for m in self.config["keys"] if m is not unfinished]
            self.save_config()
        elif unfinished is not None:
            return self._finish_rotation(unfinished)
        prefix = "key" if kind == ED25519 else "key-" + kind.replace("-", "").lower()   # key-p256-2, key-p384-1
        n = 1 + sum(1 for m in self.config["keys"] if m["kind"] == kind)
        key_id = f"{prefix}-{n}"
        key = PrivateKey.generate(kind)
        path = self.home / f"keys/{key_id}.pem"
        _write_key(path, key, passphrase)
        before = copy.deepcopy(self.config["keys"])
        meta = {"id": key_id, "kind": kind, "file": f"keys/{key_id}.pem", "public": key.public.to_multikey(),
                "status": "pending", "created": db.utcnow()}
        self.config["keys"].append(meta)
        self.save_config()
        try:
            self._log_added(meta)
        except BaseException:
            self.config["keys"] = before
            self.save_config()
            path.unlink(missing_ok=True)
            raise
        return self._finish_rotation(meta)

    def unfinished_rotation(self, kind: str = ED25519) -> dict | None:
        """The key of ``kind`` a rotation was cut short on, or None: the newest ``pending`` key of config.yaml
        (its rotation stopped before making it active, with or without its log entry); else the active key, when
        the log names an earlier key of ``kind`` but not it (a rotation from before the pending step, cut short
        before its log entry). ``cead key rotate`` completes it."""
        from .evidence import record
        self._fresh()
        keys = [m for m in self.config["keys"] if m["kind"] == kind]
        pending = [m for m in keys if m.get("status") == "pending"]
        if pending:
            return pending[-1]
        active = [m for m in keys if m.get("status") == "active"]
        if not active or len(keys) < 2:
            return None
        log = record.log_of(self)
        if log.find(record.key_digest(active[-1]["public"]), kind=record.KEY_ADDED):
            return None
        logged = any(log.find(record.key_digest(m["public"]), kind=record.KEY_ADDED)
                     for m in keys if m is not active[-1])
        return active[-1] if logged else None

    def _log_added(self, meta: dict) -> None:
        """Step 2 of a rotation: the ``key.added`` entry for ``meta`` (with its handover checkpoint for Ed25519)."""
        from .evidence import record
        record.key_changed(self, record.KEY_ADDED, self.vm_id(meta), meta["public"], handover=meta["kind"] == ED25519)

    def _logged(self, meta: dict) -> bool:
        from .evidence import record
        return bool(record.log_of(self).find(record.key_digest(meta["public"]), kind=record.KEY_ADDED))

    def _finish_rotation(self, meta: dict) -> str:
        """Steps 2 (when the log does not name ``meta`` yet) and 3 of a rotation."""
        if not self._logged(meta):
            self._private(meta)      # its file is there and opens with the passphrase (else: said, nothing logged)
            self._log_added(meta)
        self._fresh()                # config.yaml as it is now (another process may have written it meanwhile)
        meta = next((m for m in self.config["keys"] if m["id"] == meta["id"]), meta)
        if meta.get("status") != "active":
            for other in self.config["keys"]:
                if other["kind"] == meta["kind"] and other.get("status") == "active":
                    other["status"] = "previous"
            meta["status"] = "active"
            self.save_config()
        return self.vm_id(meta)

    def retire_key(self, key_id: str) -> None:
        """Remove a previous key from the DID document: credentials it signed stop verifying."""
        key_id = key_id.split("#")[-1]
        self._fresh()
        for meta in self.config["keys"]:
            if meta["id"] == key_id:
                if meta.get("status") == "active":
                    raise CeadError("key.retire_active", f"{key_id} is the current signing key; rotate first.")
                if meta.get("status") == "pending":
                    raise CeadError("key.retire_active", f"{key_id} is the key a rotation was cut short on: run "
                                    "`cead key rotate` to complete it, then retire the key before it.")
                from .evidence import record
                if meta.get("public") == record.log_of(self).named_key():
                    raise CeadError("key.retire_active", f"{key_id} is the key the node's log names as its "
                                    "current one (its rotation was cut short): run `cead key rotate` first.")
                meta["status"] = "retired"
                meta["retired"] = db.utcnow()
                self.save_config()
                self._log_keys("key.retired", [meta])
                return
        raise CeadError("key.missing", f"No key {key_id!r} in this node.")

    def _log_keys(self, kind: str, metas: list[dict]) -> None:
        """Record key changes in the node's log, so a re-key without a log entry is visible (issue 15)."""
        from .evidence import record
        for meta in metas:
            record.key_changed(self, kind, self.vm_id(meta), meta["public"])

    # ---- network --------------------------------------------------------------------------------------
    def fetcher(self) -> Fetcher:
        """A ``verifier.http.Fetcher`` for DID documents and status lists, with the node's network settings."""
        net = self.network
        return Fetcher(allow_http=net.allow_http, allow_private=net.allow_private, ca_bundle=net.ca_bundle,
                       timeout=net.timeout, private_fix=NODE_PRIVATE_FIX)

    # ---- database ---------------------------------------------------------------------------------------
    @property
    def database_url(self) -> str:
        return self.config.get("database_url") or f"sqlite:///{(self.home / 'node.db').resolve()}"

    @property
    def engine(self):
        with self._lock:
            if self._engine is None:
                if not self.config.get("database_url"):
                    _private_file(self.home / "node.db")
                self._engine = db.make_engine(self.database_url)
            return self._engine

    def session(self):
        return db.session(self.engine)


def parse_network(data: Any, home: Path, *, given: str | None = None) -> Network:
    """The ``network`` section of config.yaml, validated like a trust policy's; ``ca_bundle`` becomes an absolute
    path to a readable PEM file (relative paths resolve against ``home``). Raises ``node.config_invalid``, naming
    config.yaml's setting, or ``given`` (e.g. ``--ca-bundle``) for a value given before config.yaml exists."""
    where = f"{Path(home) / CONFIG} network"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CeadError("node.config_invalid", f"{where}: must be a mapping.")
    try:
        network = Network.model_validate(data)
    except ValidationError as exc:
        raise CeadError("node.config_invalid", f"{where}: {format_error(exc)}") from None
    if network.ca_bundle is None:
        return network
    path = Path(network.ca_bundle).expanduser()
    path = path if path.is_absolute() else Path(home) / path
    try:
        ssl.create_default_context(cafile=str(path))
    except FileNotFoundError:
        raise CeadError("node.config_invalid", f"{given or where + '.ca_bundle'}: no such file {str(path)!r}.") \
            from None
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise CeadError("node.config_invalid", f"{given or where + '.ca_bundle'}: {str(path)!r} is not a readable PEM "
                        f"certificate bundle ({exc}).") from None
    return network.model_copy(update={"ca_bundle": str(path.resolve())})


def load_vocabulary(value: Any, home: Path, *, given: str | None = None) -> Vocabulary:
    """The vocabulary the node's guard rail and wallet use: the process-wide ``schemas.vocab.registry()``, extended
    (in a copy) by the ``broader``/``isPartOf`` file named in config.yaml. Raises ``node.config_invalid``, naming
    config.yaml's setting, or ``given`` (e.g. ``--vocabulary``) for a value given before config.yaml exists."""
    if value is None:
        return registry()
    where = given or f"{Path(home) / CONFIG} vocabulary"
    if not isinstance(value, (str, Path)) or not str(value):
        raise CeadError("node.config_invalid", f"{where}: must be the path of a JSON or YAML file.")
    path = Path(value).expanduser()
    path = path if path.is_absolute() else Path(home) / path
    try:
        return extended(registry(), path)
    except ValueError as exc:
        raise CeadError("node.config_invalid", f"{where}: {exc}.") from None


def _default_public_url(domain: str, path: str | None) -> str:
    url = f"https://{domain}"
    if path and path.strip("/"):
        url += "/" + path.strip("/")
    return url


def _private_file(path: Path) -> None:
    """Make sure the SQLite file exists with mode 0600 before SQLite opens it (its journal and WAL files take the
    database file's mode), and tighten an older one created world-readable. An existing file is never opened here:
    closing any descriptor of a file drops every POSIX lock this process holds on it, so opening and closing
    node.db would take away the locks of a connection this process already has to it (another Node of the same
    home), and another process could then checkpoint and remove the WAL under it (SQLite's "database disk image is
    malformed")."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        try:
            if os.stat(path).st_mode & 0o077:
                os.chmod(path, 0o600)
        except OSError:
            pass        # not ours to change: SQLite opens it as it is
        return
    except OSError:
        return          # a home that cannot be written: SQLite says so, with the database's own error
    os.close(fd)        # new, so no connection of this process has it open


def _stamp_of(path: Path) -> tuple[int, int, int] | None:
    """What tells one config.yaml from the next: a save replaces the file (a new inode), an edit changes its time or
    size. None when there is no file (yet)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _keys_valid(keys: Any) -> bool:
    return isinstance(keys, list) and bool(keys) and all(
        isinstance(m, dict) and isinstance(m.get("id"), str) and isinstance(m.get("kind"), str)
        and isinstance(m.get("public"), str) and isinstance(m.get("file", ""), str) for m in keys)


def _write_key(path: Path, key: PrivateKey, passphrase: bytes) -> None:
    if path.exists():
        raise CeadError("key.exists", f"{path} exists; keys are never overwritten.")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.to_pem(passphrase))
        fh.flush()
        os.fsync(fh.fileno())         # on disk before config.yaml names it
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    """Make a new or renamed directory entry durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
