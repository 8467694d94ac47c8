"""Real shells for the completion tests: bash, and Debian's ``zsh`` and ``fish`` when missing.

``shell_path(name)`` finds the shell on PATH; when it is not there and we run as root (or with
password-less sudo) it installs Debian's package with apt-get (no recommends), as
``tests/browser.py`` does for chromium. Where the shell cannot be had the test is skipped with
the reason, except under CI (the ``CI`` environment variable set), where it fails instead: CI
must never skip a shell's completion test.
"""

from __future__ import annotations

import functools
import os
import shutil
from typing import NoReturn

import pytest

from debian import install


def unavailable(name: str, reason: str) -> NoReturn:
    """Skip with ``reason`` locally; fail under CI, which must run every shell's test."""
    if os.environ.get("CI"):
        pytest.fail(f"{name} completion test cannot run in CI: {reason}", pytrace=False)
    pytest.skip(f"no {name}: {reason}")


@functools.cache
def _shell_or_reason(name: str) -> tuple[str | None, str]:
    found = shutil.which(name)
    if found:
        return found, ""
    reason = install(name)
    found = shutil.which(name)
    if found:
        return found, ""
    return None, reason or f"{name} was installed but is not on PATH"


def shell_path(name: str) -> str:
    """The path of shell ``name`` (bash, zsh, fish), installing it if need be; skips (fails in
    CI) when there is none."""
    found, reason = _shell_or_reason(name)
    if found is None:
        unavailable(name, reason)
    return found
