"""The failed jobs of a run as a manifest (``<output>/retry.yaml``) that renders them again. Pure.

``retry_manifest`` writes a YAML manifest that renders exactly the failed jobs again, with the same
ids, fields and output paths. It is the one writer of manifests, beside their reader (the gallery
and the commands use it from here).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import yaml

from wanbatch.manifest.paths import fill, fixed_template
from wanbatch.models import (
    DEFAULT_PROVIDER,
    KNOWN_MODELS,
    JobRecord,
    JobSpec,
    JobState,
    Limits,
    Manifest,
)
from wanbatch.providers.gateway import as_manifest
from wanbatch.words import count

RETRY_NAME = "retry.yaml"
_REASON_COMMENT_CHARS = 300


def retry_manifest(
    manifest: Manifest,
    records: Mapping[str, JobRecord],
    rendered: Mapping[str, JobSpec | None] | None = None,
) -> str | None:
    """A YAML manifest that renders exactly the failed jobs again, or None if none failed.

    A job is written with the fields its failed task was asked for (``rendered``, as for the
    gallery), so that an edit made in an earlier retry.yaml is not lost.

    It is meant to be saved in the output dir (as ``retry.yaml``): its ``output.dir`` is ``.``,
    so every video lands where the original run would have put it, and it shares the original
    run's journal there. Ids, prompts and fields are written out in full (no defaults, no matrix),
    so the loader gives back the same jobs; api, pricing and limits are kept.
    """
    asked = rendered or {}
    failed = [
        asked.get(spec.id) or spec
        for spec in manifest.jobs
        if (record := records.get(spec.id)) is not None and record.state is JobState.FAILED
    ]
    if not failed:
        return None
    template = fixed_template(manifest.path_template, manifest.name)
    moved = [
        spec for index, spec in enumerate(failed) if fill(template, spec, index) != spec.output_path
    ]
    head: dict[str, Any] = {"name": _retry_name(manifest.name)}
    api: dict[str, Any] = {}
    if manifest.api.provider != DEFAULT_PROVIDER:
        api["provider"] = manifest.api.provider
    if manifest.api.gateway is not None and (gateway := as_manifest(manifest.api.gateway)):
        api["gateway"] = gateway
    if manifest.api.base_url is not None:
        api["base_url"] = manifest.api.base_url
    api["key_env"] = manifest.api.key_env
    if tuple(manifest.api.models) != KNOWN_MODELS:
        api["models"] = list(manifest.api.models)
    head["api"] = api
    if manifest.pricing:
        head["pricing"] = {model: _plain(price) for model, price in manifest.pricing.items()}
    head["limits"] = _limits(manifest.limits)
    head["output"] = {"dir": ".", "path": template}
    comment = [
        f"# Retry manifest: the {count(len(failed), 'failed job')} of '{_one_line(manifest.name)}'",
        f"# (from {_one_line(str(manifest.path))}), written by wanbatch.",
        "# It lives in the output dir and shares that run's journal, where these jobs are",
        "# recorded as failed: resubmit them with `wanbatch retry retry.yaml`.",
    ]
    if moved:
        comment += [
            f"# Note: the path template {_one_line(manifest.path_template)!r} uses {{index}}, so",
            f"# {count(len(moved), 'job')} will be written to a new path, not where they were planned.",
        ]
    text = "\n".join(comment) + "\n"
    text += yaml.safe_dump(head, sort_keys=False, allow_unicode=True, width=1000)
    text += "jobs:\n"
    for spec in failed:
        record = records[spec.id]
        reason = record.reason or "no reason given"
        if record.code:
            reason += f" [{record.code}]"
        text += f"  # {_one_line(spec.id)} failed: {_one_line(reason)}\n"
        job = yaml.safe_dump([_job(spec)], sort_keys=False, allow_unicode=True, width=1000)
        text += "".join(f"  {line}\n" for line in job.splitlines())
    return text


def _retry_name(name: str) -> str:
    suffix = "-retry"
    return name[: 100 - len(suffix)] + suffix


def _plain(value: float) -> int | float:
    return int(value) if math.isfinite(value) and value == int(value) else value


def _limits(limits: Limits) -> dict[str, int | float]:
    written: dict[str, int | float] = {"concurrency": limits.concurrency}
    if limits.requests_per_second is not None:  # unset: the run finds the server's rate
        written["requests_per_second"] = _plain(limits.requests_per_second)
    written["downloads"] = limits.downloads
    written["job_deadline_seconds"] = _plain(limits.job_deadline_seconds)
    return written


def _job(spec: JobSpec) -> dict[str, Any]:
    fields = spec.fields()  # the rendering fields, as the fingerprint sees them
    return {"id": spec.id, "prompt": fields.pop("prompt"), **fields}


def _one_line(text: str) -> str:
    """``text`` made safe for a YAML comment: printable characters on one line, cut short."""
    cleaned = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    if len(cleaned) > _REASON_COMMENT_CHARS:
        cleaned = cleaned[: _REASON_COMMENT_CHARS - 3] + "..."
    return cleaned
