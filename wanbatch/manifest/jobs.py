"""Jobs: one raw job (a YAML mapping or a CSV row) checked and expanded over the matrix, with
its id and fingerprint. Pure.

Job ids: a job's ``id`` if given; otherwise a slug of the prompt's first words plus ``-`` and
the first 12 hex digits of the sha256 of the job's normalised fields (model, prompt, duration,
aspect_ratio, image, extra), so the same manifest yields the same ids everywhere. The slug keeps
accented letters as ASCII (``über café`` -> ``uber-cafe``: NFKD, marks dropped); a prompt of
plain ASCII gets the slug it always had. A matrix appends one readable suffix per axis that has
more than one value: ``-9x16``, ``-wan-2-1``, ``-8s``.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from wanbatch.manifest.csvread import CsvRow
from wanbatch.manifest.gateway import RATIO_RE
from wanbatch.manifest.problems import (
    Problems,
    check_keys,
    did_you_mean,
    kind,
    positive_int,
    ratio_hint,
)
from wanbatch.manifest.schema import job_fields, keys
from wanbatch.manifest.sections import ID_RE
from wanbatch.models import MAX_DURATION, MAX_JOB_ID_LENGTH, job_fingerprint

JOB_FIELDS = job_fields()
JOB_KEYS = keys("jobs[]")
_IMAGE_RE = re.compile(r"^https?://[^/\s]+\S*\Z")
_SLUG_WORD_RE = re.compile(r"[a-z0-9]+")
_SLUG_WORDS = 6
_SLUG_CHARS = 40
_ID_HASH_DIGITS = 12


# A job as _expand gives it: id, prompt, model, duration, aspect_ratio, image, extra, fingerprint.
Draft = tuple[str, str, str, int, str, str | None, Mapping[str, Any], str]
_NO_EXTRA: Mapping[str, Any] = MappingProxyType({})  # one empty mapping for every job without


def expand(
    entry: Any,
    key: str,
    base: dict[str, Any],
    matrix: dict[str, list[Any]],
    models: tuple[str, ...],
    problems: Problems,
    checked: Checked,
) -> list[Draft]:
    """One raw job -> its validated jobs, one per matrix combination."""
    if isinstance(entry, CsvRow):
        entry = entry.mapping()  # its keys are known columns: nothing for _check_keys
    elif not isinstance(entry, dict):
        problems.add(key, f"a job must be a mapping with at least `prompt:`, not {kind(entry)}")
        return []
    else:
        check_keys(entry, JOB_KEYS, key, problems)
    fields = dict(base)
    if isinstance(base.get("extra"), dict) and isinstance(entry.get("extra"), dict):
        fields["extra"] = {**base["extra"], **entry["extra"]}
        entry = {k: v for k, v in entry.items() if k != "extra"}
    fields.update({k: v for k, v in entry.items() if k in JOB_FIELDS})
    if "prompt" not in fields:
        problems.add(f"{key}.prompt", "every job needs a prompt")
        return []
    axes = [(axis, values) for axis, values in matrix.items() if axis not in entry]
    given_id = entry.get("id")
    if given_id is not None:
        given_id = check_id(given_id, f"{key}.id", problems)
        if given_id is None:
            return []
    if not axes:  # most jobs: no matrix to expand
        draft = _validate_job(fields, key, models, problems, checked)
        if draft is None:
            return []
        return _named(draft, given_id, [], key, problems)
    drafts: list[Draft] = []
    for combo in itertools.product(*[values for _, values in axes]):
        chosen = dict(fields)
        suffix_parts = []
        for (axis, values), value in zip(axes, combo, strict=True):
            chosen[axis] = value
            if len(values) > 1:
                suffix_parts.append(_suffix(axis, value))
        draft = _validate_job(chosen, key, models, problems, checked)
        if draft is not None:
            drafts += _named(draft, given_id, suffix_parts, key, problems)
    return drafts


def _named(
    draft: Draft, given_id: str | None, suffix_parts: list[str], key: str, problems: Problems
) -> list[Draft]:
    """``draft`` with its id (given, else derived), or nothing when that id is not one."""
    if not given_id and not suffix_parts:  # a slug and hex digits: always an id (ID_RE)
        return [(_derived_id(draft[1], draft[7]), *draft[1:])]
    base_id = given_id or _derived_id(draft[1], draft[7])
    job_id = "-".join([base_id, *suffix_parts]) if suffix_parts else base_id
    if check_id(job_id, f"{key}.id", problems) is None:
        return []
    return [(job_id, *draft[1:])]


def claimed_id(entry: Any, matrix: dict[str, list[Any]]) -> str | None:
    """The id a job that was refused still claims: its own, where no matrix axis adds to it, so
    that a second job with that id is reported in the same pass."""
    if not isinstance(entry, dict) or any(
        axis not in entry and len(values) > 1 for axis, values in matrix.items()
    ):
        return None
    given = entry.get("id")
    if isinstance(given, bool) or not isinstance(given, str | int):
        return None
    text = str(given)
    return text if len(text) <= MAX_JOB_ID_LENGTH and ID_RE.match(text) else None


# (model, duration, aspect_ratio as written) found good -> the aspect ratio stripped
Checked = dict[tuple[str, int, str], str]


def _validate_job(
    fields: dict[str, Any],
    key: str,
    models: tuple[str, ...],
    problems: Problems,
    checked: Checked,
) -> Draft | None:
    """The job's fields checked (its id not yet given: ""), with their fingerprint. A model,
    duration and aspect ratio found good together once (``checked``) are not checked again."""
    prompt, model = fields.get("prompt"), fields.get("model")
    duration, ratio = fields.get("duration"), fields.get("aspect_ratio")
    image, extra = fields.get("image"), fields.get("extra", _NO_EXTRA)
    if (
        type(prompt) is str
        and type(model) is str
        and type(duration) is int
        and type(ratio) is str
        and (image is None or (type(image) is str and _IMAGE_RE.match(image)))
        and (extra is _NO_EXTRA or (type(extra) is dict and all(type(k) is str for k in extra)))
        and prompt.strip()
    ):
        stripped = checked.get((model, duration, ratio))
        if stripped is not None:
            extra = extra or _NO_EXTRA
            try:
                found = job_fingerprint(prompt, model, duration, stripped, image, extra)
            except TypeError:  # reported by _check_job
                pass
            else:
                return ("", prompt, model, duration, stripped, image, extra, found)
    draft = _check_job(fields, key, models, problems)
    exact = type(model) is str and type(duration) is int and type(ratio) is str
    if draft is not None and exact and len(checked) < 10_000:
        checked[(model, duration, ratio)] = draft[4]  # type: ignore[index]
    return draft


def _check_job(
    fields: dict[str, Any], key: str, models: tuple[str, ...], problems: Problems
) -> Draft | None:
    before = len(problems.found)
    prompt = fields.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        problems.add(f"{key}.prompt", "must be non-empty text")
    model = fields.get("model")
    if not isinstance(model, str) or model not in models:
        problems.add(f"{key}.model", f"unknown model {model!r}{did_you_mean(str(model), models)}")
    duration = positive_int(
        fields.get("duration"), f"{key}.duration", problems, maximum=MAX_DURATION
    )
    ratio = fields.get("aspect_ratio")
    if not isinstance(ratio, str) or not RATIO_RE.match(ratio.strip()):
        problems.add(
            f"{key}.aspect_ratio", f"must be W:H such as 16:9, not {ratio!r}{ratio_hint(ratio)}"
        )
    image = fields.get("image")
    if image is not None and (not isinstance(image, str) or not _IMAGE_RE.match(image)):
        problems.add(f"{key}.image", "must be an http(s) URL of the first frame")
    extra = fields.get("extra", _NO_EXTRA)
    if not isinstance(extra, dict | MappingProxyType) or not all(isinstance(k, str) for k in extra):
        problems.add(f"{key}.extra", "must be a mapping of request fields")
        extra = _NO_EXTRA
    if len(problems.found) != before or duration is None:
        return None
    assert isinstance(prompt, str) and isinstance(model, str) and isinstance(ratio, str)
    ratio = ratio.strip()
    extra = extra or _NO_EXTRA
    try:
        fingerprint = job_fingerprint(prompt, model, duration, ratio, image, extra)
    except TypeError:  # a nested mapping with keys of two kinds: JSON cannot sort them
        problems.add(f"{key}.extra", "has a mapping whose keys mix text and numbers: quote them")
        return None
    return ("", prompt, model, duration, ratio, image, extra, fingerprint)


def check_id(value: Any, key: str, problems: Problems) -> str | None:
    if not isinstance(value, str | int) or isinstance(value, bool):
        problems.add(key, f"must be text, not {kind(value)}")
        return None
    text = str(value)
    if len(text) > MAX_JOB_ID_LENGTH:
        problems.add(key, f"is {len(text)} characters; ids are at most {MAX_JOB_ID_LENGTH}")
        return None
    if not ID_RE.match(text):
        problems.add(
            key,
            f"{text!r}: ids use only letters, digits, '.', '_' and '-', and do not start with '.'",
        )
        return None
    return text


def _slug(prompt: str) -> str:
    if not prompt.isascii():  # letters with marks kept as their ASCII letter: ü -> u
        decomposed = unicodedata.normalize("NFKD", prompt)
        prompt = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    words = _SLUG_WORD_RE.findall(prompt.lower())[:_SLUG_WORDS]
    slug = "-".join(words)[:_SLUG_CHARS].strip("-")
    return slug or "job"


def _derived_id(prompt: str, fingerprint: str) -> str:
    # 48 bits: 100,000 prompts that share their first words collide with odds of about 1 in 50,000.
    return f"{_slug(prompt)}-{fingerprint[:_ID_HASH_DIGITS]}"


def _suffix(axis: str, value: Any) -> str:
    text = str(value)
    if axis == "aspect_ratio":
        return text.replace(":", "x")
    if axis == "duration":
        return f"{text}s"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text)
