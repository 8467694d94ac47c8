"""`--until-done` and `--wait-credits` go round again by themselves, so what one run promises
must hold across its rounds: the cost caps count every round, and a create whose answer is
unknown is not resent by a round nobody asked for."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from test_outage import manifest_file, top_up_after_round_one

from wanbatch import cli
from wanbatch.commands import run as run_command
from wanbatch.settings import Flags
from wanbatch.simulator import SimulatorServer
from wanbatch.stops import pause_before_next_round

from hostile import Answer, json_response, serve


def test_the_video_cap_counts_every_round(
    tmp_path: Path, make_sim: Callable[..., SimulatorServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--max-videos 2 --wait-credits`: credits for one video, topped up after the first round.
    The second round may create one more task, not two: three tasks would break the cap."""
    sim = make_sim(credits=1)
    monkeypatch.setenv("WAN_API_KEY", sim.api_key)
    path = manifest_file(tmp_path, 4)
    out = io.StringIO()

    top_up_after_round_one(sim, out)
    code = run_command.execute(
        Flags(
            manifest=str(path),
            base_url=sim.base_url,
            verbosity=-1,
            poll_interval=0.02,
            wait_credits=0.3,
            max_videos=2,
        ),
        out,
    )
    assert sim.stats()["tasks_created"] == 2, out.getvalue()
    assert code == 5 and "--max-videos" in out.getvalue()


def test_a_round_does_not_resend_a_create_whose_answer_is_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server answers every create 200 with an id that names no task: the first round sends
    it once and leaves it "answer unknown". `--until-done` must not resend it round after round
    (a server that does not dedupe charges each time): the run ends, naming the way out."""
    posts: list[str] = []

    def script(method: str, path: str, headers: dict[str, str]) -> Answer:
        if method == "POST":
            posts.append(path)
            if len(posts) > 1:  # a resend: the defect. End the run (a rejected key, exit 3).
                return Answer(json_response(401, '{"error": {"message": "stop"}}'))
        return Answer(json_response(200, '{"id": 1.5, "status": "queued"}'))

    monkeypatch.setenv("WAN_API_KEY", "sk-wan-test-rounds")
    path = manifest_file(tmp_path, 1)
    out = io.StringIO()
    with serve(script) as server:
        code = run_command.execute(
            Flags(
                manifest=str(path),
                base_url=server.base_url,
                verbosity=-1,
                poll_interval=0.02,
                until_done=True,
                round_pause=0.05,
            ),
            out,
        )
    assert len(posts) == 1, out.getvalue()[-2000:]
    assert code == 5
    assert "answer unknown" in out.getvalue() and "not resent" in out.getvalue()


def test_a_cap_ends_the_run_even_when_credits_would_be_waited_for() -> None:
    """Credits ran out (402) after the cap was reached: --wait-credits does not go round."""
    assert pause_before_next_round(4, None, capped=True, until_done=False, wait_credits=60) is None
    assert pause_before_next_round(4, None, capped=False, until_done=False, wait_credits=60) == 60


def test_a_wait_of_zero_between_rounds_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--wait-credits 0` would go round in a tight loop: a usage error (exit 2)."""
    path = manifest_file(tmp_path, 1)
    assert cli.main(["run", str(path), "--simulate", "--wait-credits", "0"]) == 2
    assert "above 0" in capsys.readouterr().err
