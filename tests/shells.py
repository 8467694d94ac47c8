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
import subprocess
from typing import NoReturn

import pytest

INSTALL_TIMEOUT_SECONDS = 300


def unavailable(name: str, reason: str) -> NoReturn:
    """Skip with ``reason`` locally; fail under CI, which must run every shell's test."""
    if os.environ.get("CI"):
        pytest.fail(f"{name} completion test cannot run in CI: {reason}", pytrace=False)
    pytest.skip(f"no {name}: {reason}")


def _apt(command: list[str]) -> str:
    """Run one apt-get command; '' if it worked, else its last line of output."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_SECONDS
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`{' '.join(command)}` did not finish: {exc}"
    if done.returncode == 0:
        return ""
    lines = (done.stderr or done.stdout).strip().splitlines()
    return f"`{' '.join(command)}` failed (exit {done.returncode}): {lines[-1] if lines else ''}"


def install(package: str) -> str:
    """Try ``apt-get install PACKAGE``; returns '' on success or why it could not."""
    if shutil.which("apt-get") is None:
        return f"apt-get is not available (not a Debian-like system); install {package} by hand"
    prefix: list[str] = []
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        if (
            shutil.which("sudo") is None
            or subprocess.run(["sudo", "-n", "true"], capture_output=True, timeout=30).returncode
        ):
            return (
                "not running as root and no password-less sudo; run "
                f"`sudo apt-get install --no-install-recommends {package}`"
            )
        prefix = ["sudo", "-n", "env", "DEBIAN_FRONTEND=noninteractive"]
    command = [*prefix, "apt-get", "install", "-y", "-q", "--no-install-recommends", package]
    failure = _apt(command)
    if failure:  # perhaps the package lists are missing or stale: update once, then try again
        failure = _apt([*prefix, "apt-get", "update", "-q"]) or _apt(command)
    return failure


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
