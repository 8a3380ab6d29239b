"""schemas.jcs writes exactly the bytes rfc8785 writes (RFC 8785), or raises where it raises."""
from __future__ import annotations

import rfc8785
from hypothesis import given, settings, strategies as st

from schemas import jcs

KEYS = st.text(max_size=6) | st.sampled_from(["a", "B", "\u00e9", "\ud83d\ude00", "\uffff", "\ue000", "\U0001f600", ""])
SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**60), max_value=2**60)
           | st.sampled_from([2**53 - 1, -(2**53 - 1), 2**53, -(2**53)])
           | st.floats(allow_nan=True, allow_infinity=True) | st.text()
           | st.sampled_from(["\x00\x1f\x7f\"\\\b\f\n\r\t/", "\ud800", "\u2028\u2029", "caf\u00e9 \U0001f600"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
                      max_leaves=20)


def _either(fn, value):
    try:
        return "ok", fn(value)
    except Exception as exc:       # noqa: BLE001 (compared: the same outcome, or both refuse)
        return "error", type(exc).__mro__[1] if isinstance(exc, rfc8785.CanonicalizationError) else type(exc)


@settings(max_examples=3000, deadline=None)
@given(VALUES)
def test_the_same_bytes_as_rfc8785(value):
    ours, theirs = _either(jcs.dumps, value), _either(rfc8785.dumps, value)
    assert ours[0] == theirs[0]
    if ours[0] == "ok":
        assert ours[1] == theirs[1]


def test_the_cases_the_fast_path_must_leave_to_rfc8785():
    # floats, non-ASCII keys (UTF-16 order differs from code-point order above U+FFFF), lone surrogates, big integers
    for value in ({"\ue000": 1, "\U0001f600": 2}, [1.0, 1e21, 0.1], {"x": 2**53}, ["\ud800"], {"a": (1, 2)}):
        ours, theirs = _either(jcs.dumps, value), _either(rfc8785.dumps, value)
        assert ours == theirs, value
    assert jcs.dumps({"b": [1, "\n\u00e9"], "a": None, "c": True}) == b'{"a":null,"b":[1,"\\n\xc3\xa9"],"c":true}'
    deep = []
    for _ in range(5000):
        deep = [deep]
    assert _either(jcs.dumps, deep)[0] == _either(rfc8785.dumps, deep)[0]
