"""The case a requester makes for a data-sharing request: what the Information Asset Owner weighs besides the
datasets, columns, purpose and lawful basis (the request's ``case`` member, optional, checked here).

It follows what the ICO's Data Sharing Code of Practice expects an organisation to have thought about before it
shares (https://ico.org.uk/for-organisations/uk-gdpr-guidance-and-resources/data-sharing/data-sharing-a-code-of-practice/):
a structured public-benefit case, the Five Safes (safe people, projects, settings, data, outputs), the ICO's DPIA
screening questions (each a yes/no: any "yes" means a DPIA is needed), retention and review, transparency, how
people's rights are met, the privacy protocol the requester proposes, and the documents it rests on (a data
sharing agreement, a DPIA), each pinned by its SHA-256 digest so that what was approved is exactly what was read.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

Text = Annotated[str, Field(min_length=1, max_length=2000)]
Digest = Annotated[str, Field(pattern=r"^sha256-[A-Za-z0-9_-]{43}$")]

# the ICO's DPIA screening questions (the processing types its guidance says need a DPIA), shortened
DPIA_SCREENING = {
    "newTechnology": "Uses innovative technology or a new way of processing",
    "largeScale": "Processes personal data on a large scale",
    "specialCategory": "Processes special category or criminal offence data",
    "vulnerable": "Concerns children or other vulnerable people",
    "matching": "Combines, compares or matches data from several sources",
    "denialOfService": "Decisions from it could stop people getting a service, benefit or opportunity",
    "invisible": "People would not expect it, or have not been told (invisible processing)",
    "tracking": "Tracks people's location or behaviour",
}
FIVE_SAFES = {"people": "Safe people", "projects": "Safe projects", "settings": "Safe settings",
              "data": "Safe data", "outputs": "Safe outputs"}


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class PublicBenefit(_Model):
    who_benefits: Text
    how: Text
    evidence: Optional[Text] = None
    without_the_data: Optional[Text] = None


class FiveSafes(_Model):
    people: Optional[Text] = None
    projects: Optional[Text] = None
    settings: Optional[Text] = None
    data: Optional[Text] = None
    outputs: Optional[Text] = None


class Document(_Model):
    """A document the request rests on, pinned by the SHA-256 of its bytes (base64url, as credentials pin)."""
    kind: Literal["agreement", "dpia", "other"]
    title: Annotated[str, Field(min_length=1, max_length=300)]
    id: Annotated[str, Field(min_length=1, max_length=300)]
    digest: Digest
    size: Annotated[int, Field(ge=0)]
    media_type: Optional[Annotated[str, Field(max_length=100)]] = None


class ProposedProtocol(_Model):
    kind: Literal["threshold", "pseudonymisation", "treOnly", "none"]
    min_cell_count: Optional[Annotated[int, Field(ge=1, le=1000)]] = None


class RequestCase(_Model):
    public_benefit: Optional[PublicBenefit] = None
    five_safes: Optional[FiveSafes] = None
    dpia_screening: Optional[dict[Literal[tuple(DPIA_SCREENING)], bool]] = None
    retention: Optional[Annotated[str, Field(max_length=40)]] = None      # ISO 8601 duration, e.g. P1Y
    review: Optional[Text] = None
    transparency: Optional[Text] = None
    rights: Optional[Text] = None
    security: Optional[Text] = None
    proposed_protocol: Optional[ProposedProtocol] = None
    documents: Annotated[list[Document], Field(max_length=10)] = []

    @property
    def dpia_needed(self) -> bool | None:
        if self.dpia_screening is None:
            return None
        return any(self.dpia_screening.values())
