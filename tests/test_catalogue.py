"""Importing a DCAT catalogue (as CKAN's DCAT extension serves it) into a node: Turtle, JSON-LD with an inline
context, and RDF/XML; 1,000 datasets over HTTPS from 127.0.0.1; a refresh that flags a removed dataset without
touching anything else; the export a gateway's trust policy reads (controllers and series membership)."""
from __future__ import annotations

import json

import pytest

from helpers_https import https_server
from issuer import catalogue as cat
from issuer.node import Node
from issuer_fixtures import PASS
from verifier.policy import read_catalogue
from verifier.results import CeadError

BASE = "https://data.fife.example/dataset/"
PUBLISHER = "https://data.fife.example/organization/fife-council"


def turtle(n: int, skip: set[int] = frozenset()) -> bytes:
    lines = ["@prefix dcat: <http://www.w3.org/ns/dcat#> .", "@prefix dct: <http://purl.org/dc/terms/> .",
             "@prefix foaf: <http://xmlns.com/foaf/0.1/> .", "@prefix vcard: <http://www.w3.org/2006/vcard/ns#> .",
             "<https://data.fife.example/catalog> a dcat:Catalog ;",
             "  dcat:dataset " + ", ".join(f"<{BASE}ds-{i}>" for i in range(n) if i not in skip) + " .",
             f"<{PUBLISHER}> a foaf:Organization ; foaf:name \"Fife Council\" .",
             f"<{BASE}homelessness-series> a dcat:DatasetSeries ; dct:title \"Homelessness applications\" ."]
    for i in range(n):
        if i in skip:
            continue
        series = f" ; dcat:inSeries <{BASE}homelessness-series>" if i < 12 else ""
        lines.append(
            f"<{BASE}ds-{i}> a dcat:Dataset ; dct:title \"Dataset {i}\"@en ; dct:publisher <{PUBLISHER}> ;"
            f" dcat:theme <http://publications.europa.eu/resource/authority/data-theme/SOCI> ;"
            f" dcat:keyword \"housing\" ; dcat:contactPoint [ a vcard:Kind ; vcard:fn \"Information Asset Owner {i}\""
            f" ; vcard:hasEmail <mailto:iao{i}@fife.example> ] ;"
            f" dcat:distribution [ a dcat:Distribution ; dcat:accessURL <https://api.fife.example/ds-{i}> ;"
            f" dcat:mediaType <https://www.iana.org/assignments/media-types/text/csv> ]{series} .")
    return "\n".join(lines).encode()


@pytest.fixture
def node(tmp_path):
    node, _ = Node.init(tmp_path / "h", "Fife Council", PASS, domain="fife.example")
    return node


def test_thousand_datasets_over_https_then_a_removal_is_flagged(tmp_path):
    served = {"/catalog.ttl": turtle(1000)}
    with https_server(static=served) as (base_url, ca_bundle):
        node, _ = Node.init(tmp_path / "h", "Fife Council", PASS, domain="fife.example",
                            network={"ca_bundle": ca_bundle, "allow_private": True})
        url = base_url + "/catalog.ttl"
        result = cat.import_catalogue(node, url, publishers={PUBLISHER: "did:web:fife.example"})
        assert result.total == 1001 and len(result.added) == 1001 and not result.removed   # + the series
        rows = {r.iri: r for r in cat.entries(node)}
        ds = rows[BASE + "ds-7"].dataset
        assert ds.title == "Dataset 7" and ds.publisher_name == "Fife Council"
        assert ds.contact_name == "Information Asset Owner 7" and ds.contact_email == "iao7@fife.example"
        assert ds.series == [BASE + "homelessness-series"] and ds.distributions[0]["accessURL"].endswith("/ds-7")
        assert rows[BASE + "homelessness-series"].dataset.is_series
        assert rows[BASE + "ds-7"].controller == "did:web:fife.example"

        served["/catalog.ttl"] = turtle(1000, skip={42})
        again = cat.import_catalogue(node, url, publishers={PUBLISHER: "did:web:fife.example"})
        assert again.removed == [BASE + "ds-42"] and not again.added and not again.updated
        assert BASE + "ds-42" not in {r.iri for r in cat.entries(node)}
        assert cat.removed_datasets(node) == [BASE + "ds-42"]        # flagged, kept

        served["/catalog.ttl"] = turtle(1000)                         # back again: no longer flagged
        back = cat.import_catalogue(node, url, publishers={PUBLISHER: "did:web:fife.example"})
        assert back.updated == [BASE + "ds-42"] and not back.removed
        assert cat.removed_datasets(node) == []


def test_json_ld_inline_context_and_rdf_xml(node, tmp_path):
    import rdflib
    graph = rdflib.Graph().parse(data=turtle(3), format="turtle")
    for fmt, name in (("json-ld", "c.jsonld"), ("xml", "c.rdf")):
        path = tmp_path / name
        path.write_text(graph.serialize(format=fmt, **({"auto_compact": True} if fmt == "json-ld" else {})))
        result = cat.import_catalogue(node, str(path))
        assert result.total == 4 and len(result.added) == 4          # a new source: every dataset added
        assert {BASE + "ds-0", BASE + "ds-2", BASE + "homelessness-series"} <= set(result.added)


def test_bad_catalogues_are_named(node, tmp_path):
    remote = tmp_path / "remote.jsonld"
    remote.write_text(json.dumps({"@context": "https://www.w3.org/ns/dcat.jsonld", "@id": "x"}))
    with pytest.raises(CeadError) as info:
        cat.import_catalogue(node, str(remote))
    assert info.value.code == "catalogue.remote_context"
    broken = tmp_path / "broken.ttl"
    broken.write_text("this is not turtle <")
    with pytest.raises(CeadError) as info:
        cat.import_catalogue(node, str(broken))
    assert info.value.code == "catalogue.invalid"
    with pytest.raises(CeadError) as info:
        cat.import_catalogue(node, str(tmp_path / "c.csv"), data=b"a,b")
    assert info.value.code == "catalogue.format"
    with pytest.raises(CeadError) as info:
        cat.import_catalogue(node, str(tmp_path / "missing.ttl"))
    assert info.value.code == "catalogue.unreadable"


def test_export_is_what_a_gateway_policy_reads(node, tmp_path):
    (tmp_path / "c.ttl").write_bytes(turtle(15))
    cat.import_catalogue(node, str(tmp_path / "c.ttl"), publishers={PUBLISHER: "did:web:fife.example"})
    out = tmp_path / "export.jsonld"
    out.write_text(json.dumps(cat.to_jsonld(cat.entries(node), "https://data.fife.example/catalog")))
    controllers, membership = read_catalogue(out)
    assert controllers[BASE + "ds-3"] == "did:web:fife.example"
    assert BASE + "homelessness-series" in membership[BASE + "ds-3"]
    assert "https://data.fife.example/catalog" in membership[BASE + "ds-14"]
    assert BASE + "homelessness-series" not in membership[BASE + "ds-14"]


def test_command_line_import_list_export(node, tmp_path):
    import os
    import subprocess
    import sys
    (tmp_path / "c.ttl").write_bytes(turtle(5))
    run = lambda *a: subprocess.run([sys.executable, "-m", "cead.cli", "catalogue", *a, "--home", str(node.home)],
                                    capture_output=True, text=True, timeout=60, env=dict(os.environ))
    done = run("import", str(tmp_path / "c.ttl"), "--publisher", f"{PUBLISHER}=did:web:fife.example")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"Imported 6 datasets from {tmp_path / 'c.ttl'}: 6 added, 0 updated, 0 removed " \
                                  "(flagged, not deleted)."
    listed = json.loads(run("list", "--json").stdout)
    assert len(listed) == 6 and listed[0]["controller"] in ("did:web:fife.example", None)
    bad = run("import", str(tmp_path / "c.ttl"), "--publisher", "nonsense")
    assert bad.returncode == 2 and json.loads(bad.stderr)["error"]["code"] == "input.invalid"
    exported = run("export", "--out", str(tmp_path / "e.jsonld"), "--id", "https://data.fife.example/catalog")
    assert exported.returncode == 0 and exported.stdout.startswith("Wrote 6 datasets")


def test_the_approvals_in_force_are_published_for_catalogues(tmp_path):
    """Write-back: GET /catalogue/approvals.jsonld lists each active approval under its datasets as an ODRL
    agreement (assigner, assignees, purposes), as JSON-LD a catalogue (rdflib here) can read; a revoked approval
    drops out."""
    import rdflib
    from issuer import issuing
    from issuer.app import create_app
    from schemas.vocab import expand
    from test_wallet_support import DS_MEALS, P_MEALS, approval_subject
    node, _ = Node.init(tmp_path / "h", "Fife Council", PASS, domain="fife.example", public_url="https://fife.example")
    node._passphrase = PASS
    subject = approval_subject(node.did, "did:web:glasgow.example")
    issued = issuing.issue(node, issuing.build_credential(node, "DataSharingApprovalCredential", subject))
    issuing.issue(node, issuing.build_credential(node, "OrganisationCertificationCredential", {
        "id": "did:web:glasgow.example", "legalName": "Glasgow City Council", "legalIdentifier": "SC-GCC",
        "scheme": "https://w3id.org/cead/vocab#CyberEssentials", "certificateNumber": "CE-1",
        "certificationBody": {"name": "IASME"}, "issueDate": "2025-01-01", "expiryDate": "2030-01-01"}))
    client = create_app(node).test_client()
    doc = client.get("/catalogue/approvals.jsonld").get_json()
    catalogue, dataset = doc["@graph"]
    assert catalogue["@type"] == "dcat:Catalog" and catalogue["dcat:dataset"] == [{"@id": dataset["@id"]}]
    assert dataset["@id"] == expand(DS_MEALS)
    (policy,) = dataset["odrl:hasPolicy"]
    assert policy["@id"] == issued.id and policy["odrl:assigner"] == {"@id": node.did}
    assert policy["odrl:assignee"] == [{"@id": "did:web:glasgow.example"}]
    assert policy["odrl:permission"][0]["odrl:constraint"][0]["odrl:rightOperand"]["@id"].endswith(
        P_MEALS.split(":")[-1])
    graph = rdflib.Graph().parse(data=json.dumps(doc), format="json-ld")
    assert (rdflib.URIRef(issued.id), rdflib.RDF.type, rdflib.URIRef("http://www.w3.org/ns/odrl/2/Agreement")) in graph
    issuing.change_status(node, issued.id, "revoke")
    assert len(client.get("/catalogue/approvals.jsonld").get_json()["@graph"]) == 1   # the catalogue, no dataset


def test_columns_come_from_a_csvw_table_schema(node, tmp_path):
    """A dataset's columns, where the catalogue describes them (CSV on the Web), in order: Turtle with an RDF list
    on a distribution, JSON-LD with plain values on the dataset; a dataset without a schema has none."""
    ttl = "\n".join([
        "@prefix dcat: <http://www.w3.org/ns/dcat#> .", "@prefix dct: <http://purl.org/dc/terms/> .",
        "@prefix csvw: <http://www.w3.org/ns/csvw#> .",
        f"<{BASE}meals> a dcat:Dataset ; dct:title \"School meals\" ; dcat:distribution [ a dcat:Distribution ;",
        "  csvw:tableSchema [ csvw:column ( [ csvw:name \"pupil_ref\" ; csvw:titles \"Pupil reference\" ]",
        "    [ csvw:name \"meal_entitlement\" ; dct:description \"Entitled to free meals\" ] ) ] ] .",
        f"<{BASE}plain> a dcat:Dataset ; dct:title \"No schema\" ."]).encode()
    meals, plain = cat.read_dcat(ttl, "turtle")
    assert [c["name"] for c in meals.columns] == ["pupil_ref", "meal_entitlement"]
    assert meals.columns[0]["title"] == "Pupil reference" and meals.columns[1]["description"] == "Entitled to free meals"
    assert plain.columns == []
    doc = {"@context": {"dcat": "http://www.w3.org/ns/dcat#", "dct": "http://purl.org/dc/terms/",
                        "csvw": "http://www.w3.org/ns/csvw#"},
           "@id": BASE + "homes", "@type": "dcat:Dataset", "dct:title": "Homes",
           "csvw:tableSchema": {"csvw:column": [{"csvw:name": "uprn"}, {"csvw:name": "tenure"}]}}
    [homes] = cat.read_dcat(json.dumps(doc).encode(), "json-ld")
    assert sorted(c["name"] for c in homes.columns) == ["tenure", "uprn"]
    path = tmp_path / "c.ttl"
    path.write_bytes(ttl)
    cat.import_catalogue(node, str(path))
    stored = {e.iri: e.dataset for e in cat.entries(node)}
    assert [c["name"] for c in stored[BASE + "meals"].columns] == ["pupil_ref", "meal_entitlement"]
