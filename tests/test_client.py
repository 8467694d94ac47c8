"""The wire adapter against a hostile server: every bad answer becomes a wanbatch error."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import anyio
import pytest

from wanbatch.client import WanApi, check_base_url, normalise_status
from wanbatch.errors import (
    AuthError,
    CreditsExhaustedError,
    InsecureURLError,
    JobRejectedError,
    RateLimitedError,
    TransientApiError,
)
from wanbatch.models import JobSpec, TaskStatus

from hostile import Answer, http_response, json_response, serve

KEY = "sk-wan-hostile-test-0123456789"
JOB = JobSpec(id="j", prompt="p", model="wan-2-2", duration=5, aspect_ratio="16:9")


def call(raw: bytes, *, poll: bool = False, stall: float = 0.0, timeout: float = 5.0) -> Any:
    """Send one create (or poll) to a server that answers ``raw``; return the result or raise."""
    with serve(lambda method, path, headers: Answer(raw, stall)) as server:

        async def go() -> Any:
            async with WanApi(server.base_url, KEY, timeout_seconds=timeout) as api:
                if poll:
                    return await api.get("gen_1")
                return await api.create(JOB, "idem-1")

        try:
            return anyio.run(go)
        finally:
            call.requests = server.requests  # type: ignore[attr-defined]


def test_create_sends_the_documented_request() -> None:
    """The body has the documented fields; the key and Idempotency-Key travel as headers."""
    view = call(json_response(200, '{"id": "gen_1", "status": "queued"}'))
    assert view.task_id == "gen_1" and view.status is TaskStatus.PENDING
    method, path, headers = call.requests[0]  # type: ignore[attr-defined]
    assert (method, path) == ("POST", "/v1/video/generations")
    assert headers["authorization"] == f"Bearer {KEY}"
    assert headers["idempotency-key"] == "idem-1"


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, JobRejectedError),
        (401, AuthError),
        (402, CreditsExhaustedError),
        (429, RateLimitedError),
        (500, TransientApiError),
        (503, TransientApiError),
    ],
)
def test_status_codes_map_to_errors(status: int, error: type[Exception]) -> None:
    """Each documented status becomes its wanbatch error with the server's message."""
    body = '{"error": {"message": "nope: field prompt", "type": "x", "code": "c1"}}'
    with pytest.raises(error) as caught:
        call(json_response(status, body, {"x-request-id": "req-9"}))
    assert "nope: field prompt" in str(caught.value)
    assert caught.value.status == status and caught.value.request_id == "req-9"  # type: ignore[attr-defined]


def test_retry_after_in_both_forms() -> None:
    """A 429's Retry-After is read as seconds or as an HTTP-date."""
    with pytest.raises(RateLimitedError) as caught:
        call(json_response(429, "{}", {"Retry-After": "3600"}))
    assert caught.value.retry_after_seconds == 3600
    date = email.utils.formatdate(time.time() + 120, usegmt=True)
    with pytest.raises(RateLimitedError) as caught:
        call(json_response(429, "{}", {"Retry-After": date}))
    assert caught.value.retry_after_seconds is not None
    assert 100 <= caught.value.retry_after_seconds <= 121


@pytest.mark.parametrize(
    "raw",
    [
        http_response(200, b"<html>gateway</html>"),
        json_response(200, "[1, 2]"),
        json_response(200, '{"status": "queued"}'),
        json_response(200, '{"id": "", "status": "queued"}'),
        json_response(200, '{"id": "gen_1"}'),
        http_response(502, b"\xff\xfe not json"),
    ],
    ids=["html", "array", "no-id", "empty-id", "no-status", "binary-502"],
)
def test_garbled_answers_are_transient(raw: bytes) -> None:
    """Bodies that are not JSON, or lack an id or status, are transient errors, never crashes."""
    with pytest.raises(TransientApiError):
        call(raw)


def test_connection_closed_mid_body_is_transient() -> None:
    """A response cut off mid-body is a transient error."""
    raw = b'HTTP/1.1 200 OK\r\nContent-Length: 200\r\nConnection: close\r\n\r\n{"id": "gen'
    with pytest.raises(TransientApiError):
        call(raw)


def test_stalled_response_times_out_as_transient() -> None:
    """A server that sends headers and then nothing times out into a transient error."""
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"
    with pytest.raises(TransientApiError, match="timed out"):
        call(raw, stall=3.0, timeout=0.3)


def test_redirects_are_not_followed_with_the_key() -> None:
    """A redirect from the API host is not followed, so the key cannot go elsewhere."""
    with pytest.raises(TransientApiError, match="redirect"):
        call(http_response(302, b"", {"Location": "http://127.0.0.2:1/steal"}))
    assert len(call.requests) == 1  # type: ignore[attr-defined]


def test_unknown_status_words_mean_not_done_yet() -> None:
    """Any status word other than the final ones means the task is still going."""
    view = call(json_response(200, '{"id": "gen_1", "status": "dreaming"}'), poll=True)
    assert view.status is TaskStatus.RUNNING and view.raw_status == "dreaming"
    assert normalise_status("SUCCEEDED") is TaskStatus.SUCCEEDED
    assert normalise_status("failed") is TaskStatus.FAILED


def test_success_without_video_url_has_no_url() -> None:
    """A success without video_url is reported as such (the runner polls again)."""
    view = call(json_response(200, '{"id": "gen_1", "status": "succeeded"}'), poll=True)
    assert view.status is TaskStatus.SUCCEEDED and view.video_url is None


def test_failure_reason_is_kept() -> None:
    """A failed task's error message and code are carried over."""
    body = (
        '{"id": "gen_1", "status": "failed", "error": {"message": "unsafe", "code": "moderation"}}'
    )
    view = call(json_response(200, body), poll=True)
    assert (view.error_message, view.error_code) == ("unsafe", "moderation")


def test_the_key_never_appears_in_error_text() -> None:
    """Even a server that echoes the key back has it redacted from the error."""
    body = '{"error": {"message": "bad key ' + KEY + '"}}'
    with pytest.raises(AuthError) as caught:
        call(json_response(401, body))
    assert KEY not in str(caught.value) and "[key]" in str(caught.value)


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://api.wanapi.io/v1", True),
        ("http://127.0.0.1:8080/v1", True),
        ("http://localhost:8080/v1", True),
        ("http://[::1]:8080/v1", True),
        ("http://api.example.com/v1", False),
        ("ftp://api.example.com/v1", False),
    ],
)
def test_plain_http_only_to_loopback(url: str, ok: bool) -> None:
    """The key may travel over http:// only to loopback unless explicitly allowed."""
    if ok:
        assert check_base_url(url) == url.rstrip("/")
    else:
        with pytest.raises(InsecureURLError):
            check_base_url(url)
    if url.startswith("http://"):
        assert check_base_url(url, allow_insecure_http=True)
