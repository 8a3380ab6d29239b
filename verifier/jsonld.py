"""Offline JSON-LD processing: a document loader that serves pinned contexts only, and safe expansion.

* ``document_loader`` serves the contexts pinned in ``schemas/contexts/index.json`` (each file's SHA-256 is checked
  on first load) plus contexts registered at run time with ``register_context``. Every other URL is refused with
  ``jsonld.context_unknown``; nothing is ever fetched from the network.
* ``expand``, ``to_rdf`` and ``canonicalize`` run pyld with that loader (or the ``loader`` passed in, e.g. a
  verifier's ``VerificationContext.loader``: each loader has context caches of its own, so what one loader serves is
  never answered from another's) and a private context cache, refuse
  documents whose content would silently vanish during expansion (``jsonld.undefined_term``,
  ``jsonld.relative_iri``), and turn every pyld failure into a ``CeadError`` (pyld wraps loader errors in its
  own ``JsonLdError``; the original code is surfaced).
"""
from __future__ import annotations

import copy
import hashlib
import json
import threading
from typing import Any, Callable

from cachetools import LRUCache  # a pyld dependency
from frozendict import frozendict  # a pyld dependency
from pyld import jsonld as _pyld
from pyld.context_resolver import ContextResolver

import schemas

from . import rdfc
from .results import CeadError

_lock = threading.RLock()
_pinned_index: dict[str, dict] | None = None     # url -> {"file", "sha256"}
_pinned_docs: dict[str, dict] = {}               # url -> parsed, hash-checked document
_registered: dict[str, dict] = {}                # url -> document registered at run time


class _ResolvedContexts(LRUCache):
    """pyld's resolved-context cache, private to Cead (so contexts loaded elsewhere never leak in), thread-safe."""

    def get(self, key, default=None):
        with _lock:
            return super().get(key, default)

    def __setitem__(self, key, value):
        with _lock:
            super().__setitem__(key, value)


_resolved = _ResolvedContexts(maxsize=256)


def _index() -> dict[str, dict]:
    global _pinned_index
    with _lock:
        if _pinned_index is None:
            _pinned_index = json.loads(schemas.data_path("contexts", "index.json").read_text("utf-8"))["contexts"]
        return _pinned_index


def pinned_urls() -> list[str]:
    return sorted(_index())


def _pinned(url: str) -> dict:
    with _lock:
        doc = _pinned_docs.get(url)
        if doc is None:
            entry = _index()[url]
            data = schemas.data_path("contexts", entry["file"]).read_bytes()
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                raise CeadError("jsonld.context_hash_mismatch", f"The pinned JSON-LD context for {url} does not "
                                "match its recorded SHA-256; the installation has been altered.", url=url)
            doc = _pinned_docs[url] = json.loads(data)
        return doc


def register_context(url: str, document: dict) -> None:
    """Serve ``document`` for ``url`` (e.g. an organisation's own context). Pinned contexts cannot be replaced."""
    if not isinstance(url, str) or ":" not in url:
        raise CeadError("jsonld.context_invalid", f"A context URL must be an absolute URL, not {url!r}.")
    if not isinstance(document, dict) or "@context" not in document:
        raise CeadError("jsonld.context_invalid", f"The context registered for {url} must be a JSON object "
                        "with an @context member.", url=url)
    if url in _index():
        if document != _pinned(url):
            raise CeadError("jsonld.context_pinned", f"{url} is a pinned context and cannot be replaced.", url=url)
        return
    with _lock:
        _registered[url] = copy.deepcopy(document)
        _resolved.clear()  # a re-registered URL must not be served from the old resolution
        _processed.clear()


def document_loader(url: str, options: dict | None = None) -> dict:
    """pyld document loader: pinned and registered contexts only; anything else is ``jsonld.context_unknown``."""
    if url in _index():
        doc = _pinned(url)
    else:
        with _lock:
            doc = _registered.get(url)
        if doc is None:
            raise CeadError("jsonld.context_unknown", f"Unknown JSON-LD context {url}; only pinned or registered "
                            "contexts are used (nothing is fetched from the network).", url=url)
    # pyld rewrites relative context URLs in place, so every caller gets its own copy. The "static" tag lets pyld
    # keep the resolved context in its (private, shared) cache, so a context is loaded and processed once.
    return {"contextUrl": None, "documentUrl": url, "document": copy.deepcopy(doc),
            "contentType": "application/ld+json", "tag": "static"}


def is_known(url: str) -> bool:
    """Whether ``document_loader`` serves ``url`` (pinned, with its hash checked, or registered), without copying
    the context."""
    if not isinstance(url, str):
        return False
    if url in _index():
        try:
            _pinned(url)
        except CeadError:
            return False
        return True
    with _lock:
        return url in _registered


# ---- processing ---------------------------------------------------------------------------------------------
_MAX_LOADERS = 32
_loader_caches: LRUCache = LRUCache(maxsize=_MAX_LOADERS)   # id(loader) -> (loader, resolved contexts, processed)


def _caches(loader: Callable | None) -> tuple[Callable, Any, LRUCache]:
    """The loader to use and its own caches: the pinned loader's shared ones, or a private pair per loader passed in
    (a context resolved through one loader must never answer for another that serves the URL differently)."""
    if loader is None or loader is document_loader:
        return document_loader, _resolved, _processed
    with _lock:
        entry = _loader_caches.get(id(loader))
        if entry is None or entry[0] is not loader:
            entry = _loader_caches[id(loader)] = (loader, _ResolvedContexts(maxsize=256), LRUCache(maxsize=1024))
    return entry


def _options(loader: Callable | None = None) -> dict:
    loader, resolved, _ = _caches(loader)
    return {"documentLoader": loader, "contextResolver": ContextResolver(resolved, loader),
            "base": None, "processingMode": "json-ld-1.1"}


def _dropped(term: str | None) -> None:
    name = term if term is not None else "(a term mapped to null)"
    raise CeadError("jsonld.undefined_term", f"The term {name!r} is not defined by any @context, so it would be "
                    "silently dropped (and left unsigned); define it or use a context with @vocab.", term=name)


_processed: LRUCache = LRUCache(maxsize=1024)   # (active context id, local context, flags) -> processed context


def _context_key(local_ctx: Any):
    """A key for a local context: its value for a URL or a list of URLs, its identity for an object (objects come
    from cached, immutable processed contexts: a type- or property-scoped context); None: not memoised."""
    if isinstance(local_ctx, str):
        return ("url", local_ctx)
    if isinstance(local_ctx, list) and all(isinstance(c, str) for c in local_ctx):
        return ("urls", tuple(local_ctx))
    if isinstance(local_ctx, (dict, frozendict)):
        return ("object", id(local_ctx))
    return None


class _Processor(_pyld.JsonLdProcessor):
    """pyld's processor, remembering processed contexts: pyld caches a context processed against an active context
    only when the result propagates, so type-scoped contexts (every VC context's credential types) were processed
    afresh for each document. A result is reused only for the same immutable (frozen) active context, the same
    local context object (kept alive beside the result) and the same flags."""

    memo: LRUCache = _processed      # the loader's own memo (``_caches``)

    def _process_context(self, active_ctx, local_ctx, options, override_protected=False, propagate=True,
                         validate_scoped=True, cycles=None):
        uid = active_ctx.get("_uuid") if isinstance(active_ctx, frozendict) else None
        ctx_key = _context_key(local_ctx) if uid is not None and not cycles else None
        if ctx_key is None:
            return super()._process_context(active_ctx, local_ctx, options, override_protected, propagate,
                                            validate_scoped, cycles)
        key = (uid, ctx_key, override_protected, propagate, validate_scoped, options.get("base"),
               options.get("processingMode"))
        with _lock:
            hit = self.memo.get(key)
        if hit is not None and hit[0] is active_ctx and (ctx_key[0] != "object" or hit[1] is local_ctx):
            return hit[2]
        result = super()._process_context(active_ctx, local_ctx, options, override_protected, propagate,
                                          validate_scoped, cycles)
        if isinstance(result, frozendict):
            with _lock:
                self.memo[key] = (active_ctx, local_ctx, result)
        return result


def _run(action: Callable[[_pyld.JsonLdProcessor], Any], loader: Callable | None = None) -> Any:
    """Run a pyld operation, surfacing our own errors and turning pyld's into ``jsonld.invalid``."""
    processor = _Processor(on_property_dropped=_dropped)
    processor.memo = _caches(loader)[2]
    try:
        return action(processor)
    except CeadError:
        raise
    except RecursionError:
        raise CeadError("jsonld.invalid", "The JSON-LD document is nested too deeply.") from None
    except Exception as exc:  # pyld raises JsonLdError, but also plain TypeError/KeyError on odd input
        innermost, cause = exc, exc
        while cause is not None:
            if isinstance(cause, CeadError):
                raise cause from None
            if isinstance(cause, _pyld.JsonLdError):
                innermost = cause
            cause = cause.__cause__ or cause.__context__
        if isinstance(innermost, _pyld.JsonLdError):
            reason = f"{innermost.args[0]} ({innermost.code or innermost.type})"
        elif isinstance(innermost, KeyError) and innermost.args == ("@vocab",):
            # pyld 3.3 deletes the active @vocab for a context entry {"@vocab": null} without checking there is one
            # (JSON-LD 1.1 allows it: nothing to remove). Fail closed, but say what it was.
            reason = ('a context entry {"@vocab": null} where no @vocab is in effect, which the JSON-LD library '
                      "cannot process; leave that entry out")
        else:
            reason = f"{type(innermost).__name__}: {innermost}"
        raise CeadError("jsonld.invalid", f"Invalid JSON-LD: {reason}") from None


def _is_absolute(iri: str) -> bool:
    return isinstance(iri, str) and (iri.startswith("_:") or ":" in iri)


def _check_expanded(value: Any) -> None:
    """Refuse relative @type and @id values: pyld's RDF conversion silently drops them."""
    if isinstance(value, list):
        for item in value:
            _check_expanded(item)
        return
    if not isinstance(value, dict):
        return
    if "@value" in value:
        datatype = value.get("@type")
        if datatype is not None and datatype != "@json" and not _is_absolute(datatype):
            raise CeadError("jsonld.undefined_term", f"The datatype {datatype!r} is not defined by any @context.",
                            term=datatype)
        return
    for type_ in value.get("@type", []) if isinstance(value.get("@type"), list) else [value.get("@type")]:
        if type_ is not None and not _is_absolute(type_):
            raise CeadError("jsonld.undefined_term", f"The type {type_!r} is not defined by any @context, so it "
                            "would be silently dropped (and left unsigned).", term=type_)
    if "@id" in value and not _is_absolute(value["@id"]):
        raise CeadError("jsonld.relative_iri", f"The identifier {value['@id']!r} is not an absolute IRI, so its "
                        "statements would be silently dropped (and left unsigned).", iri=value["@id"])
    for key, member in value.items():
        if key not in ("@type", "@id", "@value"):
            _check_expanded(member)


def expand(document: dict, loader: Callable | None = None) -> list:
    """JSON-LD expansion with the offline loader (or ``loader``); refuses undefined terms and relative IRIs."""
    if not isinstance(document, dict):
        raise CeadError("jsonld.invalid", "A JSON-LD document must be a JSON object.")
    expanded = _run(lambda proc: proc.expand(copy.deepcopy(document), _options(loader)), loader)
    _check_expanded(expanded)
    return expanded


def to_rdf(document: dict, loader: Callable | None = None) -> dict:
    """The RDF dataset (pyld's representation) of a JSON-LD document, after the checks in ``expand``. The document
    is expanded once (pyld's own ``to_rdf`` would expand the expanded form again)."""
    expanded = expand(document, loader)
    return _run(lambda proc: _expanded_to_rdf(proc, expanded, loader), loader)


def _expanded_to_rdf(proc: _pyld.JsonLdProcessor, expanded: list, loader: Callable | None = None) -> dict:
    """pyld's ``to_rdf`` from its node-map step on (JSON-LD 1.1 API, "Deserialize JSON-LD to RDF")."""
    options = {**_options(loader), "produceGeneralizedRdf": False, "extractAllScripts": True,
               "identifierIssuer": _pyld.IdentifierIssuer("_:b")}
    issuer = options["identifierIssuer"]
    node_map: dict = {"@default": {}}
    proc._create_node_map(expanded, node_map, "@default", issuer)
    dataset = {}
    for graph_name, graph in sorted(node_map.items()):
        if graph_name == "@default" or _pyld._is_absolute_iri(graph_name):   # relative graph names are skipped
            dataset[graph_name] = proc._graph_to_rdf(graph, issuer, options)
    return dataset


def canonicalize(document: dict, hash_algorithm: str = "sha256", loader: Callable | None = None) -> str:
    """RDFC-1.0 canonical N-Quads of a JSON-LD document (the 'transformation' step of eddsa-rdfc-2022), its
    contexts served by ``loader`` (default: the pinned ``document_loader``)."""
    return rdfc.canonicalize_dataset(to_rdf(document, loader), hash_algorithm)

