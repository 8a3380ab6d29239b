"""The analyst's request wizard (``GET``/``POST /wallet/requests/new``): a data-sharing request without code.

The analyst names the data holder's node; picks the datasets from this node's catalogue (``issuer.catalogue``, the
imported DCAT catalogue: shown by title with their publisher; ``HOME/catalogue.json`` titles too) and their columns
where the catalogue describes them (CSVW table schemas; "Show the columns" re-reads the page without sending), with
free-text boxes for anything the catalogue lacks; says in their own words why the data are needed, from which
``wallet.suggest`` offers candidate purposes and the bases public bodies usually rely on for them, labelled as
suggestions and never applied by themselves; chooses the purpose and the lawful basis (default public task,
Art 6(1)(e)); the public-benefit case, the Five Safes, the ICO's
DPIA screening questions, retention, review, transparency, rights and the proposed privacy protocol, and attaches
the data sharing agreement (required) and the DPIA. Each document is stored in ``HOME/documents/`` under its
SHA-256 digest and pinned in the request by that digest (the agreement is the request's ``agreement``), so the
approver reads, and the approval pins, exactly what was sent. Before anything is sent the request is checked
against the lawful-basis rulebook as the approval it asks for would be (``wallet.rule_fields.request_checks``): a
rule it breaks is shown beside the field it concerns, with its citation, and what was typed is kept. The request
goes through ``wallet.sharing.send_request`` with the wallet's certifications.
"""
from __future__ import annotations

import base64
import hashlib
import re
import uuid
from pathlib import Path

from flask import flash, redirect, render_template, request, url_for

from issuer.pages import audit, may, sign_in_required
from schemas import vocab
from verifier.results import CeadError

from . import current, sharing
from .casefile import DPIA_SCREENING
from .forms import (CADENCE_HINT, DURATION_HINT, WizardForm, _choices, cadence_from_words, condition_choices,
                    duration_from_words, legal_basis_choices, options)

MAX_DOCUMENT = 5 * 1024 * 1024
MAX_LISTED = 100          # catalogue datasets listed at once besides those chosen (a search narrows the list)
PUBLIC_TASK = f"{vocab.UK_GDPR}article/6/1/e"


DIGEST = re.compile(r"sha256-[A-Za-z0-9_-]{43}")      # digest_of's form: the name of a file in HOME/documents


def digest_of(data: bytes) -> str:
    return "sha256-" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def store_document(home: Path, upload) -> dict | None:
    """Keep an uploaded document under its digest; its pin (id, digest, size, title), or None when none was sent."""
    if upload is None or not getattr(upload, "filename", ""):
        return None
    data = upload.read(MAX_DOCUMENT + 1)
    if len(data) > MAX_DOCUMENT:
        raise ValueError(f"A document is at most {MAX_DOCUMENT // (1024 * 1024)} MB.")
    if not data:
        raise ValueError("The file is empty.")
    digest = digest_of(data)
    folder = Path(home) / "documents"
    folder.mkdir(exist_ok=True)
    path = folder / digest
    if not path.exists():
        tmp = folder / f".{digest}.{uuid.uuid4().hex}"
        tmp.write_bytes(data)
        tmp.replace(path)
    title = Path(upload.filename).name[:300] or "document"
    return {"title": title, "id": f"urn:cead:document:{digest}", "digest": digest, "size": len(data),
            "mediaType": (upload.mimetype or "application/octet-stream")[:100]}


def suggested_bases(purpose: str | None) -> list[str]:
    try:
        from verifier import lawful
        suggest = getattr(lawful, "suggest_bases", None)
        if callable(suggest):
            found = [b for b in suggest(purpose) if isinstance(b, str)]
            if found:
                return found
    except Exception:      # noqa: BLE001 (optional, another part's; the default below stands)
        pass
    return [PUBLIC_TASK]


def catalogue_choices(node) -> list[dict]:
    """The datasets this node's catalogue knows: ``{"iri", "title", "publisher", "columns", "label"}``, by title.
    The imported DCAT catalogue first (``issuer.catalogue.entries``: not removed), then ``HOME/catalogue.json``."""
    from .names import catalogue_titles
    found: dict[str, dict] = {}
    try:
        from issuer import catalogue
        for entry in catalogue.entries(node):
            ds = entry.dataset
            found[ds.iri] = {"iri": ds.iri, "title": ds.title or ds.iri, "publisher": ds.publisher_name,
                             "columns": ds.columns, "series": ds.is_series, "description": ds.description}
    except Exception:       # noqa: BLE001 (no catalogue table: the file below, or free text)
        pass
    for name in ("catalogue.json", "catalogue.jsonld"):
        for iri, title in catalogue_titles(Path(node.home) / name).items():
            found.setdefault(iri, {"iri": iri, "title": title, "publisher": None, "columns": [], "series": False,
                                   "description": None})
    for d in found.values():
        d["label"] = d["title"] + (f" \u2014 {d['publisher']}" if d["publisher"] else "") + (
            " (a series)" if d["series"] else "")
    return sorted(found.values(), key=lambda d: (d["title"].lower(), d["iri"]))


def suggestions(form) -> list[dict]:
    """``wallet.suggest``'s candidate purposes for what the analyst wrote (the justification, else the benefit
    case), with the bases' names: shown as suggestions only."""
    from .suggest import suggest_purposes
    text = form.justification.data or " ".join(x for x in (form.how.data, form.who_benefits.data) if x)
    out = []
    for s in suggest_purposes(text or ""):
        bases = [(b, vocab.LEGAL_BASES[b].label if b in vocab.LEGAL_BASES else vocab.compact(b))
                 for b in s["usualBases"]]
        out.append({**s, "iri": vocab.expand(s["purpose"]), "bases": bases})
    return out


def page(node, form: WizardForm, attached: dict, status: int = 200, problem=None, rules: dict | None = None):
    """The wizard page and its HTTP status: the datasets chosen, then those matching the search words (at most
    ``MAX_LISTED``); the documents ``attached`` so far."""
    catalogue = catalogue_choices(node)
    wanted = set(form.datasets.data or [])
    chosen = [d for d in catalogue if d["iri"] in wanted]
    shown = {c["name"] for d in chosen for c in d["columns"]}
    # a council's catalogue has hundreds of datasets: the chosen ones, then those matching the search words
    words = (request.form.get("dataset_search") or "").lower().split() if request.method == "POST" else []
    listed = [d for d in catalogue if d["iri"] not in wanted and all(
        w in f"{d['label']} {d['description'] or ''} {d['iri']}".lower() for w in words)]
    more = max(0, len(listed) - MAX_LISTED)
    form.datasets.choices = options((d["iri"], d["label"]) for d in chosen + listed[:MAX_LISTED])
    errors = [(f.id, e) for f in form for e in f.errors] + \
             [(k, v) for k, v in attached.get("errors", {}).items()]
    return render_template("wallet_wizard.html", cadence_hint=CADENCE_HINT, duration_hint=DURATION_HINT,
                           form=form, attached=attached, errors=errors, problem=problem,
                           catalogue=catalogue, chosen=chosen, picked=set(form.columns.data or []),
                           unshown=[c for c in form.columns.data or [] if c not in shown], suggestions=suggestions(form),
                           screening=DPIA_SCREENING, rules=rules or {}, more=more,
                           search=" ".join(words)), status


def make(node, formdata=None) -> WizardForm:
    form = WizardForm(formdata)
    catalogue = catalogue_choices(node)
    form.datasets.choices = options((d["iri"], d["label"]) for d in catalogue)
    form.columns.choices = options((c["name"], c["name"]) for d in catalogue for c in d["columns"])
    form.purpose.choices = options([("", "Choose a purpose")]) + _choices(vocab.PURPOSES)
    form.legal_basis.choices = legal_basis_choices()
    form.condition.choices = condition_choices()
    if formdata is None:
        form.legal_basis.data = suggested_bases(None)[0]
    return form


def may_send():
    if not may("request:send"):
        raise CeadError("auth.scope", "You may not send data-sharing requests.", scope="request:send")


# -- the views (URL rules in :func:`register`) ----------------------------------------------------------------------

@sign_in_required
def wizard():
    may_send()
    node = current.node()
    return page(node, make(node), {})


@sign_in_required
def wizard_send():
    may_send()
    node, wallet = current.node(), current.wallet()
    form = make(node, request.form)
    action = request.form.get("action", "send")
    attached: dict = {"errors": {}}
    for kind in ("agreement", "dpia"):
        try:
            pin = store_document(node.home, request.files.get(f"{kind}_file"))
        except ValueError as exc:
            attached["errors"][f"{kind}_file"] = str(exc)
            continue
        if pin is None and request.form.get(f"{kind}_pin"):        # attached on an earlier try
            digest = request.form[f"{kind}_pin"]
            # only a digest this page made names a kept document: never a path ("../web-secret", "/etc/...")
            if DIGEST.fullmatch(digest) and (node.home / "documents" / digest).is_file():
                pin = {"title": request.form.get(f"{kind}_title", kind)[:300],
                       "id": f"urn:cead:document:{digest}", "digest": digest,
                       "size": (node.home / "documents" / digest).stat().st_size}
        if pin is not None:
            attached[kind] = pin
    if action in ("columns", "suggest", "search"):        # the same page again, with what was typed: nothing is sent
        return page(node, form, {**attached, "errors": {}})
    if "agreement" not in attached and "agreement_file" not in attached["errors"]:
        attached["errors"]["agreement_file"] = "Attach the data sharing agreement (a Word or PDF document)."
    screening = set(form.dpia_screening.data or [])
    if screening and "dpia" not in attached and "dpia_file" not in attached["errors"]:
        attached["errors"]["dpia_file"] = ("You ticked a DPIA screening question, so a DPIA is needed: "
                                           "attach it.")
    valid = form.validate()
    if not valid or attached["errors"]:
        return page(node, form, attached, 400)
    body = request_body(node, wallet, form, attached, screening)
    from .rule_fields import WIZARD_FIELDS, beside, holder_did, request_checks
    broken = request_checks(body, holder_did(form.holder_url.data), vocabulary=getattr(node, "vocabulary", None))
    if broken:     # the law would not allow what is asked: beside the fields, nothing sent
        for name, messages in beside(broken, WIZARD_FIELDS, "legal_basis").items():
            getattr(form, name).errors = [*getattr(form, name).errors, *messages]
        audit("request not sent", target=form.holder_url.data, detail={"rules": [r.rule for r in broken]})
        return page(node, form, attached, 422)
    url = form.holder_url.data.rstrip("/") + "/requests"
    try:
        answer = sharing.send_request(wallet, url, body, verify=node.network.ca_bundle or True)
    except CeadError as exc:
        if exc.code == "sharing.invalid" and exc.detail.get("field"):
            where = {"datasets": "datasets", "dataItems": "columns", "cadence": "cadence",
                     "purposes": "purpose", "lawfulBasis": "legal_basis"}
            target = where.get(str(exc.detail["field"]).split(".")[0])
            if target:
                getattr(form, target).errors = [*getattr(form, target).errors, exc.message]
        audit("request not sent", target=url, detail={"code": exc.code})
        return page(node, form, attached, 502 if exc.code == "sharing.unreachable" else 400, exc.problem)
    audit("sent request", target=answer.get("id"), detail={"to": url, "datasets": body["datasets"]})
    flash(f"Request sent to {form.holder_url.data}: it is {answer.get('status', 'pending')} (their reference "
          f"{answer.get('id')}). The approval, when given, arrives in this node's wallet.")
    return redirect(url_for(".requests_list"))


def request_body(node, wallet, form: WizardForm, attached: dict, screening: set) -> dict:
    """The data-sharing request a valid wizard form asks for, with its case (``case``) and the documents
    ``attached`` pinned by their digests; replies come to this node's ``/inbox``."""
    holder = wallet.holder
    base = (node.config.get("public_url") or request.url_root).rstrip("/")
    documents = [{"kind": k, **attached[k]} for k in ("agreement", "dpia") if k in attached]
    case = {
        "publicBenefit": {"whoBenefits": form.who_benefits.data, "how": form.how.data,
                          **({"evidence": form.evidence.data} if form.evidence.data else {}),
                          **({"withoutTheData": form.without.data} if form.without.data else {})},
        "fiveSafes": {k: getattr(form, f"safe_{k}").data for k in ("people", "projects", "settings", "data",
                                                                    "outputs") if getattr(form, f"safe_{k}").data},
        "dpiaScreening": {k: k in screening for k in DPIA_SCREENING},
        "retention": duration_from_words(form.retention.data),
        **{k: getattr(form, k).data for k in ("review", "transparency", "rights") if getattr(form, k).data},
        "proposedProtocol": {"kind": form.protocol.data, **({"minCellCount": form.min_cell_count.data}
                                                            if form.protocol.data == "threshold" else {})},
        "documents": [{k: v for k, v in d.items() if k in ("kind", "title", "id", "digest", "size",
                                                            "mediaType")} for d in documents],
    }
    return {
        "requester": holder, "datasets": form.dataset_list(),
        "dataItems": form.column_list(), "purposes": [form.purpose.data],
        "lawfulBasis": {"party": holder, "regime": form.regime.data, "legalBases": [b for b in (form.legal_basis.data,
                                                                                form.condition.data) if b]},
        "cadence": cadence_from_words(form.cadence.data),
        "agreement": {"id": attached["agreement"]["id"], "digest": attached["agreement"]["digest"]},
        "justification": (form.justification.data or
                          f"{form.how.data} (benefits {form.who_benefits.data})")[:4000],
        "replyTo": f"{base}/inbox", "case": case,
    }


def register(bp) -> None:
    """Add the wizard's URL rules to the wallet pages' blueprint (``wallet.pages.blueprint``), before the desk's
    ``/wallet/requests/<request_id>``, under the endpoints ``url_for`` names (``cead_wallet.wizard``, ...)."""
    bp.add_url_rule("/wallet/requests/new", "wizard", wizard, methods=["GET"])
    bp.add_url_rule("/wallet/requests/new", "wizard_send", wizard_send, methods=["POST"])
