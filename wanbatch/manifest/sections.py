"""The manifest's sections other than its jobs: name, api, pricing, limits, matrix; and the
command line's ``Overrides``, checked once each as flags. Pure."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from wanbatch.manifest import schema
from wanbatch.manifest.gateway import ENV_RE, RATIO_RE, gateway
from wanbatch.manifest.problems import (
    Problems,
    check_keys,
    did_you_mean,
    flag_problem,
    mapping,
    positive_int,
    positive_int_problem,
    positive_number,
    ratio_hint,
)
from wanbatch.models import (
    DEFAULT_KEY_ENV,
    DEFAULT_PROVIDER,
    KNOWN_MODELS,
    MAX_DURATION,
    MAX_JOB_ID_LENGTH,
    ApiSettings,
    Limits,
)
from wanbatch.providers import PROVIDERS

ID_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*\Z")


@dataclass(frozen=True, slots=True)
class Overrides:
    """Values from the command line; they win over the manifest (a job's own fields still win).

    ``ignore_columns``: CSV columns to skip (``--ignore-columns``), in any case. ``pricing``:
    credits per second of video by model (``--price MODEL=CREDITS_PER_S``), over the
    manifest's ``pricing``."""

    model: str | None = None
    duration: int | None = None
    aspect_ratio: str | None = None
    output_dir: str | None = None  # relative to the working directory, like any flag
    concurrency: int | None = None
    requests_per_second: float | None = None
    ignore_columns: tuple[str, ...] = ()
    pricing: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))


# The flag each job default comes from, for its problems.
FLAGS = {"model": "--model", "duration": "--duration", "aspect_ratio": "--aspect-ratio"}


def flag_defaults(
    overrides: Overrides, models: tuple[str, ...], problems: Problems
) -> dict[str, Any]:
    """The job defaults the flags give, each checked once: a bad one is one problem naming the
    flag (not one a job), and is not used."""
    out: dict[str, Any] = {}
    for key, flag in FLAGS.items():
        value = getattr(overrides, key)
        if value is None:
            continue
        message: str | None = None
        if key == "model" and value not in models:
            message = f"unknown model{did_you_mean(str(value), models)}"
        elif key == "duration":
            message = positive_int_problem(value, maximum=MAX_DURATION)
        elif key == "aspect_ratio" and not RATIO_RE.match(str(value).strip()):
            message = "must be W:H such as 16:9"
        if message is not None:
            problems.found.append(flag_problem(f"{flag} {value}", message))
        else:
            out[key] = value
    return out


def name(raw: dict[str, Any], manifest_path: Path, problems: Problems) -> str:
    """The manifest's name; by default the file's stem, made safe to name a folder."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", manifest_path.stem).lstrip(".-")[:MAX_JOB_ID_LENGTH]
    stem = stem or "manifest"
    given = raw.get("name", stem)
    if not isinstance(given, str) or not given.strip():
        problems.add("name", "must be non-empty text")
        return stem
    if not ID_RE.match(given) or len(given) > MAX_JOB_ID_LENGTH:
        problems.add("name", "may use only letters, digits, '.', '_' and '-' (it names a folder)")
        return stem
    return given


def api(raw: dict[str, Any], problems: Problems) -> ApiSettings:
    check_keys(raw, schema.keys("api"), "api", problems)
    provider = raw.get("provider", DEFAULT_PROVIDER)
    if provider not in PROVIDERS:
        problems.add("api.provider", f"must be one of {', '.join(PROVIDERS)}")
        provider = DEFAULT_PROVIDER
    base_url = raw.get("base_url")
    if base_url is not None and (
        not isinstance(base_url, str) or not re.match(r"^https?://[^/\s]+", base_url)
    ):
        problems.add("api.base_url", "must be an http(s) URL such as https://api.wanapi.io/v1")
        base_url = None
    key_env = raw.get("key_env", DEFAULT_KEY_ENV)
    if not isinstance(key_env, str) or not ENV_RE.match(key_env):
        problems.add("api.key_env", "must name an environment variable, such as WAN_API_KEY")
        key_env = DEFAULT_KEY_ENV
    models: tuple[str, ...] = KNOWN_MODELS
    if "models" in raw:
        listed = raw["models"]
        if (
            not isinstance(listed, list)
            or not listed
            or not all(isinstance(m, str) and m.strip() for m in listed)
        ):
            problems.add("api.models", "must be a non-empty list of model names")
        else:
            models = tuple(dict.fromkeys([*KNOWN_MODELS, *listed]))
    described = None
    if "gateway" in raw and provider != "gateway":
        problems.add("api.gateway", "describes a gateway, but api.provider is not 'gateway'")
    elif provider == "gateway":
        described = gateway(mapping(raw.get("gateway"), "api.gateway", problems), models, problems)
    return ApiSettings(
        provider=provider, base_url=base_url, key_env=key_env, models=models, gateway=described
    )


def _price_problem(model: Any, price: Any, models: tuple[str, ...]) -> str | None:
    if not isinstance(model, str) or model not in models:
        return f"unknown model{did_you_mean(str(model), models)}"
    if (
        isinstance(price, bool)
        or not isinstance(price, int | float)
        or not price >= 0
        or not math.isfinite(price)
    ):
        return f"must be a number of credits per second, not {price!r}"
    return None


def pricing(
    raw: dict[str, Any], flags: Mapping[str, float], models: tuple[str, ...], problems: Problems
) -> dict[str, float]:
    """The manifest's prices, then the flags' (``--price``) over and beside them."""
    out: dict[str, float] = {}
    for model, price in raw.items():
        message = _price_problem(model, price, models)
        if message is not None:
            problems.add(f"pricing.{model}", message)
        else:
            out[model] = float(price)
    for model, price in flags.items():
        message = _price_problem(model, price, models)
        if message is not None:
            problems.found.append(flag_problem(f"--price {model}={price}", message))
        else:
            out[model] = float(price)
    return out


def limits(raw: dict[str, Any], overrides: Overrides, problems: Problems) -> Limits:
    """``limits``, each key checked by its kind in the schema; the flags win."""
    check_keys(raw, schema.keys("limits"), "limits", problems)
    values: dict[str, Any] = {}
    for key in schema.SCHEMA["limits"]:
        if key.name not in raw:
            continue
        path = f"limits.{key.name}"
        if key.kind == schema.WHOLE:
            checked: float | None = positive_int(raw[key.name], path, problems)
        else:
            checked = positive_number(raw[key.name], path, problems)
        if checked is not None:
            values[key.name] = checked
    if overrides.concurrency is not None:
        values["concurrency"] = overrides.concurrency
    if overrides.requests_per_second is not None:
        values["requests_per_second"] = overrides.requests_per_second
    return Limits(**values)


def matrix(raw: dict[str, Any], problems: Problems) -> dict[str, list[Any]]:
    check_keys(raw, schema.keys("matrix"), "matrix", problems)
    out: dict[str, list[Any]] = {}
    for key in schema.keys("matrix"):
        if key not in raw:
            continue
        values = raw[key]
        if not isinstance(values, list) or not values:
            problems.add(f"matrix.{key}", "must be a non-empty list of values")
            continue
        if len({repr(v) for v in values}) != len(values):
            problems.add(f"matrix.{key}", "lists a value twice")
            continue
        if key == "aspect_ratio":
            hints = [ratio_hint(value) for value in values if ratio_hint(value)]
            if hints:
                problems.add(f"matrix.{key}", f"holds a number, not W:H{hints[0]}")
                continue
        out[key] = values
    return out
