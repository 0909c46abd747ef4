"""The versioned YAML configuration file (``ESCALATOR_CONFIG_FILE``).

One file, one top-level section per service (``router``, ``sla``, ``notifier``...), so a
platform team keeps all of it in git and ships the same ConfigMap to every service. A
service validates only its own section, with its own pydantic model, at start-up, and
refuses to start on an invalid file, naming the offending entry.

Also the validated types that configuration and request bodies share: time-zone names,
wall-clock times of day, and moments given as RFC 3339 text.
"""

from __future__ import annotations

import re
from datetime import datetime, time
from pathlib import Path
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ValidationError
from pydantic_core import PydanticCustomError

M = TypeVar("M", bound=BaseModel)


class ConfigError(RuntimeError):
    pass


def load_section(path: Path | None, section: str, model: type[M]) -> M:
    """The validated ``section`` of the file at ``path``; the model's defaults when absent."""
    if path is None:
        return model()
    try:
        document = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigError(f"config file {path} must be a mapping of sections")
    try:
        return model.model_validate(document.get(section) or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join([section, *(str(p) for p in err['loc'])])}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid config file {path}: {problems}") from exc


T = TypeVar("T")


def unique_ids(items: list[T], what: str) -> list[T]:
    """A config-list validator: refuse entries that share an ``id``, naming them."""
    ids = [getattr(item, "id") for item in items]  # noqa: B009 - any model with an id
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"duplicate {what} ids: {', '.join(duplicates)}")
    return items


def _known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise PydanticCustomError("timezone", "unknown IANA time zone '{zone}'",
                                  {"zone": value}) from exc
    return value


#: A time-zone name a calendar, shift or working-hours setting can rely on.
TimeZoneName = Annotated[str, AfterValidator(_known_zone)]


def wall_time(value: time) -> time:
    """Refuse a UTC offset on a time of day read in a zone given beside it.

    Shifts and working hours are wall-clock times in a person's or a calendar's zone;
    ``09:00Z`` would be an aware time that cannot be compared with the zone's clock, and
    it crashed the router's shift check on every ticket of that agent's level."""
    if value.tzinfo is not None:
        raise PydanticCustomError(
            "wall_time", "a time of day in the zone given beside it: drop the UTC offset "
            "('{value}')", {"value": value.isoformat()})
    return value


#: A time of day in a zone named elsewhere (an agent's, a calendar's): no UTC offset.
WallTime = Annotated[time, AfterValidator(wall_time)]

_DATE_FIRST = re.compile(r"\d{4}-\d{2}-\d{2}")


def _rfc3339(value: Any) -> Any:
    if isinstance(value, datetime) or (isinstance(value, str) and _DATE_FIRST.match(value)):
        return value
    raise PydanticCustomError("datetime_type",
                              "Input should be an RFC 3339 date-time string with an offset")


#: A moment given in a request (a body's or a query's): RFC 3339 text with an offset.
#: Plain ``AwareDatetime`` also reads a number, or text holding one, as seconds since
#: 1970, so a sender's 0 or ``false`` became a call made on 1970-01-01 and a list filter
#: ``created_before=0.5`` listed nothing, instead of a 422 naming the field.
Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]
