import numpy as np
import pytest

from embodied.media.video import annotate, read_video, side_by_side, write_video


def _frames(n=6, size=48):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def test_annotate_draws_overlays():
    frame = np.full((96, 96, 3), 128, dtype=np.uint8)
    out = annotate(frame, "put the red cube on the green pad", "pick(red_cube)", 3, True)
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert (out != frame).any(axis=-1)[:12].mean() > 0.5  # instruction bar at the top
    assert (out != frame).any(axis=-1)[-12:].mean() > 0.5  # status bar at the bottom
    np.testing.assert_array_equal(frame, 128)  # the input is not modified


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_write_and_read_back(tmp_path, suffix):
    frames = _frames()
    path = write_video(frames, tmp_path / f"clip{suffix}", fps=10)
    back = read_video(path)
    assert back.shape[0] == len(frames) and back.shape[-1] == 3
    assert back.shape[1] >= 48 and back.shape[2] >= 48


def test_bad_video_requests():
    with pytest.raises(ValueError, match="must end in one of"):
        write_video(_frames(), "clip.avi")
    with pytest.raises(ValueError, match="no frames"):
        write_video([], "clip.mp4")
    with pytest.raises(ValueError, match="share a height"):
        side_by_side(np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4, 3), np.uint8))
