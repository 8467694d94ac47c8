"""`wanbatch` with proposed scheduler changes patched in at run time, to measure them first.

    python benchmarks/prototype.py PATCH[,PATCH...] run MANIFEST --base-url URL ...

Nothing under wanbatch/ is edited: this module replaces one method of the installed Runner in
its own process and then calls `wanbatch.cli.main`. The benchmarks run it beside the real
`python -m wanbatch` and label its rows "prototype"; the figures show what a change would buy
before it is made properly (with tests) in wanbatch/scheduler.py.

Patches:

- `pacer`: on a 429, stop the client's token bucket from bursting: its burst drops to one
  request and its saved tokens are spent, so that when the Retry-After pause ends requests
  resume at the steady rate instead of in a burst of `requests_per_second` at once (which the
  server, with a smaller burst of its own, answers with another round of 429s). A 429 that
  carried Retry-After no longer counts against the request's retry attempts.
"""

from __future__ import annotations

import sys
from typing import Any

from wanbatch import cli
from wanbatch.errors import TransientApiError
from wanbatch.scheduler import Runner


def patch_pacer() -> None:
    original = Runner._after_transient

    async def after_transient(
        self: Runner, exc: TransientApiError, attempt: int, what: str, job: Any
    ) -> bool:
        if exc.status == 429:
            pacer = self.admission.pacer
            pacer.burst = 1.0
            pacer._tokens = min(pacer._tokens, 0.0)
            if exc.retry_after_seconds is not None:
                attempt = 1  # the server said when to come back: not a failed attempt
        return await original(self, exc, attempt, what, job)

    Runner._after_transient = after_transient  # type: ignore[method-assign]


PATCHES = {"pacer": patch_pacer}


def main(argv: list[str]) -> int:
    names, *rest = argv
    for name in names.split(","):
        PATCHES[name]()
    return cli.main(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
