"""Every manifest feature, YAML and CSV: defaults, matrix, jobs_from, extra, pricing, ids, paths."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from wanbatch.errors import ManifestError
from wanbatch.manifest import Overrides, load_manifest
from wanbatch.models import KNOWN_MODELS

ROOT = Path(__file__).resolve().parent.parent


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_example_campaign_uses_every_feature() -> None:
    """jobs/campaign.yaml loads: 13 jobs from a matrix, an image job, extra, jobs_from and pricing."""
    manifest = load_manifest(ROOT / "jobs" / "campaign.yaml")
    ids = [job.id for job in manifest.jobs]
    assert len(ids) == 13 and "forest-drone-9x16" in ids and "bakery" in ids
    spin = next(job for job in manifest.jobs if job.id == "product-spin-16x9")
    assert spin.image and spin.extra == {"seed": 42}
    assert manifest.estimate_credits() == 650.0
    assert manifest.output_dir == (ROOT / "renders" / "spring-campaign").resolve()


def test_defaults_are_inherited_and_a_jobs_own_fields_win(tmp_path: Path) -> None:
    """Jobs take the defaults; a field set on the job overrides its default."""
    path = write(
        tmp_path,
        "m.yaml",
        "defaults: {model: wan-2-1, duration: 8, aspect_ratio: '9:16'}\n"
        "jobs:\n  - {id: a, prompt: p}\n  - {id: b, prompt: q, duration: 3, model: wan-2-2}\n",
    )
    a, b = load_manifest(path).jobs
    assert (a.model, a.duration, a.aspect_ratio) == ("wan-2-1", 8, "9:16")
    assert (b.model, b.duration, b.aspect_ratio) == ("wan-2-2", 3, "9:16")


def test_the_provider_is_named_in_the_api_section(tmp_path: Path) -> None:
    """`api.provider` picks the API (wanapi when absent); an unknown one names the line, the
    key and the known providers, and nothing is built."""
    plain = load_manifest(write(tmp_path, "a.yaml", "jobs:\n  - prompt: p\n"))
    assert plain.api.provider == "wanapi"
    path = write(tmp_path, "b.yaml", "api:\n  provider: nope\njobs:\n  - prompt: p\n")
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    (problem,) = caught.value.problems
    assert (problem.key, problem.location) == ("api.provider", "2")
    assert "wanapi" in problem.message


def test_built_in_defaults_and_name_from_the_file(tmp_path: Path) -> None:
    """Without defaults: wan-2-2, 5 s, 16:9; the name is the file stem; output renders/<name>."""
    path = write(tmp_path, "spring.yaml", "jobs:\n  - prompt: p\n")
    manifest = load_manifest(path)
    job = manifest.jobs[0]
    assert (job.model, job.duration, job.aspect_ratio) == ("wan-2-2", 5, "16:9")
    assert manifest.name == "spring"
    assert manifest.output_dir == (tmp_path / "renders" / "spring").resolve()


def test_api_settings_and_extra_models(tmp_path: Path) -> None:
    """api.base_url, key_env and models are read; models extend the known list."""
    path = write(
        tmp_path,
        "m.yaml",
        "api: {base_url: 'https://gw.example/v1', key_env: MY_KEY, models: [wan-2-5-pro]}\n"
        "jobs:\n  - {prompt: p, model: wan-2-5-pro}\n",
    )
    manifest = load_manifest(path)
    assert manifest.api.base_url == "https://gw.example/v1" and manifest.api.key_env == "MY_KEY"
    assert set(KNOWN_MODELS) < set(manifest.api.models)
    assert manifest.jobs[0].model == "wan-2-5-pro"


def test_limits_and_pricing(tmp_path: Path) -> None:
    """Limits are read, including the job deadline; pricing gives credits per second."""
    path = write(
        tmp_path,
        "m.yaml",
        "limits: {concurrency: 3, requests_per_second: 1.5, downloads: 2, job_deadline_seconds: 60}\n"
        "pricing: {wan-2-2: 10, wan-2-1: 6}\n"
        "jobs:\n  - {prompt: p, duration: 4}\n  - {prompt: q, model: wan-2-1, duration: 5}\n",
    )
    manifest = load_manifest(path)
    limits = manifest.limits
    assert (limits.concurrency, limits.requests_per_second, limits.downloads) == (3, 1.5, 2)
    assert limits.job_deadline_seconds == 60
    assert manifest.estimate_credits() == 4 * 10 + 5 * 6
    assert manifest.total_seconds == 9


def test_no_pricing_means_no_estimate(tmp_path: Path) -> None:
    """Without pricing the credits estimate is unknown, not zero."""
    manifest = load_manifest(write(tmp_path, "m.yaml", "jobs:\n  - prompt: p\n"))
    assert manifest.estimate_credits() is None


def test_matrix_expands_with_readable_suffixes(tmp_path: Path) -> None:
    """A matrix gives the product; one suffix per axis with several values, model before ratio."""
    path = write(
        tmp_path,
        "m.yaml",
        "matrix: {aspect_ratio: ['16:9', '9:16'], model: [wan-2-2, wan-2-1], duration: [5]}\n"
        "jobs:\n  - {id: forest-drone, prompt: p}\n",
    )
    ids = sorted(job.id for job in load_manifest(path).jobs)
    assert ids == sorted(
        f"forest-drone-{model}-{ratio}"
        for ratio in ("16x9", "9x16")
        for model in ("wan-2-2", "wan-2-1")
    )


def test_a_job_that_sets_a_matrix_field_is_not_expanded_on_it(tmp_path: Path) -> None:
    """A job's own aspect_ratio pins that axis; other jobs still expand."""
    path = write(
        tmp_path,
        "m.yaml",
        "matrix: {aspect_ratio: ['16:9', '9:16']}\n"
        "jobs:\n  - {id: a, prompt: p, aspect_ratio: '1:1'}\n  - {id: b, prompt: q}\n",
    )
    assert [job.id for job in load_manifest(path).jobs] == ["a", "b-16x9", "b-9x16"]


def test_jobs_from_csv_and_yaml(tmp_path: Path) -> None:
    """jobs_from reads a CSV or a YAML list beside the manifest; inline jobs come first."""
    write(tmp_path, "more.csv", "id,prompt,duration\nc1,from csv,7\n")
    write(tmp_path, "more.yaml", "- {id: y1, prompt: from yaml}\n")
    first = write(tmp_path, "a.yaml", "jobs_from: more.csv\njobs:\n  - {id: inline, prompt: p}\n")
    second = write(tmp_path, "b.yaml", "jobs_from: more.yaml\n")
    jobs = load_manifest(first).jobs
    assert [job.id for job in jobs] == ["inline", "c1"] and jobs[1].duration == 7
    assert "more.csv row 2" in jobs[1].source
    assert [job.id for job in load_manifest(second).jobs] == ["y1"]


def test_extra_is_passed_through_and_merged_with_defaults(tmp_path: Path) -> None:
    """extra from defaults and from the job merge; the job's keys win."""
    path = write(
        tmp_path,
        "m.yaml",
        "defaults: {extra: {seed: 1, negative_prompt: blur}}\n"
        "jobs:\n  - {prompt: p, extra: {seed: 42}}\n",
    )
    assert load_manifest(path).jobs[0].extra == {"seed": 42, "negative_prompt": "blur"}


def test_output_paths_fields_and_subfolders(tmp_path: Path) -> None:
    """The template may use every field and make subfolders; ':' becomes 'x'."""
    path = write(
        tmp_path,
        "m.yaml",
        "name: camp\noutput: {dir: out, path: '{name}/{model}/{aspect_ratio}/{index:03d}-{id}-{duration}s.mp4'}\n"
        "jobs:\n  - {id: a, prompt: p, aspect_ratio: '9:16'}\n",
    )
    manifest = load_manifest(path)
    assert manifest.jobs[0].output_path == "camp/wan-2-2/9x16/000-a-5s.mp4"
    assert manifest.output_dir == (tmp_path / "out").resolve()


def test_two_jobs_may_not_share_an_output_path(tmp_path: Path) -> None:
    """A template that maps two jobs to one file is refused."""
    path = write(
        tmp_path,
        "m.yaml",
        "output: {path: '{model}-{id}.mp4'}\njobs:\n  - {id: a-b, prompt: p}\n  - {id: b, prompt: q}\n",
    )
    assert load_manifest(path).jobs[1].output_path == "wan-2-2-b.mp4"
    clash = write(
        tmp_path,
        "n.yaml",
        "output: {path: 'x{id}.mp4'}\njobs:\n  - {id: a, prompt: p}\n  - {id: xa, prompt: q}\n",
    )
    assert {job.output_path for job in load_manifest(clash).jobs} == {"xa.mp4", "xxa.mp4"}


def test_overrides_from_flags(tmp_path: Path) -> None:
    """Flags beat the manifest's defaults and limits; a job's own field still wins."""
    path = write(
        tmp_path,
        "m.yaml",
        "defaults: {model: wan-2-2}\nlimits: {concurrency: 8}\n"
        "jobs:\n  - {id: a, prompt: p}\n  - {id: b, prompt: q, model: wan-2-2, duration: 3}\n",
    )
    overrides = Overrides(
        model="wan-2-1",
        duration=9,
        concurrency=2,
        requests_per_second=7.0,
        output_dir=str(tmp_path / "o"),
    )
    manifest = load_manifest(path, overrides)
    a, b = manifest.jobs
    assert (a.model, a.duration) == ("wan-2-1", 9)
    assert (b.model, b.duration) == ("wan-2-2", 3)
    assert (manifest.limits.concurrency, manifest.limits.requests_per_second) == (2, 7.0)
    assert manifest.output_dir == (tmp_path / "o").resolve()


def test_bare_csv_takes_defaults_from_flags(tmp_path: Path) -> None:
    """A CSV manifest with only prompts uses --model/--duration/--aspect-ratio."""
    path = write(tmp_path, "p.csv", "prompt\nfirst prompt\nsecond prompt\n")
    manifest = load_manifest(path, Overrides(model="wan-2-1", duration=8, aspect_ratio="1:1"))
    assert [(j.model, j.duration, j.aspect_ratio) for j in manifest.jobs] == [
        ("wan-2-1", 8, "1:1")
    ] * 2
    assert manifest.name == "p"


def test_csv_optional_columns_and_blank_lines(tmp_path: Path) -> None:
    """CSV columns id/model/duration/aspect_ratio/image are read; blank lines are skipped."""
    path = write(
        tmp_path,
        "p.csv",
        "id,prompt,model,duration,aspect_ratio,image\n"
        "x,first,wan-2-1,6,9:16,https://e.com/a.png\n\n,second,,,,\n",
    )
    first, second = load_manifest(path).jobs
    assert (first.id, first.model, first.duration, first.aspect_ratio) == (
        "x",
        "wan-2-1",
        6,
        "9:16",
    )
    assert first.image == "https://e.com/a.png" and second.image is None
    assert "p.csv row 4" in second.source


DERIVED = re.compile(r"^[a-z0-9-]+-[0-9a-f]{12}$")


def test_derived_ids_are_stable_across_loads_folders_and_key_order(tmp_path: Path) -> None:
    """Ids come from content: same across loads, folders and reordered YAML keys."""
    text = "jobs:\n  - prompt: A Drone shot over the misty forest at sunrise!\n    duration: 6\n    model: wan-2-1\n"
    reordered = "jobs:\n  - model: wan-2-1\n    duration: 6\n    prompt: A Drone shot over the misty forest at sunrise!\n"
    first = load_manifest(write(tmp_path, "a.yaml", text)).jobs[0].id
    assert first == load_manifest(write(tmp_path, "a.yaml", text)).jobs[0].id
    other = tmp_path / "elsewhere"
    other.mkdir()
    shutil.copy(tmp_path / "a.yaml", other / "a.yaml")
    assert load_manifest(other / "a.yaml").jobs[0].id == first
    assert load_manifest(write(tmp_path, "b.yaml", reordered)).jobs[0].id == first
    assert DERIVED.match(first) and first.startswith("a-drone-shot-over-the-misty-")


def test_derived_ids_change_with_the_content(tmp_path: Path) -> None:
    """Changing any rendering field gives a new derived id (a new job, not a silent reuse)."""
    base = load_manifest(write(tmp_path, "a.yaml", "jobs:\n  - prompt: p\n")).jobs[0]
    longer = load_manifest(write(tmp_path, "b.yaml", "jobs:\n  - {prompt: p, duration: 6}\n")).jobs[
        0
    ]
    assert base.id != longer.id and base.fingerprint() != longer.fingerprint()


def test_index_follows_the_expanded_order(tmp_path: Path) -> None:
    """index counts the expanded jobs from 0 in manifest order."""
    path = write(
        tmp_path,
        "m.yaml",
        "matrix: {duration: [5, 8]}\njobs:\n  - {id: a, prompt: p}\n  - {id: b, prompt: q}\n",
    )
    assert [(j.id, j.index) for j in load_manifest(path).jobs] == [
        ("a-5s", 0),
        ("a-8s", 1),
        ("b-5s", 2),
        ("b-8s", 3),
    ]


def test_manifest_error_lists_problems_as_values(tmp_path: Path) -> None:
    """ManifestError carries each problem with file, location and key."""
    path = write(tmp_path, "m.yaml", "jobs:\n  - {prompt: p, duration: 0}\n")
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    (problem,) = caught.value.problems
    assert (problem.location, problem.key) == ("2", "jobs[0].duration")


def test_a_manifest_round_trips_through_yaml(tmp_path: Path) -> None:
    """A manifest written by yaml.safe_dump loads to the same jobs."""
    data = {"name": "r", "jobs": [{"id": "a", "prompt": "p", "extra": {"seed": 3}}]}
    manifest = load_manifest(write(tmp_path, "r.yaml", yaml.safe_dump(data)))
    assert manifest.jobs[0].extra == {"seed": 3}


def test_derived_ids_do_not_collide_at_scale(tmp_path: Path) -> None:
    """20,000 prompts that share their first words still get distinct derived ids."""
    rows = "".join(f"a cinematic shot of the scene number {i}\n" for i in range(20_000))
    manifest = load_manifest(write(tmp_path, "big.csv", "prompt\n" + rows))
    assert len({job.id for job in manifest.jobs}) == 20_000
