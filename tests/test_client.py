"""The wire adapter against a hostile server: every bad answer becomes a wanbatch error."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import anyio
import pytest

from wanbatch.client import ProviderApi, check_base_url
from wanbatch.errors import (
    AuthError,
    CreditsExhaustedError,
    InsecureURLError,
    JobRejectedError,
    RateLimitedError,
    TransientApiError,
)
from wanbatch.models import JobSpec, TaskStatus
from wanbatch.providers.wanapi import WORDS

from hostile import Answer, http_response, json_response, serve, trickling

KEY = "sk-wan-hostile-test-0123456789"
JOB = JobSpec(id="j", prompt="p", model="wan-2-2", duration=5, aspect_ratio="16:9")


def call(raw: bytes, *, poll: bool = False, stall: float = 0.0, timeout: float = 5.0) -> Any:
    """Send one create (or poll) to a server that answers ``raw``; return the result or raise."""
    with serve(lambda method, path, headers: Answer(raw, stall)) as server:

        async def go() -> Any:
            async with ProviderApi(server.base_url, KEY, timeout_seconds=timeout) as api:
                if poll:
                    return await api.get("gen_1")
                return (await api.create(JOB, "idem-1")).view

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
        call(json_response(429, "{}", {"Retry-After": "600"}))
    assert caught.value.retry_after_seconds == 600
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
        http_response(502, b"\xff\xfe not json"),
    ],
    ids=["html", "array", "no-id", "empty-id", "binary-502"],
)
def test_garbled_answers_are_transient(raw: bytes) -> None:
    """Bodies that are not JSON, or lack an id, are transient errors, never crashes."""
    with pytest.raises(TransientApiError):
        call(raw)


def test_a_poll_answer_without_a_status_is_transient_and_a_create_needs_none() -> None:
    """A poll must say where the task stands; a create only has to name its task."""
    with pytest.raises(TransientApiError, match="status"):
        call(json_response(200, '{"id": "gen_1"}'), poll=True)
    view = call(json_response(200, '{"id": "gen_1"}'))
    assert view.task_id == "gen_1" and view.status is TaskStatus.PENDING


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
    assert WORDS.status("SUCCEEDED") is TaskStatus.SUCCEEDED
    assert WORDS.status("failed") is TaskStatus.FAILED


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


# --- every answer checked (issue 12) -------------------------------------------------------


def test_a_create_answer_with_an_integer_id_is_accepted() -> None:
    """`{"id": 1}` is a usable id: taken as the string "1", not a garbled answer."""
    view = call(json_response(200, '{"id": 1, "status": "queued"}'))
    assert view.task_id == "1" and view.status is TaskStatus.PENDING


@pytest.mark.parametrize(
    "body",
    [
        '{"id": 1.5, "status": "queued"}',
        '{"id": true, "status": "queued"}',
        '{"id": {"x": 1}, "status": "queued"}',
        '{"id": "../../admin/x?y=1#", "status": "queued"}',
        '{"id": "gen\\u0007bell", "status": "queued"}',
        '{"id": "' + "g" * 300 + '", "status": "queued"}',
        '{"id": "", "status": "queued"}',
        '{"status": "queued"}',
        "[1, 2]",
    ],
    ids=["float", "bool", "object", "traversal", "control", "too-long", "empty", "none", "array"],
)
def test_an_unusable_create_answer_is_answer_unknown(body: str) -> None:
    """A 2xx to a create that names no usable task: a task may exist, so the outcome is
    unknown (``AnswerUnknownError``), never a plain transient error that would be resent."""
    from wanbatch.errors import AnswerUnknownError

    with pytest.raises(AnswerUnknownError, match="task id|not a JSON object"):
        call(json_response(200, body))


@pytest.mark.parametrize(
    "task_id", ["../../admin/x?y=1#", "gen\x07bell", "a/b", "", "x" * 200, ".."]
)
def test_a_bad_task_id_is_refused_before_anything_is_sent(task_id: str) -> None:
    """An id that breaks the URL (or leaves its path) fails that job with a clear reason and
    sends nothing: no request with the key to another path, no ``httpx.InvalidURL``."""
    from wanbatch.errors import BadTaskIdError

    with serve(lambda m, p, h: Answer(json_response(200, '{"status": "running"}'))) as server:

        async def go() -> None:
            async with ProviderApi(server.base_url, KEY) as api:
                await api.get(task_id)

        with pytest.raises(BadTaskIdError, match="task id"):
            anyio.run(go)
        assert server.requests == []


def test_task_ids_are_escaped_in_the_url() -> None:
    """A valid id with a reserved character goes into the path escaped, and the poll answer's
    own id is not needed."""
    with serve(lambda m, p, h: Answer(json_response(200, '{"status": "running"}'))) as server:

        async def go() -> Any:
            async with ProviderApi(server.base_url, KEY) as api:
                return await api.get("gen:1")

        view = anyio.run(go)
        assert server.requests[0][1] == "/v1/video/generations/gen%3A1"
    assert view.task_id == "gen:1" and view.status is TaskStatus.RUNNING


def test_server_text_is_redacted_and_capped() -> None:
    """A failed task's message, code and status word pass through one boundary: the key is
    redacted from all of them, control characters are neutralised and the length is capped."""
    echo = "x" * 5000 + " Bearer " + KEY + " \x1b[31mred"
    body = {
        "id": "gen_1",
        "status": "failed",
        "error": {"message": echo, "code": "c-" + KEY},
    }
    import json as _json

    view = call(json_response(200, _json.dumps(body)), poll=True)
    for text in (view.error_message, view.error_code, view.raw_status):
        assert text is not None and KEY not in text and "\x1b" not in text
    assert len(view.error_message) <= 1000 and len(view.error_code) <= 100


def test_a_server_error_code_and_request_id_are_redacted() -> None:
    body = '{"error": {"message": "no", "code": "' + KEY + '"}}'
    with pytest.raises(JobRejectedError) as caught:
        call(json_response(400, body, {"x-request-id": "r-" + KEY}))
    assert KEY not in str(caught.value) and KEY not in (caught.value.code or "")
    assert KEY not in (caught.value.request_id or "")


def test_a_huge_retry_after_is_capped_and_says_so() -> None:
    """`Retry-After: 999999` does not freeze the host for 11 days: the wait is capped, and the
    error says what the server asked and what wanbatch waits."""
    from wanbatch.backoff import MAX_RETRY_AFTER_SECONDS

    with pytest.raises(RateLimitedError) as caught:
        call(json_response(429, "{}", {"Retry-After": "999999"}))
    assert caught.value.retry_after_seconds == MAX_RETRY_AFTER_SECONDS
    assert "999999" in str(caught.value) and f"{MAX_RETRY_AFTER_SECONDS:g}" in str(caught.value)


def test_a_create_answer_trickling_in_is_cut_at_the_answer_limit() -> None:
    """Each byte comes before the read timeout, but the whole answer never does: the total
    limit ends it as a transient error (for a create: the outcome is unknown)."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 400\r\nConnection: close\r\n\r\n"
    with trickling(head, b"{" + b" " * 399, every=0.02) as port:

        async def go() -> Any:
            url = f"http://127.0.0.1:{port}/v1"
            async with ProviderApi(url, KEY, timeout_seconds=1.0, answer_seconds=0.3) as api:
                with anyio.fail_after(5):  # the old code reads for 8 s
                    return await api.create(JOB, "idem-1")

        with pytest.raises(TransientApiError, match="no whole answer"):
            anyio.run(go)


@pytest.mark.parametrize(
    "word", ["expired", "EXPIRED", "timeout", "timed_out", "aborted", "deleted", "killed"]
)
def test_terminal_status_words_are_failures(word: str) -> None:
    """`expired` and its kin end the task: FAILED, with the word kept as the reason."""
    view = call(json_response(200, f'{{"id": "gen_1", "status": "{word}"}}'), poll=True)
    assert view.status is TaskStatus.FAILED and view.raw_status == word


def test_an_unknown_status_word_is_marked_unrecognised() -> None:
    """A word wanbatch does not know is taken as still running, and marked so the run can
    warn and `status` can show it; known running words are not marked."""
    view = call(json_response(200, '{"id": "gen_1", "status": "dreaming"}'), poll=True)
    assert view.status is TaskStatus.RUNNING and view.unrecognised_status
    view = call(json_response(200, '{"id": "gen_1", "status": "processing"}'), poll=True)
    assert view.status is TaskStatus.RUNNING and not view.unrecognised_status


def test_a_key_at_the_cut_of_a_long_error_body_is_not_half_kept() -> None:
    """A plain-text error body is cut short for the message only after the key is redacted,
    so no prefix of the key survives the cut."""
    body = ("e" * 190 + KEY + "tail").encode()
    with pytest.raises(TransientApiError) as caught:
        call(http_response(503, body))
    assert KEY[:8] not in str(caught.value)


def test_an_invalid_url_inside_the_client_is_a_job_error() -> None:
    """Whatever ``httpx.InvalidURL`` the wire meets becomes a wanbatch error for one job
    (nothing was sent), never a traceback, and the key is redacted from it."""
    import httpx

    from wanbatch.client import _map_transport_errors

    with (
        pytest.raises(JobRejectedError, match="not valid") as caught,
        _map_transport_errors("poll", KEY),
    ):
        raise httpx.InvalidURL("bad " + KEY)
    assert KEY not in str(caught.value)
