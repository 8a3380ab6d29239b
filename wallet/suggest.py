"""Language help, offline: from a request's free-text justification, candidate DPV purposes (and the lawful bases
public bodies usually rely on for them), for the analyst filling in a request and the IAO reading one.

``suggest_purposes(text)`` ranks the purposes Cead's vocabulary names (DPV and Cead's narrower ones) by BM25 (``bm25s``) between the text and each purpose's label, its broader
purposes' labels and a few plain words people use for it. Nothing is downloaded and no model runs: the ranking is
lexical and explainable (each suggestion lists the words it matched). A suggestion is shown as one and is never
applied by itself; whatever is chosen still goes through the same checks (the guard rail, the lawful-basis rules).
"""
from __future__ import annotations

import re

from schemas.vocab import PURPOSES, compact

# plain words people write for a purpose (lower case), beside its label
_PLAIN = {
    "FreeSchoolMealAutoEnrolment": "school meals lunch pupils free enrol enrolment automatic entitlement",
    "SchoolClothingGrantAutoAward": "school clothing uniform grant award pupils automatic",
    "BenefitTakeUpAnalysis": "benefit take-up uptake unclaimed eligible claim analysis poverty",
    "HomelessnessStatistics": "homeless homelessness housing applications statistics return",
    "JusticeStatistics": "justice courts offending reoffending prisons statistics",
    "LawEnforcement": "police crime investigation prosecution offence offender law enforcement",
    "ProvideOfficialStatistics": "statistics statistical official national publication",
    "PublicPolicyMaking": "policy evaluation evidence planning",
    "ImprovePublicServices": "improve service design delivery performance",
    "ScientificResearch": "research study academic scientific",
    "FraudPreventionAndDetection": "fraud error detect prevent overpayment",
    "PersonalisedBenefits": "individual support eligibility targeted",
    "LegalCompliance": "statutory duty comply obligation legal requirement",
}
# the lawful bases public bodies usually rely on for such purposes: a starting point for the DPO, never a decision
USUAL_BASES = {
    "default": ["https://www.legislation.gov.uk/eur/2016/679/article/6/1/e"],
    "LawEnforcement": ["https://www.legislation.gov.uk/ukpga/2018/12/section/35"],
    "LegalCompliance": ["https://www.legislation.gov.uk/eur/2016/679/article/6/1/c"],
}
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)?")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def suggest_purposes(text: str, *, k: int = 3) -> list[dict]:
    """Up to ``k`` purposes for ``text``, best first: ``{"purpose", "label", "score", "matched", "usualBases"}``;
    empty when nothing matches (better no suggestion than a guess)."""
    import bm25s
    if not isinstance(text, str) or not text.strip():
        return []
    terms = PURPOSES
    iris = [iri for iri in terms if not iri.endswith("#Purpose")]
    docs = []
    for iri in iris:
        term = terms[iri]
        name = iri.rsplit("#", 1)[-1].rsplit("/", 1)[-1]
        broader = " ".join(terms[b].label for b in term.broader if b in terms)
        docs.append(" ".join([term.label, broader, _PLAIN.get(name, "")]))
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(docs, stopwords="en", show_progress=False), show_progress=False)
    query = bm25s.tokenize([text], stopwords="en", show_progress=False)
    found, scores = retriever.retrieve(query, k=min(len(docs), max(k, 1)), show_progress=False)
    out = []
    asked = set(_words(text))
    for index, score in zip(found[0], scores[0]):
        if score <= 0:
            continue
        iri = iris[int(index)]
        name = iri.rsplit("#", 1)[-1]
        matched = sorted(asked & set(_words(docs[int(index)])))
        out.append({"purpose": compact(iri), "label": terms[iri].label, "score": round(float(score), 3),
                    "matched": matched, "usualBases": USUAL_BASES.get(name, USUAL_BASES["default"])})
    return out
