"""JSON Canonicalization Scheme (RFC 8785), byte for byte what the ``rfc8785`` package writes, faster for the
values Cead canonicalises most (request bindings, manifests, log entries, receipt digests).

``rfc8785`` serialises in pure Python, a value at a time. For a value made only of objects with ASCII keys, arrays,
strings, booleans, null and integers within the I-JSON range, the standard library's C encoder (keys sorted, no
spaces, non-ASCII left as is) writes exactly the same bytes: the same escapes (``\\"``, ``\\\\``, ``\\b \\f \\n
\\r \\t`` and ``\\u00xx`` in lower case for the other control characters, nothing else), integers in decimal, and
for ASCII keys code-point order is UTF-16 order. Anything else (a float, a non-ASCII key, a lone surrogate, an
integer beyond 2^53 - 1, another type, nesting too deep) goes to ``rfc8785`` itself, which serialises it or raises
as it always did. ``tests/test_jcs.py`` holds the two to the same bytes.
"""
from __future__ import annotations

import json
from typing import Any

import rfc8785

_INT_MAX = 2**53 - 1
_encode = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False).encode


def _plain(value: Any) -> bool:
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return -_INT_MAX <= value <= _INT_MAX
    if kind is list:
        return all(_plain(v) for v in value)
    if kind is dict:
        return all(type(k) is str and k.isascii() and _plain(v) for k, v in value.items())
    return False


def dumps(value: Any) -> bytes:
    """The RFC 8785 canonical form of ``value`` (raises ``rfc8785.CanonicalizationError`` as ``rfc8785`` does)."""
    try:
        if _plain(value):
            return _encode(value).encode("utf-8")
    except (RecursionError, UnicodeEncodeError):
        pass      # nesting too deep, or a lone surrogate: rfc8785 says what is wrong
    return rfc8785.dumps(value)
