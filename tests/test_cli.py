"""The CLI, called in-process."""

import json

import pytest

import envs
from embodied.cli import main
from embodied.data.dataset import EpisodeDataset
from embodied.media.video import read_video


def test_tasks_lists_names_and_gym_ids(capsys):
    assert main(["tasks", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["task"] for r in rows] == envs.TASKS.names()
    assert all(r["gym_id"].startswith("WMSandbox/") for r in rows)


def test_collect_writes_dataset_and_summary(tmp_path, capsys):
    out = tmp_path / "demos"
    code = main(
        [
            "collect",
            "--task",
            "stack",
            "--episodes",
            "2",
            "--seed",
            "3",
            "--out",
            str(out),
            "--image-size",
            "32",
            "--quiet",
        ]
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["task"] == "stack"
        and summary["episodes"] == 2
        and 0.0 <= summary["success_rate"] <= 1.0
    )
    assert EpisodeDataset(out).obs_keys == ["image_front", "image_wrist", "object_state", "proprio"]


def test_render_writes_a_readable_mp4_and_gif(tmp_path, capsys):
    out = tmp_path / "push.mp4"
    assert (
        main(
            ["render", "--task", "push", "--seed", "1", "--out", str(out), "--size", "96", "--gif"]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["success"] is True
    frames = read_video(out)
    assert frames.shape[0] == report["steps"] + 1 and frames.shape[1:3] == (96, 96)
    assert read_video(out.with_suffix(".gif")).shape[0] == report["steps"] + 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["collect", "--task", "pickplace", "--episodes", "1", "--out", "x"],
            "known tasks: chain, pick-place",
        ),
        (
            ["collect", "--task", "reach", "--episodes", "1", "--out", "x", "--image-size", "8"],
            "image_size must be an int in [16, 640]",
        ),
        (
            ["collect", "--task", "reach", "--episodes", "1", "--out", "x", "--cameras", "top"],
            "known cameras",
        ),
        (
            ["collect", "--task", "reach", "--episodes", "1", "--out", "x", "--set", "speed=3"],
            "accepted: max_steps",
        ),
        (["render", "--task", "reach", "--out", "clip.avi"], "--out must end in one of .mp4, .gif"),
        (
            ["bench", "world-model", "--out", "wm.json", "--variants", "default,huge"],
            "--variants: unknown ['huge']; known: default, default-no-slots, state, state-slots, perceived",
        ),
        (
            ["render", "--task", "reach", "--out", "clip.mp4", "--size", "4"],
            "--size must be in [16, 640]",
        ),
    ],
)
def test_bad_input_fails_with_a_message(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_argparse_rejects_bad_numbers(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["collect", "--task", "reach", "--episodes", "0", "--out", "x"])
    assert exc.value.code == 2
    assert "expected a positive integer" in capsys.readouterr().err


def test_bench_env_small(tmp_path, capsys):
    out = tmp_path / "env.json"
    assert (
        main(["bench", "env", "--out", str(out), "--steps", "20", "--tasks", "reach", "--no-peers"])
        == 0
    )
    result = json.loads(out.read_text())
    r = result["tasks"]["reach"]
    assert r["state_steps_per_s"] > 0 and r["raw_physics_steps_per_s"] > 0
    assert r["pixels64_front+wrist_frames_per_s"] == pytest.approx(
        2 * r["pixels64_front+wrist_steps_per_s"]
    )


def test_bench_experts_small(tmp_path, capsys):
    out = tmp_path / "experts.json"
    assert (
        main(
            [
                "bench",
                "experts",
                "--out",
                str(out),
                "--episodes",
                "2",
                "--tasks",
                "reach",
                "--quiet",
            ]
        )
        == 0
    )
    r = json.loads(out.read_text())["tasks"]["reach"]
    assert r["success_rate"] == 1.0 and r["ci95"][0] < 1.0


def test_eval_expert_writes_metrics_and_videos(tmp_path, capsys):
    out = tmp_path / "eval"
    code = main(
        [
            "eval",
            "--agent",
            "expert",
            "--task",
            "chain",
            "--episodes",
            "2",
            "--seed",
            "4",
            "--out",
            str(out),
            "--video",
            "1",
            "--obs-mode",
            "state",
            "--quiet",
        ]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["episodes"] == 2 and metrics["seeds"] == [4, 5]
    assert metrics["success_rate"] == 1.0 and metrics["ci95"][0] < 1.0 <= metrics["ci95"][1] + 1e-9
    assert metrics["mean_chain_length"] >= 2 and metrics["latency_ms"]["act_mean"] > 0
    assert len(metrics["videos"]) == 1 and read_video(metrics["videos"][0]).shape[0] > 10
    assert (
        main(
            [
                "eval",
                "--agent",
                "runs/nope",
                "--task",
                "chain",
                "--episodes",
                "1",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert "accepted: expert" in capsys.readouterr().err


def test_demo_runs_end_to_end_small(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(
        [
            "demo",
            "--out",
            str(out),
            "--episodes",
            "2",
            "--tasks",
            "reach",
            "--workers",
            "1",
            "--world-model-steps",
            "2",
            "--world-model-episodes",
            "3",
            "--agent-steps",
            "3",
            "--agent-episodes",
            "1",
            "--agent-preset",
            "debug",
            "--baseline-episodes",
            "2",
            "--layered",
            "--quiet",
        ]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["tasks"]["reach"]["expert_success_rate"] == 1.0
    wm = report["world_model"]
    assert wm["steps"] == 2 and wm["h10_latent_nothing_moves"] > 0
    for key in ("video", "plot", "eval"):
        assert (out / wm[key]).exists()
    assert read_video(out / wm["video"]).shape[0] == 60
    assert "## World model" in (out / "report.md").read_text()
    agents = report["agents"]["agents"]
    for name in ("bc-state", "end-to-end", "hierarchical", "hierarchical+oracle"):
        row = agents[name]["tasks"]["reach"]
        assert 0 <= row["success_rate"] <= 1 and (out / row["video"]).exists()
    md = (out / "report.md").read_text()
    assert "| task | bc-state | end-to-end | hierarchical | hierarchical+oracle |" in md
    assert (out / report["agents"]["report"]).exists()


def test_every_help_page_renders(capsys):
    """argparse formats help strings with %: a stray one crashes `--help`."""
    for argv in (["--help"], ["train", "agent", "--help"], ["bench", "--help"], ["eval", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0
    assert "wm-sandbox" in capsys.readouterr().out
