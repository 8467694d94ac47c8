"""The raw-httpx baselines, run as their own process so their CPU and memory are their own.

    python benchmarks/rawclient.py api BASE_URL KEY JOBS CONCURRENCY
        JOBS x (POST create, GET status until done, GET the video) with one httpx.AsyncClient
        for the API and one for the CDN, CONCURRENCY at a time; nothing journaled, nothing
        fsynced. Prints one JSON line: seconds, requests, requests/s, CPU, peak RSS.

    python benchmarks/rawclient.py download FOLDER CONCURRENCY URL...
        Streams each URL into FOLDER/<n>.mp4 in 64 KiB chunks, CONCURRENCY at a time, with no
        hashing and no fsync: the floor of what a download costs with httpx.

    python benchmarks/rawclient.py download-safe FOLDER CONCURRENCY URL...
        The same, plus what wanbatch must do to keep a video: sha256 as the bytes arrive and an
        fsync of the file (blocking, in a worker thread) before the next one; no journal, no
        aiofiles, no sidecar. It splits the gap between wanbatch and the floor.

Every URL is a simulator's on 127.0.0.1; every loop is bounded by the job or URL count.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import sys
import time
from pathlib import Path

import anyio
import httpx
from common import high_water_kb

_CHUNK = 1 << 16
_MAX_POLLS = 1000  # a render that is still going after this many polls is a broken benchmark


def _usage() -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "peak_rss_mb": round(high_water_kb() / 1024, 1),
    }


async def api_loop(base_url: str, key: str, jobs: int, concurrency: int) -> dict[str, float]:
    assert base_url.startswith("http://127.0.0.1:"), base_url
    counts = {"requests": 0}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    queue = iter(range(jobs))
    async with (
        httpx.AsyncClient(
            base_url=base_url + "/",
            headers={"Authorization": f"Bearer {key}"},
            limits=limits,
            timeout=60,
            trust_env=False,
        ) as api,
        httpx.AsyncClient(limits=limits, timeout=60, trust_env=False) as cdn,
    ):

        async def worker() -> None:
            for index in queue:
                body = {"model": "wan-2-2", "prompt": f"raw clip {index}", "duration": 5}
                task = (await api.post("video/generations", json=body)).json()
                counts["requests"] += 1
                for _ in range(_MAX_POLLS):
                    view = (await api.get(f"video/generations/{task['id']}")).json()
                    counts["requests"] += 1
                    if view["status"] in ("succeeded", "failed"):
                        break
                else:
                    raise RuntimeError(f"task {task['id']} never finished")
                async with cdn.stream("GET", view["video_url"]) as response:
                    async for _ in response.aiter_bytes(_CHUNK):
                        pass
                counts["requests"] += 1

        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for _ in range(concurrency):
                group.start_soon(worker)
        seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 3),
        "jobs": jobs,
        "requests": counts["requests"],
        "requests_per_s": round(counts["requests"] / seconds, 1),
        **_usage(),
    }


async def download_loop(
    folder: Path, concurrency: int, urls: list[str], *, safe: bool = False
) -> dict[str, float]:
    queue = iter(enumerate(urls))
    total = {"bytes": 0}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=120, trust_env=False) as client:

        async def worker() -> None:
            for index, url in queue:
                assert url.startswith("http://127.0.0.1:"), url
                async with client.stream("GET", url) as response:
                    response.raise_for_status()
                    path = folder / f"{index}.mp4"
                    hasher = hashlib.sha256()
                    with open(path, "wb") as out:  # noqa: ASYNC230  (raw baseline: plain blocking writes)
                        async for chunk in response.aiter_bytes(_CHUNK):
                            out.write(chunk)
                            if safe:
                                hasher.update(chunk)
                            total["bytes"] += len(chunk)
                        if safe:
                            out.flush()
                            await anyio.to_thread.run_sync(os.fsync, out.fileno())

        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for _ in range(concurrency):
                group.start_soon(worker)
        seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 3),
        "bytes": total["bytes"],
        "mib_per_s": round(total["bytes"] / 2**20 / seconds, 1),
        **_usage(),
    }


def main(argv: list[str]) -> int:
    mode, *rest = argv
    if mode == "api":
        base_url, key, jobs, concurrency = rest
        result = anyio.run(api_loop, base_url, key, int(jobs), int(concurrency))
    elif mode in ("download", "download-safe"):
        folder, concurrency, *urls = rest
        result = anyio.run(
            lambda: download_loop(
                Path(folder), int(concurrency), urls, safe=mode == "download-safe"
            )
        )
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
