"""Collection, evaluation and seed sweeps on Ray (a local 2-CPU Ray) equal the local runners."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from embodied import scale
from embodied.cli import main
from embodied.data.collect import collect
from embodied.data.dataset import META_FILE, SUMMARY_FILE, episode_path
from embodied.evaluation.harness import evaluate, expert_factory
from embodied.training.data_split import AGENT_FILE

STATE = {"obs_mode": "state"}
TIMED = ("latency_ms", "seconds", "num_envs")


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local Ray for the whole module (starting one takes seconds); the code under test
    finds it initialised and reuses it."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def reach_demos(tmp_path_factory):
    root = tmp_path_factory.mktemp("local") / "reach"
    collect("reach", 4, root, seed=3, noise=0.1, progress=False, **STATE)
    return root


def assert_same_dataset(a, b) -> None:
    """Every episode file holds the same arrays (dtypes included) and metadata; the same
    meta.json; the same summary.json but for its timing and its count of new episodes."""
    names = sorted(p.name for p in a.glob("episode_*.npz"))
    assert names == sorted(p.name for p in b.glob("episode_*.npz")) and names
    for name in names:
        with np.load(a / name) as x, np.load(b / name) as y:
            assert sorted(x.files) == sorted(y.files)
            for key in x.files:
                assert x[key].dtype == y[key].dtype, key
                np.testing.assert_array_equal(x[key], y[key], err_msg=key)
    assert json.loads((a / META_FILE).read_text()) == json.loads((b / META_FILE).read_text())
    drop = ("seconds", "newly_collected")
    a_sum, b_sum = (json.loads((d / SUMMARY_FILE).read_text()) for d in (a, b))
    assert {k: v for k, v in a_sum.items() if k not in drop} == {
        k: v for k, v in b_sum.items() if k not in drop
    }


def comparable(result) -> dict:
    return {k: v for k, v in result.to_dict().items() if k not in TIMED}


# ---------------------------------------------------------------- collection


def test_blocks_are_contiguous_runs():
    assert scale.contiguous_blocks([0, 1, 2, 4, 5, 9], 2) == [[0, 1], [2], [4, 5], [9]]
    assert scale.contiguous_blocks([], 3) == []


def test_collect_with_ray_writes_the_local_dataset(reach_demos, tmp_path):
    out = tmp_path / "reach"
    summary = scale.collect_ray(
        "reach", 4, out, seed=3, noise=0.1, block=1, progress=False, **STATE
    )
    assert summary["episodes"] == 4 and summary["newly_collected"] == 4
    assert_same_dataset(reach_demos, out)


def test_collect_with_ray_resumes_a_partial_run(reach_demos, tmp_path):
    out = tmp_path / "reach"
    collect("reach", 4, out, seed=3, noise=0.1, progress=False, **STATE)
    episode_path(out, 1).unlink()
    episode_path(out, 3).unlink()
    (out / ".episode_000003.npz.tmp").write_bytes(b"half a file")
    summary = scale.collect_ray("reach", 4, out, seed=3, noise=0.1, progress=False, **STATE)
    assert summary["newly_collected"] == 2
    assert not (out / ".episode_000003.npz.tmp").exists()
    assert_same_dataset(reach_demos, out)


def test_collect_with_ray_refuses_other_settings(reach_demos, tmp_path):
    from embodied.data.dataset import DatasetError

    out = tmp_path / "reach"
    collect("reach", 2, out, seed=3, noise=0.1, progress=False, **STATE)
    with pytest.raises(DatasetError, match="different collection"):
        scale.collect_ray("reach", 2, out, seed=4, noise=0.1, progress=False, **STATE)


# ---------------------------------------------------------------- evaluation


@pytest.mark.parametrize(("task", "seed", "skipped"), [("reach", 8, [10]), ("push", 0, [])])
def test_evaluate_expert_with_ray_equals_the_local_harness(task, seed, skipped):
    local = evaluate(expert_factory(), task, 4, seed=seed, **STATE)
    remote = scale.evaluate_ray("expert", task, 4, seed=seed, num_workers=2, **STATE)
    assert remote.skipped_seeds == local.skipped_seeds == skipped
    assert remote.seeds == local.seeds
    assert comparable(remote) == comparable(local)
    assert remote.num_envs == 2 and remote.latency_ms["act_mean"] > 0


# ---------------------------------------------------------------- seed sweeps


@pytest.fixture(scope="module")
def sweep(reach_demos, tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    reports = scale.train_sweep_ray(
        "bc-state", [reach_demos], root, [0, 1], preset="debug", tensorboard=False
    )
    return root, reports


def test_seed_sweep_with_ray_writes_one_run_per_seed(sweep):
    root, reports = sweep
    assert sorted(reports) == [0, 1]
    for seed in (0, 1):
        assert (root / f"seed_{seed}" / AGENT_FILE).is_file()
        assert reports[seed]["seed"] == seed and reports[seed]["kind"] == "bc-state"
        assert json.loads((root / f"seed_{seed}" / "train.json").read_text())["seed"] == seed


def test_evaluate_trained_run_with_ray_equals_the_local_harness(sweep):
    from embodied.saved_agents import agent_factory_from_run

    run = sweep[0] / "seed_0"
    factory, overrides = agent_factory_from_run(run, "reach")
    local = evaluate(factory, "reach", 3, seed=8, **overrides)
    remote = scale.evaluate_ray(str(run), "reach", 3, seed=8)
    assert comparable(remote) == comparable(local)


def test_sweep_refuses_repeated_seeds(tmp_path):
    with pytest.raises(ValueError, match="seeds must differ"):
        scale.train_sweep_ray("bc-state", [tmp_path], tmp_path, [1, 1])


# ---------------------------------------------------------------- command line


def test_cli_collect_and_eval_with_ray(reach_demos, tmp_path, capsys):
    out = tmp_path / "reach"
    args = ["--task", "reach", "--episodes", "4", "--seed", "3", "--noise", "0.1"]
    assert (
        main(["collect", *args, "--out", str(out), "--obs-mode", "state", "--ray", "--quiet"]) == 0
    )
    assert_same_dataset(reach_demos, out)

    code = main(["eval", "--agent", "expert", "--task", "reach", "--episodes", "3", "--seed", "8",
                 "--out", str(tmp_path / "eval"), "--obs-mode", "state", "--ray", "--quiet"])  # fmt: skip
    assert code == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["seeds"] == [8, 9, 11] and metrics["skipped_seeds"] == [10]
    assert "reach: success" in capsys.readouterr().out


def test_cli_eval_refuses_videos_with_ray(tmp_path, capsys):
    code = main(["eval", "--agent", "expert", "--task", "reach", "--episodes", "1", "--out",
                 str(tmp_path), "--video", "1", "--ray"])  # fmt: skip
    assert code == 2
    assert "--video" in capsys.readouterr().err


def test_cli_seed_sweep_locally_and_refuses_ray_without_seeds(reach_demos, tmp_path, capsys):
    common = ["train", "agent", "--kind", "bc-state", "--data", str(reach_demos), "--preset",
              "debug", "--quiet", "--steps", "5"]  # fmt: skip
    assert main([*common, "--out", str(tmp_path), "--seeds", "3", "4"]) == 0
    assert (tmp_path / "seed_3" / AGENT_FILE).is_file()
    assert (tmp_path / "seed_4" / AGENT_FILE).is_file()
    assert "seed 4:" in capsys.readouterr().out
    assert main([*common, "--out", str(tmp_path / "x"), "--ray"]) == 2
    assert "--seeds" in capsys.readouterr().err


# ---------------------------------------------------------------- without Ray


def test_a_clear_error_without_ray(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(scale.RayUnavailableError, match=r"pip install -e \.\[ray\]"):
        scale.import_ray()
    code = main(["collect", "--task", "reach", "--episodes", "1", "--out", str(tmp_path),
                 "--obs-mode", "state", "--ray", "--quiet"])  # fmt: skip
    assert code == 2
    assert "pip install -e .[ray]" in capsys.readouterr().err
