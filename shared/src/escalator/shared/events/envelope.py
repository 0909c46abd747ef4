"""The CloudEvents 1.0 envelope (JSON structured mode) and decoding from the wire."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from escalator.shared.events.base import EventData, utcnow
from escalator.shared.events.registry import EVENT_TYPES

D = TypeVar("D", bound=EventData)


class CloudEvent(BaseModel, Generic[D]):
    """A CloudEvents 1.0 envelope in JSON structured mode; ``subject`` is the ticket id."""

    model_config = ConfigDict(frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    source: str
    type: str
    subject: str
    time: AwareDatetime = Field(default_factory=utcnow)
    datacontenttype: Literal["application/json"] = "application/json"
    data: D

    @classmethod
    def wrap(
        cls, data: D, *, source: str, time: datetime | None = None, event_id: str | None = None
    ) -> CloudEvent[D]:
        """``event_id`` fixes the id when the event must be unique per fact (a timer fires
        once: a second attempt then collides in the outbox instead of publishing twice).

        The envelope is built unparametrised: ``data`` keeps its own type (and serialises
        as it), and looking up ``CloudEvent[...]`` on every call cost more than building
        the envelope (a timer burst wraps a hundred thousand)."""
        return cls(
            id=event_id or str(uuid.uuid4()),
            source=source,
            type=data.event_type,
            subject=data.ticket_id,
            time=time or utcnow(),
            data=data,
        )

    @property
    def topic(self) -> str:
        return self.data.topic


class RawEnvelope(BaseModel):
    """The envelope before its payload is typed, so unknown types can be skipped cheaply."""

    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"]
    id: str = Field(min_length=1, max_length=200)
    source: str
    type: str
    subject: str | None = None
    time: AwareDatetime
    data: dict[str, Any]


def parse_event(raw: bytes) -> CloudEvent[Any] | None:
    """Decode a message value into a typed event.

    Returns None for a well-formed envelope of a type this build does not know (forward
    compatibility); raises ``pydantic.ValidationError``/``ValueError`` for anything that
    is not a valid CloudEvent of a known type, which the consumer dead-letters.
    """
    envelope = RawEnvelope.model_validate_json(raw)
    model = EVENT_TYPES.get(envelope.type)
    if model is None:
        return None
    data = model.model_validate(envelope.data)
    return CloudEvent(
        id=envelope.id,
        source=envelope.source,
        type=envelope.type,
        subject=envelope.subject or data.ticket_id,
        time=envelope.time,
        data=data,
    )
