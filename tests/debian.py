"""Debian packages for the tests that need a real program (chromium, zsh, fish): ``install``
runs apt-get as root, or through password-less sudo, without recommends, and updates the package
lists once if the first try fails. Never prompts; returns why it could not, for a skip (or, under
CI, a failure) that says so."""

from __future__ import annotations

import os
import shutil
import subprocess

INSTALL_TIMEOUT_SECONDS = 300


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
