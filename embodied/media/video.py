"""Rollout videos: overlay text on frames and write mp4 (imageio-ffmpeg) or gif (Pillow)."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
from PIL import Image, ImageDraw, ImageFont

VIDEO_SUFFIXES = (".mp4", ".gif")


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizes
        return ImageFont.load_default()


def annotate(
    frame: np.ndarray,
    instruction: str = "",
    subtask: str = "",
    step: int | None = None,
    success: bool | None = None,
    extra: str = "",
) -> np.ndarray:
    """Draw the instruction (top) and step / subtask / success (bottom) on a copy of ``frame``."""
    height, width = frame.shape[:2]
    size = max(9, width // 26)
    font = _font(size)
    image = Image.fromarray(np.ascontiguousarray(frame)).convert("RGBA")
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    line_h = size + 3
    if instruction:
        lines = textwrap.wrap(instruction, width=max(16, int(width / (size * 0.55))))[:3]
        draw.rectangle([0, 0, width, line_h * len(lines) + 4], fill=(0, 0, 0, 150))
        for i, line in enumerate(lines):
            draw.text((4, 2 + i * line_h), line, font=font, fill=(255, 255, 255, 255))
    status = []
    if step is not None:
        status.append(f"step {step}")
    if subtask:
        status.append(subtask)
    if extra:
        status.append(extra)
    if status or success is not None:
        top = height - line_h - 4
        draw.rectangle([0, top, width, height], fill=(0, 0, 0, 150))
        draw.text((4, top + 2), "  ".join(status), font=font, fill=(255, 255, 255, 255))
        if success is not None:
            label, color = (
                ("SUCCESS", (60, 220, 90, 255)) if success else ("...", (230, 230, 230, 255))
            )
            text_w = draw.textlength(label, font=font)
            draw.text((width - text_w - 4, top + 2), label, font=font, fill=color)
    return np.asarray(Image.alpha_composite(image, layer).convert("RGB"))


def side_by_side(*frames: np.ndarray, gap: int = 2) -> np.ndarray:
    """Concatenate frames of equal height horizontally with a thin dark gap."""
    height = frames[0].shape[0]
    spacer = np.full((height, gap, 3), 20, dtype=np.uint8)
    parts: list[np.ndarray] = []
    for i, frame in enumerate(frames):
        if frame.shape[0] != height:
            raise ValueError(f"frames must share a height, got {[f.shape for f in frames]}")
        if i:
            parts.append(spacer)
        parts.append(frame)
    return np.concatenate(parts, axis=1)


def write_video(frames: Sequence[np.ndarray], path: str | os.PathLike, fps: int = 20) -> Path:
    """Write ``frames`` (each ``(H, W, 3) uint8``) to ``.mp4`` or ``.gif``, atomically."""
    path = Path(path)
    if path.suffix not in VIDEO_SUFFIXES:
        raise ValueError(f"video path must end in one of {VIDEO_SUFFIXES}, got {str(path)!r}")
    if not frames:
        raise ValueError("no frames to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    if path.suffix == ".mp4":
        with imageio.get_writer(
            tmp,
            fps=fps,
            codec="libx264",
            quality=7,
            macro_block_size=16,
            pixelformat="yuv420p",
            ffmpeg_log_level="error",
        ) as writer:
            for frame in frames:
                writer.append_data(_pad16(frame))
    else:
        images = [Image.fromarray(f) for f in frames]
        images[0].save(
            tmp, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0
        )
    os.replace(tmp, path)
    return path


def _pad16(frame: np.ndarray) -> np.ndarray:
    """Pad to multiples of 16 px so that ffmpeg does not rescale."""
    h, w = frame.shape[:2]
    ph, pw = (-h) % 16, (-w) % 16
    if ph or pw:
        frame = np.pad(frame, ((0, ph), (0, pw), (0, 0)))
    return frame


def read_video(path: str | os.PathLike) -> np.ndarray:
    """All frames of a video as ``(T, H, W, 3) uint8``."""
    return np.stack([np.asarray(f)[..., :3] for f in imageio.mimread(path, memtest=False)])
