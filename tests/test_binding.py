"""The request binding both the wallet and the verifier compute (docs/architecture.md, the wire contract)."""
import base64

import pytest

from verifier.binding import (decode_manifest, decode_presentation, encode_manifest, encode_presentation, origin,
                              request_binding)
from verifier.results import CeadError


def test_binding_changes_with_every_part_of_the_request():
    base = request_binding("GET", "https://api.example/d?m=1", b"", {"dataset": "x"})
    assert base.startswith("urn:cead:req:")
    assert request_binding("POST", "https://api.example/d?m=1", b"", {"dataset": "x"}) != base
    assert request_binding("GET", "https://api.example/d?m=2", b"", {"dataset": "x"}) != base
    assert request_binding("GET", "https://api.example/d?m=1", b"body", {"dataset": "x"}) != base
    assert request_binding("GET", "https://api.example/d?m=1", b"", {"dataset": "y"}) != base
    assert request_binding("GET", "https://api.example/d?m=1", b"", None) != base


@pytest.mark.parametrize("variant", [
    "https://API.example/d?m=1", "HTTPS://api.example:443/d?m=1", "https://api.example/d?m=1#frag"])
def test_binding_is_the_same_for_equivalent_urls(variant):
    assert request_binding("get", variant) == request_binding("GET", "https://api.example/d?m=1")


def test_empty_path_and_default_ports():
    assert request_binding("GET", "https://a.example") == request_binding("GET", "https://a.example:443/")
    assert origin("http://a.example/x") == "http://a.example:80"
    assert origin("https://[::1]:8443/x") == "https://[::1]:8443"


@pytest.mark.parametrize("bad", ["/relative/path", "https://a.example:notaport/x", "not a url"])
def test_bad_urls_are_named(bad):
    with pytest.raises(CeadError) as err:
        request_binding("GET", bad)
    assert err.value.code == "request.url_invalid"


def test_header_encodings_round_trip_and_reject_garbage():
    manifest = {"dataset": "https://d.example/x", "columns": ["a"]}
    assert decode_manifest(encode_manifest(manifest)) == manifest
    vp = {"type": ["VerifiablePresentation"]}
    assert decode_presentation(encode_presentation(vp)) == vp
    assert decode_presentation("VP a.b.c") == "a.b.c"
    for bad in ("%%%", "WzEsMl0"):  # not base64url JSON; base64url of [1,2] (not an object)
        with pytest.raises(CeadError) as err:
            decode_manifest(bad)
        assert err.value.code == "manifest.invalid"
    with pytest.raises(CeadError) as err:
        decode_presentation("bm90IGpzb24")  # base64url of "not json"
    assert err.value.code == "presentation.malformed"


def test_hostile_headers_and_urls_are_named_errors_not_crashes():
    nested = base64.urlsafe_b64encode(b"[" * 100_000).decode().rstrip("=")   # JSON nested 100,000 deep
    for decode, code in ((decode_manifest, "manifest.invalid"), (decode_presentation, "presentation.malformed")):
        with pytest.raises(CeadError) as err:
            decode(nested)
        assert err.value.code == code
    for bad in ("https://[::1/x", "https://[/"):
        with pytest.raises(CeadError) as err:
            request_binding("GET", bad)
        assert err.value.code == "request.url_invalid"
