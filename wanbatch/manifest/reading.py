"""The manifest package's only I/O: a manifest's bytes read and decoded, and paths resolved.

Text is UTF-8 (a BOM is skipped). A UTF-16 or UTF-32 file with a BOM (Excel's "Unicode text"
export) is decoded too: the BOM says which it is, so nothing is guessed. Anything else that is
not UTF-8 is refused with the line of the first bad byte and what to do about it: a cp1252 or
Latin-1 export, or UTF-16 without a BOM, is named as such, with "save as CSV UTF-8".
"""

from __future__ import annotations

import codecs
import os
from pathlib import Path

from wanbatch.manifest.problems import Problems

SAVE_AS = "save as CSV UTF-8 (or UTF-8 text) and try again"

_BOMS = (  # the UTF-32 ones first: UTF-32-LE's BOM starts with UTF-16-LE's
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def resolve(path: str | os.PathLike[str]) -> Path:
    """``path`` made absolute, symbolic links followed."""
    return Path(path).resolve()


def is_file(path: Path) -> bool:
    return path.is_file()


def manifest_text(path: Path, problems: Problems, key: str = "") -> str | None:
    """The text of ``path``, or None with a problem added."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        problems.add(key, f"file not found: {path}")
        return None
    except OSError as exc:
        problems.add(key, f"cannot read {path}: {exc.strerror or exc}")
        return None
    return decode(data, path.name, problems, key)


def decode(data: bytes, name: str, problems: Problems, key: str = "") -> str | None:
    """``data`` as text (see the module's docstring), or None with a problem added."""
    encoding = next((enc for bom, enc in _BOMS if data.startswith(bom)), "utf-8")
    if encoding in ("utf-16", "utf-32"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as exc:
            problems.add(key, f"{name} starts as {encoding.upper()} but is not: {exc.reason}")
            return None
        if "\x00" in text:
            problems.add(key, f"{name} is a binary file, not a YAML or CSV manifest")
            return None
        return text
    if b"\x00" in data:
        if _looks_like_utf16(data):
            problems.add(key, f"{name} looks like UTF-16 text without a byte-order mark: {SAVE_AS}")
        else:
            problems.add(key, f"{name} is a binary file, not a YAML or CSV manifest")
        return None
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start]
        hint = ""
        try:
            data.decode("cp1252")
            hint = " (it looks like a Windows cp1252 or Latin-1 export)"
        except UnicodeDecodeError:
            pass
        problems.add(
            key, f"{name} is not UTF-8 text: byte 0x{byte:02x}{hint}; {SAVE_AS}", line=line
        )
        return None


def _looks_like_utf16(data: bytes) -> bool:
    """Text of mostly ASCII as UTF-16: every other byte NUL."""
    sample = data[:4096]
    if len(sample) < 4:
        return False
    odd, even = sample[1::2], sample[0::2]
    return odd.count(0) > 0.9 * len(odd) or even.count(0) > 0.9 * len(even)
