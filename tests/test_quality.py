"""The quality gates run as tests: ruff (with ASYNC rules), mypy strict, and the import layers."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail(f"{name} is not installed beside {sys.executable}; install the test extra")
    return found


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)


CODE_DIRS = [name for name in ("wanbatch", "tests", "benchmarks") if (ROOT / name).is_dir()]


def test_ruff_is_clean() -> None:
    """ruff, ASYNC rules included, finds nothing in the package, tests or benchmarks."""
    result = _run(_tool("ruff"), "check", *CODE_DIRS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_code_is_formatted() -> None:
    """`ruff format --check` finds nothing to reformat."""
    result = _run(_tool("ruff"), "format", "--check", *CODE_DIRS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_on_the_package() -> None:
    """mypy --strict passes on the package."""
    result = _run(sys.executable, "-m", "mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_layers_hold() -> None:
    """import-linter: the layers in pyproject.toml (README: Development), pure modules and the simulator's isolation."""
    result = _run(_tool("lint-imports"), "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr
