"""Every guarantee on every provider: the same small campaign, its crash points and its faults,
run over each simulator dialect with only ``api.provider`` changed.

The dialects are written from each provider's docs (``wanbatch/simulator/dialects``), the
adapters too (``wanbatch/providers``); these tests are where the two meet.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from test_resume import assert_whole_and_paid_once, finish, start_runner

from wanbatch import cli
from wanbatch.journal import read_journal
from wanbatch.manifest import load_manifest
from wanbatch.models import JobState
from wanbatch.providers import PROVIDERS
from wanbatch.simulator.dialects import dialect

from test_runner import out_dir, stats, videos, write_manifest

NAMES = sorted(PROVIDERS)
JOBS = Path(__file__).parent.parent / "jobs"


def test_every_provider_has_a_simulator_dialect_and_an_example() -> None:
    for name in NAMES:
        assert dialect(name).name == name
        assert (JOBS / f"{name}.yaml").exists()


def test_the_examples_are_one_campaign_apart_from_their_api_section() -> None:
    """jobs/<provider>.yaml hold the same jobs (ids, fields, so the same fingerprints): moving
    a campaign between providers is the `api` section alone."""
    loaded = {name: load_manifest(JOBS / f"{name}.yaml") for name in NAMES}
    assert {name: manifest.api.provider for name, manifest in loaded.items()} == {
        name: name for name in NAMES
    }
    jobs = {name: [(j.id, j.fingerprint()) for j in m.jobs] for name, m in loaded.items()}
    assert len(jobs["wanapi"]) == 6
    assert all(found == jobs["wanapi"] for found in jobs.values()), jobs


@pytest.mark.parametrize("provider", NAMES)
def test_each_example_renders_with_simulate(tmp_path: Path, provider: str) -> None:
    """`wanbatch run jobs/<provider>.yaml --simulate` on that provider's dialect: every video
    but the one the content filter refuses, which fails with the provider's own reason."""
    for name in (f"{provider}.yaml", "every-provider.csv"):
        text = (JOBS / name).read_text()
        (tmp_path / name).write_text(text.replace(f"../renders/every-provider-{provider}", "out"))
    assert cli.main(["run", str(tmp_path / f"{provider}.yaml"), "--simulate", "-q"]) == 1
    records = read_journal(tmp_path / "out").records
    failed = {job for job, record in records.items() if record.state is JobState.FAILED}
    assert failed == {"red-carpet"} and records["red-carpet"].reason
    assert len(list((tmp_path / "out").glob("*.mp4"))) == 5


@pytest.mark.parametrize("provider", NAMES)
def test_the_campaign_renders_and_a_rerun_sends_nothing(
    tmp_path: Path, make_sim: Any, run_cli: Any, provider: str
) -> None:
    """Six jobs in landscape and portrait (what every provider's Wan models take): every
    video whole, one task each; the rerun asks nothing of the API."""
    sim = make_sim(provider=provider)
    manifest = write_manifest(tmp_path, jobs=6, provider=provider)
    text = manifest.read_text().replace(
        "  duration: 5\n", "  duration: 5\nmatrix:\n  aspect_ratio: ['16:9', '9:16']\n"
    )
    manifest.write_text(text)
    assert run_cli("run", manifest, sim) == 0
    assert len(videos(manifest)) == 12
    assert stats(sim)["tasks_created"] == 12
    before = stats(sim)["requests_total"]
    assert run_cli("run", manifest, sim) == 0
    assert stats(sim)["requests_total"] == before


@pytest.mark.parametrize("provider", NAMES)
def test_server_errors_rate_limits_and_failures_are_ridden_out(
    tmp_path: Path, make_sim: Any, run_cli: Any, provider: str
) -> None:
    """5xx on a fifth of requests, a tight rate limit, one prompt the content filter blocks:
    every other video downloaded, no prompt paid twice, the failure reported with the
    provider's reason. A create answered 5xx may have made a task: where the API neither
    dedupes nor lists tasks, such a job is left for the user (exit 5, naming
    --resend-unknown), and ``--resend-unknown`` then finishes it."""
    sim = make_sim(
        provider=provider,
        error_rate=0.2,
        rate_limit_rps=8,
        rate_limit_burst=2,
        flagged_words=("celebrity",),
        seed=7,
    )
    manifest = write_manifest(tmp_path, jobs=8, provider=provider)
    text = manifest.read_text().replace(
        "prompt: a test prompt number 7", "prompt: a famous celebrity waving"
    )
    manifest.write_text(text)
    capabilities = PROVIDERS[provider].capabilities
    settles = capabilities.idempotency_keys or capabilities.list_tasks
    code = run_cli("run", manifest, sim)
    if not settles and code == 5:  # some 5xx met a create: left to the user, then sent
        assert run_cli("run", manifest, sim, "--resend-unknown") == 1
    else:
        assert code == 1
    records = read_journal(out_dir(manifest)).records
    assert records["job-7"].state is JobState.FAILED
    assert records["job-7"].reason
    assert sorted(videos(manifest)) == [f"job-{n}" for n in range(7)]
    made = stats(sim)["creates_by_prompt"]
    assert all(counts.get("accepted", 0) <= 1 for counts in made.values()), made
    assert stats(sim)["rate_limited_total"] > 0


@pytest.mark.parametrize("point", ["after_intent", "after_create", "after_created", "mid_download"])
@pytest.mark.parametrize("provider", NAMES)
def test_killed_at_a_crash_point_the_rerun_pays_once(
    tmp_path: Path, make_sim: Any, provider: str, point: str
) -> None:
    """Killed at each step where a task id could be lost, the rerun finishes every job with
    one task each. Where the API neither dedupes nor lists tasks (fal, a plain gateway), a
    create whose answer the kill lost is not sent again: the rerun finishes the rest, pays
    nothing twice, and names that job and --resend-unknown."""
    sim = make_sim(provider=provider, video_size=300_000)
    manifest = write_manifest(tmp_path, jobs=4, concurrency=2, downloads=1, provider=provider)
    code, _, err = finish(start_runner(manifest, sim, env={"WANBATCH_TEST_CRASH_AT": f"{point}:2"}))
    assert code == -signal.SIGKILL, err
    code, out, err = finish(start_runner(manifest, sim))
    capabilities = PROVIDERS[provider].capabilities
    if capabilities.idempotency_keys or capabilities.list_tasks or code == 0:
        assert code == 0, out + err
        assert_whole_and_paid_once(manifest, sim, 4)
        return
    assert code == 5, out + err
    records = read_journal(out_dir(manifest)).records
    unsettled = sorted(job for job, r in records.items() if r.state is JobState.SUBMITTING)
    assert unsettled and "--resend-unknown" in out + err, out + err
    assert len(videos(manifest)) == 4 - len(unsettled)
    assert stats(sim)["tasks_created"] <= 4  # nothing paid twice without being asked


def test_an_output_tree_is_not_resumed_on_another_provider(tmp_path: Path, capsys: Any) -> None:
    """The journal names its provider: the same tree run again for another provider is refused
    (exit 2) before anything is sent, naming both and the way out."""
    manifest = write_manifest(tmp_path, jobs=1, provider="wanapi")
    assert cli.main(["run", str(manifest), "--simulate", "-q"]) == 0
    manifest.write_text(manifest.read_text().replace("provider: wanapi", "provider: dashscope"))
    capsys.readouterr()
    assert cli.main(["run", str(manifest), "--simulate", "-q"]) == 2
    said = capsys.readouterr().err
    assert "'wanapi'" in said and "'dashscope'" in said and "api.provider: wanapi" in said


def test_wan_api_base_url_is_wanapis_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """`WAN_API_BASE_URL`, exported for wanapi, must not send another provider's key to
    wanapi's host: it applies to wanapi manifests only (found in review: a DashScope key went
    to api.wanapi.io)."""
    from wanbatch.settings import Flags, base_url

    monkeypatch.setenv("WAN_API_BASE_URL", "https://api.wanapi.io/v1")
    for name in NAMES:
        manifest = load_manifest(JOBS / f"{name}.yaml")
        url = base_url(Flags(manifest=str(JOBS / f"{name}.yaml")), os.environ, manifest)
        assert url is not None
        if name == "wanapi":
            assert url == "https://api.wanapi.io/v1"
        else:
            assert "wanapi.io" not in url, (name, url)


@pytest.mark.parametrize("provider", NAMES)
def test_a_lost_journal_and_video_are_recovered_from_the_sidecar(
    tmp_path: Path, make_sim: Any, run_cli: Any, provider: str
) -> None:
    """The journal deleted and a video with it: the sidecar's task (with what the provider
    handed out to find it again: fal's URLs) is polled for the video, never created anew
    (found in review: on fal the adopted task had no handle, failed, and retry paid again)."""
    sim = make_sim(provider=provider)
    manifest = write_manifest(tmp_path, jobs=2, provider=provider)
    assert run_cli("run", manifest, sim) == 0
    (out_dir(manifest) / ".wanbatch" / "journal.jsonl").unlink()
    (out_dir(manifest) / "job-1.mp4").unlink()
    assert run_cli("run", manifest, sim) == 0
    assert sorted(videos(manifest)) == ["job-0", "job-1"]
    assert stats(sim)["tasks_created"] == 2


def test_a_sidecar_from_another_provider_is_not_polled_here(
    tmp_path: Path, make_sim: Any, run_cli: Any
) -> None:
    """A sidecar written for wanapi names a task DashScope never heard of: with its video gone
    and the journal lost, the job is rendered on the provider the manifest now names, not
    polled there as if it were its task."""
    wanapi = make_sim(provider="wanapi")
    manifest = write_manifest(tmp_path, jobs=1, provider="wanapi")
    assert run_cli("run", manifest, wanapi) == 0
    (out_dir(manifest) / ".wanbatch" / "journal.jsonl").unlink()
    (out_dir(manifest) / "job-0.mp4").unlink()
    manifest.write_text(manifest.read_text().replace("provider: wanapi", "provider: dashscope"))
    dashscope = make_sim(provider="dashscope")
    assert run_cli("run", manifest, dashscope) == 0
    assert stats(dashscope)["tasks_created"] == 1
