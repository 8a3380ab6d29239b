"""The analyst's request wizard (``GET``/``POST /wallet/requests/new``): a data-sharing request without code.

The analyst names the data holder's node, the datasets and columns, the purpose and the lawful basis (suggested
for the purpose: the lawful-basis rule engine's suggestion when ``verifier.lawful`` offers one, else public task,
Art 6(1)(e), which is what most public-body sharing relies on), the public-benefit case, the Five Safes, the ICO's
DPIA screening questions, retention, review, transparency, rights and the proposed privacy protocol, and attaches
the data sharing agreement (required) and the DPIA. Each document is stored in ``HOME/documents/`` under its
SHA-256 digest and pinned in the request by that digest (the agreement is the request's ``agreement``), so the
approver reads, and the approval pins, exactly what was sent. The request goes through
``wallet.requests.send_request`` with the wallet's certifications.
"""
from __future__ import annotations

import base64
import hashlib
import uuid
from pathlib import Path

from flask import current_app, flash, redirect, render_template, request, url_for

from issuer.pages import audit, may, sign_in_required
from schemas import vocab
from verifier.results import CeadError

from . import requests as sharing
from .casefile import DPIA_SCREENING
from .forms import WizardForm, _choices, condition_choices, legal_basis_choices
from .names import Directory

MAX_DOCUMENT = 5 * 1024 * 1024
PUBLIC_TASK = f"{vocab.UK_GDPR}article/6/1/e"


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


def register(bp, wallet, blueprint_name: str) -> None:

    def page(form: WizardForm, attached: dict, status: int = 200, problem=None):
        node = current_app.config["CEAD_NODE"]
        names = Directory.for_node(node, wallet)
        catalogue = sorted((iri, label) for iri, label in names.names.items() if iri.startswith("http"))
        errors = [(f.id, e) for f in form for e in f.errors] + \
                 [(k, v) for k, v in attached.get("errors", {}).items()]
        return render_template("wallet_wizard.html", form=form, attached=attached, errors=errors, problem=problem,
                               catalogue=catalogue, screening=DPIA_SCREENING), status

    def make(formdata=None) -> WizardForm:
        form = WizardForm(formdata)
        form.purpose.choices = [("", "Choose a purpose")] + _choices(vocab.PURPOSES)
        form.legal_basis.choices = legal_basis_choices()
        form.condition.choices = condition_choices()
        if formdata is None:
            form.legal_basis.data = suggested_bases(None)[0]
        return form

    def may_send():
        if not may("request:send"):
            raise CeadError("auth.scope", "You may not send data-sharing requests.", scope="request:send")

    @bp.get("/wallet/requests/new", endpoint="wizard")
    @sign_in_required
    def wizard():
        may_send()
        return page(make(), {})

    @bp.post("/wallet/requests/new", endpoint="wizard_send")
    @sign_in_required
    def wizard_send():
        may_send()
        node = current_app.config["CEAD_NODE"]
        form = make(request.form)
        attached: dict = {"errors": {}}
        for kind in ("agreement", "dpia"):
            try:
                pin = store_document(node.home, request.files.get(f"{kind}_file"))
            except ValueError as exc:
                attached["errors"][f"{kind}_file"] = str(exc)
                continue
            if pin is None and request.form.get(f"{kind}_pin"):        # attached on an earlier try
                digest = request.form[f"{kind}_pin"]
                if (node.home / "documents" / digest).exists():
                    pin = {"title": request.form.get(f"{kind}_title", kind)[:300],
                           "id": f"urn:cead:document:{digest}", "digest": digest,
                           "size": (node.home / "documents" / digest).stat().st_size}
            if pin is not None:
                attached[kind] = pin
        if "agreement" not in attached and "agreement_file" not in attached["errors"]:
            attached["errors"]["agreement_file"] = "Attach the data sharing agreement (a Word or PDF document)."
        screening = set(form.dpia_screening.data or [])
        if screening and "dpia" not in attached and "dpia_file" not in attached["errors"]:
            attached["errors"]["dpia_file"] = ("You ticked a DPIA screening question, so a DPIA is needed: "
                                               "attach it.")
        valid = form.validate()
        if not valid or attached["errors"]:
            return page(form, attached, 400)
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
            "retention": form.retention.data,
            **{k: getattr(form, k).data for k in ("review", "transparency", "rights") if getattr(form, k).data},
            "proposedProtocol": {"kind": form.protocol.data, **({"minCellCount": form.min_cell_count.data}
                                                                if form.protocol.data == "threshold" else {})},
            "documents": [{k: v for k, v in d.items() if k in ("kind", "title", "id", "digest", "size",
                                                                "mediaType")} for d in documents],
        }
        body = {
            "requester": holder, "datasets": WizardForm.lines(form.datasets.data),
            "dataItems": WizardForm.lines(form.columns.data), "purposes": [form.purpose.data],
            "lawfulBasis": {"party": holder, "regime": form.regime.data, "legalBases": [b for b in (form.legal_basis.data,
                                                                                    form.condition.data) if b]},
            "cadence": form.cadence.data,
            "agreement": {"id": attached["agreement"]["id"], "digest": attached["agreement"]["digest"]},
            "justification": f"{form.how.data} (benefits {form.who_benefits.data})"[:4000],
            "replyTo": f"{base}/inbox", "case": case,
        }
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
            return page(form, attached, 502 if exc.code == "sharing.unreachable" else 400, exc.problem)
        audit("sent request", target=answer.get("id"), detail={"to": url, "datasets": body["datasets"]})
        flash(f"Request sent to {form.holder_url.data}: it is {answer.get('status', 'pending')} (their reference "
              f"{answer.get('id')}). The approval, when given, arrives in this node's wallet.")
        return redirect(url_for(f"{blueprint_name}.requests_list"))
