"""The settings builder: flag > environment > manifest > default, decided in one place.

A table of cases over ``settings.build_settings`` (pure: the environment is a dict), then the
run itself: a flag's limit reaches the run without changing the manifest (and so retry.yaml).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from wanbatch.backoff import PollPolicy
from wanbatch.errors import UsageError
from wanbatch.journal import read_journal
from wanbatch.manifest import load_manifest
from wanbatch.models import DEFAULT_JOB_DEADLINE_SECONDS
from wanbatch.outage import MAX_OUTAGE_SECONDS
from wanbatch.settings import (
    CONFIRM_CREDITS,
    CONFIRM_ENV,
    PROGRESS_EVERY_SECONDS,
    Flags,
    api_key,
    build_settings,
    overrides,
)

from test_runner import out_dir, write_manifest

WANAPI_DEFAULT = "https://api.wanapi.io/v1"


def manifest_at(tmp_path: Path, *, base_url: str | None = None, provider: str = "wanapi") -> Any:
    path = write_manifest(tmp_path, jobs=1, concurrency=3, provider=provider)
    if base_url is not None:
        path.write_text(path.read_text().replace("api:\n", f"api:\n  base_url: {base_url}\n"))
    return load_manifest(path, overrides(Flags(manifest=str(path))))


@pytest.mark.parametrize(
    ("flag", "env", "in_manifest", "expected"),
    [
        ("http://flag/v1", "http://env/v1", "http://file/v1", "http://flag/v1"),
        (None, "http://env/v1", "http://file/v1", "http://env/v1"),
        (None, None, "http://file/v1", "http://file/v1"),
        (None, None, None, WANAPI_DEFAULT),
    ],
)
def test_the_base_url_is_flag_then_environment_then_manifest_then_default(
    tmp_path: Path, flag: str | None, env: str | None, in_manifest: str | None, expected: str
) -> None:
    manifest = manifest_at(tmp_path, base_url=in_manifest)
    environ = {"WAN_API_BASE_URL": env} if env else {}
    built = build_settings(Flags(manifest="m", base_url=flag), environ, manifest)
    assert built.base_url == expected


def test_the_wanapi_variable_never_points_another_provider_at_wanapi(tmp_path: Path) -> None:
    manifest = manifest_at(tmp_path, provider="replicate")
    built = build_settings(Flags(manifest="m"), {"WAN_API_BASE_URL": "http://env/v1"}, manifest)
    assert built.base_url is not None and "env" not in built.base_url


def test_limits_are_flag_then_manifest_then_default(tmp_path: Path) -> None:
    manifest = manifest_at(tmp_path)  # concurrency 3, rps 200; no job deadline: the default
    plain = build_settings(Flags(manifest="m"), {}, manifest)
    assert (plain.limits.concurrency, plain.limits.requests_per_second) == (3, 200)
    assert plain.limits.job_deadline_seconds == DEFAULT_JOB_DEADLINE_SECONDS
    flagged = build_settings(
        Flags(manifest="m", concurrency=9, requests_per_second=2.5, job_deadline=60.0),
        {},
        manifest,
    )
    assert flagged.limits.concurrency == 9
    assert flagged.limits.requests_per_second == 2.5
    assert flagged.limits.job_deadline_seconds == 60.0
    assert manifest.limits.concurrency == 3  # the manifest is what the file says, untouched


def test_defaults_when_nothing_is_said(tmp_path: Path) -> None:
    built = build_settings(Flags(manifest="m"), {}, manifest_at(tmp_path))
    assert built.max_outage == MAX_OUTAGE_SECONDS
    assert built.progress_every == PROGRESS_EVERY_SECONDS
    assert built.poll is None  # planned
    assert built.notices is None
    assert built.confirm_credits == CONFIRM_CREDITS


def test_a_poll_interval_is_that_interval(tmp_path: Path) -> None:
    built = build_settings(Flags(manifest="m", poll_interval=4.0), {}, manifest_at(tmp_path))
    assert built.poll == PollPolicy(initial_seconds=4.0, factor=1.0, cap_seconds=4.0)


def test_the_confirmation_threshold_comes_from_the_environment(tmp_path: Path) -> None:
    manifest = manifest_at(tmp_path)
    assert build_settings(Flags(manifest="m"), {CONFIRM_ENV: "50"}, manifest).confirm_credits == 50
    with pytest.raises(UsageError, match=CONFIRM_ENV):
        build_settings(Flags(manifest="m"), {CONFIRM_ENV: "lots"}, manifest)


def test_notices_need_both_flags_and_the_secret_stays_out_of_the_repr(tmp_path: Path) -> None:
    manifest = manifest_at(tmp_path, provider="replicate")
    with pytest.raises(UsageError, match="both"):
        build_settings(Flags(manifest="m", listen="127.0.0.1:0"), {}, manifest)
    with pytest.raises(UsageError, match="SECRET_VAR"):
        flags = Flags(
            manifest="m",
            notify_url="https://me/hook",
            listen="127.0.0.1:0",
            notify_secret_env="SECRET_VAR",
        )
        build_settings(flags, {}, manifest)
    built = build_settings(flags, {"SECRET_VAR": "whsec_c2VjcmV0LXZhbHVl"}, manifest)
    assert built.notices is not None and built.notices.secret == "whsec_c2VjcmV0LXZhbHVl"
    assert "whsec_" not in repr(built)


def test_the_key_is_read_only_from_the_variable_the_manifest_names(tmp_path: Path) -> None:
    manifest = manifest_at(tmp_path)
    name = manifest.api.key_env
    assert api_key(manifest, {name: " sk-abc "}) == "sk-abc"
    with pytest.raises(UsageError, match=name):
        api_key(manifest, {})
    with pytest.raises(UsageError) as caught:
        api_key(manifest, {name: "sk-\u00e9t\u00e9"})
    assert "\u00e9" not in str(caught.value)  # never echoed


def test_a_concurrency_flag_reaches_the_run_and_not_retry_yaml(
    tmp_path: Path, make_sim: Any, run_cli: Any
) -> None:
    """--concurrency 1 holds one task in flight at a time (no two renders overlap in the
    journal's times); retry.yaml keeps the file's 3, which the flag did not change."""
    sim = make_sim(flagged_words=("0",))
    manifest = write_manifest(tmp_path, jobs=4, concurrency=3)
    assert run_cli("run", manifest, sim, "--concurrency", "1") == 1
    records = read_journal(out_dir(manifest)).records.values()
    spans = sorted((r.submitted_at or 0.0, r.finished_at or 0.0) for r in records)
    assert len(spans) == 4 and all(start and end for start, end in spans)
    assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:], strict=False))
    retry = (out_dir(manifest) / "retry.yaml").read_text()
    assert "concurrency: 3" in retry
