"""A check of a self-reported figure is not a check: the columns and rows of what moves are counted by the gateway
from the payload it holds (a push's body, a pull's response), never taken from the manifest the party being checked
wrote. Whole decisions with signed credentials; the pull through CeadMiddleware in front of a real Flask API over
HTTPS on 127.0.0.1."""
from __future__ import annotations

import pytest
import requests
from flask import Flask

from helpers_https import https_server
from transfer_world import DATASET, codes
from verifier.binding import MANIFEST_HEADER, PRESENTATION_HEADER, encode_manifest, encode_presentation
from verifier.decision import TransferRequest
from verifier.decision.measured import shape
from verifier.middleware import CeadMiddleware

HEADER = "ageBand,localAuthority,outcome,count\n"
ROW = "16-24,Fife,housed,12\n"


def decide(w, approval, request):
    return w.decider().decide(w.present(request, [approval, w.cert]), request)


def test_a_push_is_counted_not_taken_at_its_manifests_word(w):
    approval = w.make_approval(w.controller, maxRowsPerTransfer=5)
    # the manifest says 3 rows, within the approval's 5; the body carries 40
    lying = w.request("POST", body=(HEADER + ROW * 40).encode(), rowCount=3)
    decision = decide(w, approval, lying)
    assert not decision.allowed
    assert codes(decision) == {"transfer.volume_exceeded"}
    found = next(p for p in decision.reasons if p.code == "transfer.volume_exceeded")
    assert found.detail == {"rows": 40, "limit": 5, "measured": True}
    # the same rows within the ceiling pass
    assert decide(w, approval, w.request("POST", body=(HEADER + ROW * 5).encode(), rowCount=5)).allowed


def test_a_pushed_column_the_manifest_left_out_is_found_in_the_body(w):
    approval = w.make_approval(w.controller)   # no privacy protocol: nothing else reads the body
    body = b"chi,ageBand,localAuthority,outcome,count\n0101851238,16-24,Fife,housed,12\n"
    decision = decide(w, approval, w.request("POST", body=body, rowCount=1))   # the manifest lists the 4 approved
    assert codes(decision) == {"transfer.column_not_approved"}
    assert [p.detail["offending"] for p in decision.reasons] == [["chi"], ["chi"]]   # approval, manifest
    # JSON records are read too
    records = b'[{"ageBand": "16-24", "count": 12, "nhsNumber": "9434765919"}]'
    decision = decide(w, approval, w.request("POST", body=records, rowCount=1))
    assert codes(decision) == {"transfer.column_not_approved"}


def test_a_push_that_is_no_readable_table_is_refused(w):
    approval = w.make_approval(w.controller, maxRowsPerTransfer=5)
    ragged = (HEADER + ROW + "16-24,Fife,housed,12,0101851238\n").encode()   # a cell outside every column
    decision = decide(w, approval, w.request("POST", body=ragged, rowCount=2))
    assert codes(decision) == {"transfer.payload_unreadable"}
    assert "Send a UTF-8 CSV" in decision.reasons[0].message


@pytest.mark.parametrize("payload, content_type, expected", [
    (b"a,b\n1,2\n3,4\n", "text/csv", (["a", "b"], 2)),
    (b'[{"a": 1}, {"a": 2, "b": null}]', "", (["a", "b"], 2)),
    (b'{"rows": [{"a": 1}]}', "application/json", (["a"], 1)),
    (b'{"a": 1}\n{"c": 2}\n', "application/jsonl", (["a", "c"], 2)),
])
def test_shape_reads_csv_and_json_records(payload, content_type, expected):
    assert shape(payload, content_type) == expected


@pytest.mark.parametrize("payload", [b'{"a": 1}', b'[{"a": {"nested": 1}}]', b"\xff\xfe", b"a,b\n1\n", b"[1, 2]"])
def test_shape_refuses_what_it_cannot_measure(payload):
    with pytest.raises(ValueError):
        shape(payload)


def test_a_pulled_response_is_counted_on_its_way_out(w):
    approval = w.make_approval(w.controller, maxRowsPerTransfer=5)
    served = {"body": HEADER + ROW * 3}
    app = Flask("data-api")

    @app.route("/datasets/homelessness")
    def homelessness():
        return served["body"], 200, {"Content-Type": "text/csv"}

    app.wsgi_app = CeadMiddleware(app.wsgi_app, w.decider(), dataset_for=lambda environ: DATASET)

    def pull(url, ca_bundle):
        manifest = w.manifest(rowCount=5)   # asks for at most 5, within the approval
        vp = w.present(TransferRequest("GET", url, manifest=manifest), [approval, w.cert])
        return requests.get(url, verify=ca_bundle, timeout=10, headers={
            PRESENTATION_HEADER: encode_presentation(vp), MANIFEST_HEADER: encode_manifest(manifest)})

    with https_server(app) as (base_url, ca_bundle):
        url = base_url + "/datasets/homelessness"
        response = pull(url, ca_bundle)
        assert response.status_code == 200 and response.text == served["body"]
        served["body"] = HEADER + ROW * 50            # the API answers with more than the approval allows
        response = pull(url, ca_bundle)
        assert response.status_code == 403, response.text
        assert response.headers["Cead-Decision-Reasons"] == "transfer.volume_exceeded"
        assert ROW not in response.text
        served["body"] = "ageBand,postcode\n16-24,KY1 1XX\n"   # columns the approval does not list
        response = pull(url, ca_bundle)
        assert response.status_code == 403
        assert response.headers["Cead-Decision-Reasons"] == "transfer.column_not_approved"
