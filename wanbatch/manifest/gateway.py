"""``api.gateway``: an OpenAI-style video API described in the manifest (``providers/gateway.py``
sends it). Each key checked; defaults kept where a key is absent or wrong. Pure."""

from __future__ import annotations

import dataclasses
import re
import string
from typing import Any

from wanbatch.manifest.problems import Problems, check_keys, did_you_mean, mapping, ratio_hint
from wanbatch.manifest.schema import keys
from wanbatch.models import GATEWAY_CLASSES, GATEWAY_FIELDS, GatewayDescription

ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
RATIO_RE = re.compile(r"^([1-9][0-9]{0,4}):([1-9][0-9]{0,4})\Z")

_JSON_PATH_RE = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+){0,7}\Z")
_HEADER_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}\Z")
_SIZE_RE = re.compile(r"^[1-9][0-9]{1,4}x[1-9][0-9]{1,4}\Z")
_ENV_REF_RE = re.compile(r"\$\{([^}]*)\}")
_SET_BY_WANBATCH = ("content-type", "content-length", "host", "idempotency-key", "user-agent")


def gateway(raw: dict[str, Any], models: tuple[str, ...], problems: Problems) -> GatewayDescription:
    """``api.gateway``: each key checked, defaults kept where a key is absent or wrong."""
    check_keys(raw, keys("api.gateway"), "api.gateway", problems)
    default = GatewayDescription()
    changes: dict[str, Any] = {}
    for key, fallback in (("create", "POST"), ("get", "GET")):
        if key in raw:
            checked = _gateway_call(raw[key], f"api.gateway.{key}", fallback, problems)
            if checked is not None:
                changes[f"{key}_method"], changes[f"{key}_path"] = checked
    for key in ("id", "status", "video_url", "error_message", "error_code", "webhook"):
        if key not in raw:
            continue
        value = raw[key]
        nullable = key in ("error_message", "error_code", "webhook")
        if value is None and nullable:
            changes[key] = None
        elif not isinstance(value, str) or not _JSON_PATH_RE.match(value):
            problems.add(
                f"api.gateway.{key}",
                "must be a dotted path into the JSON, such as data.id or output.video_url"
                + (", or null" if nullable else ""),
            )
        else:
            changes[key] = value
    if "statuses" in raw:
        changes["statuses"] = _gateway_statuses(raw["statuses"], problems)
    if "body" in raw:
        changes["body"] = _gateway_body(raw["body"], problems)
    if "sizes" in raw:
        sizes = mapping(raw["sizes"], "api.gateway.sizes", problems)
        for ratio, size in sizes.items():
            if not isinstance(ratio, str) or not RATIO_RE.match(ratio):
                problems.add(
                    f"api.gateway.sizes.{ratio}",
                    f"must be an aspect ratio such as 16:9{ratio_hint(ratio)}",
                )
            elif not isinstance(size, str) or not _SIZE_RE.match(size):
                problems.add(f"api.gateway.sizes.{ratio}", "must be WIDTHxHEIGHT such as 1280x720")
        changes["sizes"] = {str(k): str(v) for k, v in sizes.items()}
    if "models" in raw:
        named = mapping(raw["models"], "api.gateway.models", problems)
        for model, theirs in named.items():
            if model not in models:
                problems.add(
                    f"api.gateway.models.{model}",
                    f"unknown model{did_you_mean(str(model), models)}",
                )
            elif not isinstance(theirs, str) or not theirs.strip():
                problems.add(f"api.gateway.models.{model}", "must be the gateway's model name")
        changes["models"] = {str(k): str(v) for k, v in named.items()}
    if "headers" in raw:
        changes["headers"] = _gateway_headers(raw["headers"], problems)
    if "auth_header" in raw:
        name = raw["auth_header"]
        if not isinstance(name, str) or not _HEADER_RE.match(name):
            problems.add("api.gateway.auth_header", "must be a header name, such as Authorization")
        else:
            changes["auth_header"] = name
    if "auth_scheme" in raw:
        scheme = raw["auth_scheme"]
        if not isinstance(scheme, str) or (scheme and not _HEADER_RE.match(scheme)):
            problems.add(
                "api.gateway.auth_scheme", 'must be one word such as Bearer, or "" for the bare key'
            )
        else:
            changes["auth_scheme"] = scheme
    if "idempotency_keys" in raw:
        if not isinstance(raw["idempotency_keys"], bool):
            problems.add("api.gateway.idempotency_keys", "must be true or false")
        else:
            changes["idempotency_keys"] = raw["idempotency_keys"]
    return dataclasses.replace(default, **changes)


def _gateway_call(
    value: Any, key: str, fallback: str, problems: Problems
) -> tuple[str, str] | None:
    """``"POST videos"`` or ``"videos"`` -> (method, path); the get's path needs ``{id}``."""
    methods = ("POST", "PUT") if fallback == "POST" else ("GET", "POST")
    example = "POST videos" if fallback == "POST" else "videos/{id}"
    if not isinstance(value, str) or not value.strip():
        problems.add(key, f"must be a method and a path such as {example!r}")
        return None
    method, _, path = value.strip().partition(" ")
    method, path = (method.upper(), path.strip()) if path else (fallback, method)
    wanted = "{id}" if fallback == "GET" else ""
    if method not in methods:
        problems.add(key, f"the method must be {' or '.join(methods)}, not {method!r}")
    elif path.startswith("/") or "://" in path:
        problems.add(key, f"{path!r}: the path is relative to api.base_url (no leading /)")
    elif re.search(r"\s|#|\\", path) or ".." in path.split("?")[0].split("/"):
        problems.add(key, f"{path!r} is not a usable path")
    elif path.replace("{id}", "").count("{") or path.replace("{id}", "").count("}"):
        problems.add(key, f"{path!r}: the only placeholder a path may hold is {{id}}")
    elif wanted and path.count(wanted) != 1:
        problems.add(key, f"{path!r} must hold {{id}} once, where the task id goes")
    elif not wanted and "{id}" in path:
        problems.add(key, f"{path!r}: the create's path cannot hold {{id}}")
    else:
        return method, path
    return None


def _gateway_statuses(value: Any, problems: Problems) -> dict[str, tuple[str, ...]]:
    statuses = mapping(value, "api.gateway.statuses", problems)
    out: dict[str, tuple[str, ...]] = {name: () for name in GATEWAY_CLASSES}
    seen: dict[str, str] = {}
    for name, words in statuses.items():
        key = f"api.gateway.statuses.{name}"
        if name not in GATEWAY_CLASSES:
            problems.add(key, f"unknown class{did_you_mean(str(name), GATEWAY_CLASSES)}")
            continue
        listed = [words] if isinstance(words, str) else words
        if not isinstance(listed, list) or not all(
            isinstance(w, str) and w.strip() for w in listed
        ):
            problems.add(key, "must be a list of status words, such as [completed]")
            continue
        for word in listed:
            folded = word.strip().lower()
            if folded in seen and seen[folded] != name:
                problems.add(key, f"{word!r} is also listed under {seen[folded]}")
            seen[folded] = name
        out[name] = tuple(w.strip() for w in listed)
    for name in ("succeeded", "failed"):
        if statuses and not out[name]:
            problems.add("api.gateway.statuses", f"needs the {name} words (a task must end)")
    return out


def _gateway_body(value: Any, problems: Problems) -> dict[str, Any]:
    body = mapping(value, "api.gateway.body", problems)
    if value is not None and not body:
        problems.add("api.gateway.body", "must name at least the prompt's place: {prompt}")
    paths = [str(path) for path in body]
    for path, template in body.items():
        key = f"api.gateway.body.{path}"
        if not isinstance(path, str) or not _JSON_PATH_RE.match(path):
            problems.add(key, "must be a dotted path in the request, such as input.prompt")
        elif any(other.startswith(path + ".") for other in paths):
            problems.add(key, "holds a value and other fields at once")
        if isinstance(template, dict | list):
            problems.add(key, "must be one value: text with {placeholders}, a number or true/false")
        elif isinstance(template, str):
            try:
                parsed = list(string.Formatter().parse(template))
            except ValueError as exc:
                problems.add(key, f"is not a valid template: {exc}")
                continue
            for _, name, spec, conversion in parsed:
                if name is not None and (name not in GATEWAY_FIELDS or spec or conversion):
                    problems.add(
                        key, f"unknown field {{{name}}}{did_you_mean(name, GATEWAY_FIELDS)}"
                    )
    return body


def _gateway_headers(value: Any, problems: Problems) -> dict[str, str]:
    headers = mapping(value, "api.gateway.headers", problems)
    out: dict[str, str] = {}
    for name, text in headers.items():
        key = f"api.gateway.headers.{name}"
        if not isinstance(name, str) or not _HEADER_RE.match(name):
            problems.add(key, "is not a header name")
        elif name.lower() in _SET_BY_WANBATCH or name.lower() == "authorization":
            problems.add(key, "is set by wanbatch (the key goes by auth_header and key_env)")
        elif not isinstance(text, str) or not text.isprintable():
            problems.add(key, "must be one line of text")
        elif text.split(" ")[0].lower() in ("bearer", "basic", "key", "token"):
            problems.add(key, "holds a credential: put it in the environment, ${NAME}")
        elif bad := [ref for ref in _ENV_REF_RE.findall(text) if not ENV_RE.match(ref)]:
            problems.add(key, f"${{{bad[0]}}} does not name an environment variable")
        elif "$" in _ENV_REF_RE.sub("", text):
            problems.add(key, "a $ must start an environment variable, written ${NAME}")
        else:
            out[name] = text
    return out
