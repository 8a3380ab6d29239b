"""schemas.values: the one place every layer reads credential JSON values and people's JSON/YAML documents."""
from datetime import datetime, timezone

import pytest

from schemas.values import as_list, id_of, load_document, parse_datetime, types_of, xsd_datetime


def test_values_that_may_be_one_or_many():
    assert as_list(None) == [] and as_list("a") == ["a"] and as_list(["a", "b"]) == ["a", "b"]
    assert id_of("did:x:1") == "did:x:1" and id_of({"id": "did:x:1"}) == "did:x:1"
    assert id_of({"@id": "urn:a"}) == "urn:a" and id_of("") is None and id_of({"name": "x"}) is None
    assert types_of({"type": "VerifiableCredential"}) == ["VerifiableCredential"]
    assert types_of({"type": ["A", 3, "B"]}) == ["A", "B"] and types_of("not an object") == []


def test_dates():
    assert parse_datetime("2026-01-01") == datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert parse_datetime("2026-01-01T10:00:00+01:00").utcoffset().total_seconds() == 3600
    with pytest.raises(ValueError, match="no time zone"):
        parse_datetime("2026-01-01T10:00:00")
    assert parse_datetime("2026-01-01T10:00:00", assume_utc=True).tzinfo == timezone.utc
    with pytest.raises(ValueError, match="not an ISO 8601"):
        parse_datetime("next tuesday")
    assert xsd_datetime(datetime(2026, 1, 1, 10, 0, 0, 123456, tzinfo=timezone.utc)) == "2026-01-01T10:00:00Z"
    assert xsd_datetime(0) == "1970-01-01T00:00:00Z"


def test_documents_people_write():
    assert load_document('{"a": 1}', "x") == {"a": 1}
    assert load_document("a: 1\nvalidUntil: 2027-12-31T23:59:59Z\n", "x") == {
        "a": 1, "validUntil": "2027-12-31T23:59:59Z"}          # a YAML date stays a string, as in JSON
    for text, words in [("a: &x [1]\nb: *x\n", "aliases"),         # no alias expansion ("billion laughs")
                        ("- 1\n- 2\n", "must hold a JSON or YAML object"),
                        ("a: [1, 2\n", "neither JSON nor YAML"),
                        ('{"a": NaN}', "JSON cannot carry"),
                        ("[" * 100000, "nested too deeply")]:
        with pytest.raises(ValueError, match=words):
            load_document(text, "the test file")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_document("a: 1", "x", yaml_allowed=False)
