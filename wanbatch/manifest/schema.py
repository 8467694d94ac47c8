"""The manifest's keys as one table: each section, its keys, their kind, default and whether a key
is a job field. The loader checks keys against it and takes its defaults from it; the tests read
it too instead of copying key lists. Pure data.

A section is named by the dotted path of its mapping: ``""`` is the top level, ``"jobs[]"`` is one
job, ``"csv"`` is a CSV's columns (a bare CSV, or one named by ``jobs_from``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from wanbatch.models import (
    DEFAULT_ASPECT_RATIO,
    DEFAULT_DURATION,
    DEFAULT_KEY_ENV,
    DEFAULT_MODEL,
    DEFAULT_OUTPUT_ROOT,
    DEFAULT_PATH_TEMPLATE,
    DEFAULT_PROVIDER,
    Limits,
)

# The kinds of value a key holds, as the loader checks them.
TEXT = "text"
WHOLE = "positive whole number"
NUMBER = "positive number"
MAPPING = "mapping"
LIST = "list"
ANY = "any"


@dataclass(frozen=True, slots=True)
class Key:
    """One key of a section: its kind, its default (None: none, or made from other values), and
    whether it is a field of a job (its value goes to the API and into the fingerprint)."""

    name: str
    kind: str
    default: Any = None
    job_field: bool = False


_LIMITS = Limits()

_JOB_FIELDS = (
    Key("prompt", TEXT, job_field=True),
    Key("model", TEXT, DEFAULT_MODEL, job_field=True),
    Key("duration", WHOLE, DEFAULT_DURATION, job_field=True),
    Key("aspect_ratio", TEXT, DEFAULT_ASPECT_RATIO, job_field=True),
    Key("image", TEXT, job_field=True),
    Key("extra", MAPPING, job_field=True),
)

SCHEMA: Mapping[str, tuple[Key, ...]] = MappingProxyType(
    {
        "": (
            Key("name", TEXT),  # default: the file's stem
            Key("api", MAPPING),
            Key("pricing", MAPPING),  # model -> credits per second of video
            Key("defaults", MAPPING),
            Key("limits", MAPPING),
            Key("output", MAPPING),
            Key("matrix", MAPPING),
            Key("jobs_from", TEXT),
            Key("jobs", LIST),
        ),
        "api": (
            Key("provider", TEXT, DEFAULT_PROVIDER),
            Key("base_url", TEXT),
            Key("key_env", TEXT, DEFAULT_KEY_ENV),
            Key("models", LIST),
            Key("gateway", MAPPING),
        ),
        "api.gateway": tuple(
            Key(name, ANY)
            for name in (
                "create",
                "get",
                "id",
                "status",
                "video_url",
                "error_message",
                "error_code",
                "statuses",
                "body",
                "sizes",
                "models",
                "headers",
                "auth_header",
                "auth_scheme",
                "idempotency_keys",
                "webhook",
            )
        ),  # fmt: skip
        "defaults": _JOB_FIELDS,
        "limits": (
            Key("concurrency", WHOLE, _LIMITS.concurrency),
            Key("requests_per_second", NUMBER, _LIMITS.requests_per_second),
            Key("downloads", WHOLE, _LIMITS.downloads),
            Key("job_deadline_seconds", NUMBER, _LIMITS.job_deadline_seconds),
            Key("list_grace_seconds", NUMBER, _LIMITS.list_grace_seconds),
        ),
        "output": (
            Key("dir", TEXT, f"{DEFAULT_OUTPUT_ROOT}/{{name}}"),
            Key("path", TEXT, DEFAULT_PATH_TEMPLATE),
        ),
        "matrix": (Key("model", LIST), Key("duration", LIST), Key("aspect_ratio", LIST)),
        "jobs[]": (Key("id", TEXT), *_JOB_FIELDS),
        "csv": (Key("id", TEXT), *(key for key in _JOB_FIELDS if key.name != "extra")),
    }
)


def keys(section: str) -> tuple[str, ...]:
    """The names of ``section``'s keys, in the table's order."""
    return tuple(key.name for key in SCHEMA[section])


def defaults(section: str) -> dict[str, Any]:
    """``section``'s keys that have a default, with it."""
    return {key.name: key.default for key in SCHEMA[section] if key.default is not None}


def job_fields() -> tuple[str, ...]:
    """The fields of a job (the id apart)."""
    return tuple(key.name for key in SCHEMA["jobs[]"] if key.job_field)


# A column whose header starts with this is for people (notes, owners), not for wanbatch.
NOTE_COLUMN_PREFIX = "#"
