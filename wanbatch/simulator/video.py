"""Real, playable MP4s without a network or an encoder at run time.

Eight tiny H.264 clips (160x90, one second, distinct colours, a moving square) ship as package
data, encoded once with ffmpeg. A task's video is the clip chosen by a hash of its prompt with a
trailing MP4 ``free`` box that names the task (and pads to the requested size), so every task's
bytes differ while every file stays a valid MP4 that browsers and ffprobe accept.
"""

from __future__ import annotations

import functools
import hashlib
import struct
from importlib import resources

CLIP_COUNT = 8


@functools.cache
def _clip(index: int) -> bytes:
    return resources.files("wanbatch.simulator").joinpath(f"assets/clip{index}.mp4").read_bytes()


def make_video(prompt: str, task_id: str, min_size: int = 0) -> bytes:
    """The MP4 for one task: a clip picked by the prompt, plus a ``free`` box naming the task."""
    index = hashlib.sha256(prompt.encode("utf-8")).digest()[0] % CLIP_COUNT
    clip = _clip(index)
    label = f"wanbatch-simulator task={task_id}".encode()
    padding = max(0, min_size - len(clip) - 8 - len(label))
    payload = label + b"\x00" * padding
    return clip + struct.pack(">I", 8 + len(payload)) + b"free" + payload


def top_level_boxes(data: bytes) -> list[tuple[str, int]]:
    """(type, size) of each top-level box; raises ValueError if the sizes do not add up."""
    boxes = []
    offset = 0
    while offset < len(data):
        if offset + 8 > len(data):
            raise ValueError(f"truncated box header at {offset}")
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        if size < 8 or offset + size > len(data):
            raise ValueError(f"box {kind!r} at {offset} has a bad size {size}")
        boxes.append((kind.decode("latin-1"), size))
        offset += size
    return boxes
