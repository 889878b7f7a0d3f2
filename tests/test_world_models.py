"""World models: shapes, gradients, learning, determinism, resume, checkpoints, dream env, other envs."""

import dataclasses
import json
import warnings

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from embodied.cli import main
from embodied.data.collect import collect
from embodied.training.world_model import train_world_model
from world_models import (
    CheckpointError,
    DreamEnv,
    LatentWorldModelConfig,
    ObsSpec,
    WorldModelTrainer,
    build_world_model,
    load_world_model,
    preset,
)
from world_models.checkpoint import save_checkpoint

SPEC = ObsSpec(
    image_keys=("image_front", "image_wrist"),
    image_size=32,
    vector_keys=("proprio", "object_state"),
    vector_dims=(4, 6),
    action_dim=3,
)
DEBUG = preset("debug")


def synthetic_batch(spec: ObsSpec = SPEC, B: int = 4, T: int = 3, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    batch = {
        f"obs/{k}": rng.integers(
            0, 255, (B, T + 1, spec.image_size, spec.image_size, 3), dtype=np.uint8
        )
        for k in spec.image_keys
    }
    for k, d in zip(spec.vector_keys, spec.vector_dims):
        batch[f"obs/{k}"] = rng.normal(size=(B, T + 1, d)).astype(np.float32)
    batch["action"] = rng.uniform(-1, 1, (B, T, spec.action_dim)).astype(np.float32)
    batch["reward"] = rng.uniform(0, 1, (B, T)).astype(np.float32)
    batch["success"] = rng.random((B, T)) > 0.7
    batch["subtask_done"] = rng.random((B, T)) > 0.8
    return batch


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def test_shapes_of_every_verb():
    model = build_world_model(DEBUG, SPEC, seed=0)
    batch = synthetic_batch(B=5, T=3)
    obs = {k[4:]: v for k, v in batch.items() if k.startswith("obs/")}
    z = model.encode(obs)
    assert z.shape == (5, 4, DEBUG.latent_dim)
    z_seq = model.imagine(z[:, 0], torch.as_tensor(batch["action"]))
    assert z_seq.shape == (5, 3, DEBUG.latent_dim)
    assert model.next(z[:, 0], torch.as_tensor(batch["action"][:, 0])).shape == (
        5,
        DEBUG.latent_dim,
    )
    assert model.reward(z_seq).shape == (5, 3)
    assert ((model.success(z_seq) >= 0) & (model.success(z_seq) <= 1)).all()
    assert model.subtask(z_seq).shape == (5, 3)
    assert model.state(z_seq).shape == (
        5,
        3,
        4,
    )  # proprio only: a pixel model is not taught privileged state
    frames = model.decode(z_seq)
    assert frames.shape == (5, 3, 32, 32, 3) and frames.dtype == torch.uint8


def test_pixel_model_does_not_see_privileged_state():
    model = build_world_model(DEBUG, SPEC, seed=0)
    assert model.input_vector_keys == ("proprio",)
    batch = synthetic_batch()
    obs = {k[4:]: v for k, v in batch.items() if k.startswith("obs/")}
    z1 = model.encode(obs)
    obs["object_state"] = obs["object_state"] + 100.0
    torch.testing.assert_close(model.encode(obs), z1)


def test_gradients_reach_every_parameter_and_are_finite():
    model = build_world_model(DEBUG, SPEC, seed=0)
    loss, metrics = model.loss(synthetic_batch())
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
    assert set(metrics) >= {
        "consistency",
        "reward",
        "success",
        "subtask",
        "state",
        "variance",
        "decoder",
    }


def test_decoder_does_not_shape_the_latent():
    model = build_world_model(
        dataclasses.replace(
            DEBUG,
            consistency_coef=0,
            state_coef=0,
            reward_coef=0,
            success_coef=0,
            subtask_coef=0,
            variance_coef=0,
        ),
        SPEC,
        seed=0,
    )
    loss, _ = model.loss(synthetic_batch())
    loss.backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.encoders.parameters())
    assert any(p.grad.abs().sum() > 0 for p in model.decoder.parameters())


def test_overfitting_one_batch_cuts_the_loss():
    model = build_world_model(
        dataclasses.replace(DEBUG, hidden_dim=64, decoder=False), SPEC, seed=0
    )
    batch = synthetic_batch(B=8, T=3)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        loss, _ = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.update_target()
        first = first if first is not None else float(loss.detach())
    assert float(loss.detach()) < 0.3 * first


def _trainer(tmp_path, seed=0, steps=8):
    spec = ObsSpec(
        image_keys=(), image_size=0, vector_keys=("proprio",), vector_dims=(6,), action_dim=2
    )
    config = dataclasses.replace(
        preset("state"),
        hidden_dim=32,
        latent_dim=16,
        batch_size=8,
        horizon=3,
        steps=steps,
        eval_every=4,
        checkpoint_every=2,
    )
    model = build_world_model(config, spec, seed)

    def sample(rng):
        return {
            k: v
            for k, v in synthetic_batch(spec, B=8, T=3, seed=int(rng.integers(1 << 30))).items()
        }

    return WorldModelTrainer(model, tmp_path, sample, seed=seed, tensorboard=False)


def test_same_seed_same_training_curve_bitwise(tmp_path):
    a = _trainer(tmp_path / "a").fit(progress=False)
    b = _trainer(tmp_path / "b").fit(progress=False)
    assert [r["loss"] for r in a] == [r["loss"] for r in b]
    c = _trainer(tmp_path / "c", seed=1).fit(progress=False)
    assert [r["loss"] for r in a] != [r["loss"] for r in c]


def test_resume_after_interruption_continues_the_same_curve(tmp_path):
    straight = _trainer(tmp_path / "straight").fit(progress=False)
    first = _trainer(tmp_path / "killed")
    first.fit(progress=False, stop_after=5)  # "killed" after 5 updates; the checkpoint holds step 4
    second = _trainer(tmp_path / "killed")
    assert second.resume() and second.step == 4
    resumed = second.fit(progress=False)
    assert [r["loss"] for r in resumed] == [r["loss"] for r in straight]
    # the run's training time: the killed call up to its checkpoint, then the resumed call
    assert 0 < second.seconds_before - second.seconds <= first.seconds
    assert second.total_seconds == second.seconds_before


def test_training_time_adds_up_over_fit_calls(tmp_path):
    trainer = _trainer(tmp_path, steps=4)
    trainer.fit(steps=2, progress=False)
    first = trainer.seconds
    trainer.fit(progress=False)
    assert trainer.total_seconds == pytest.approx(first + trainer.seconds)


def test_save_load_gives_identical_predictions(tmp_path):
    trainer = _trainer(tmp_path, steps=4)
    trainer.fit(progress=False)
    loaded, record = load_world_model(tmp_path)
    batch = synthetic_batch(trainer.model.spec, B=3, T=2, seed=5)
    obs = {k[4:]: v[:, 0] for k, v in batch.items() if k.startswith("obs/")}
    trainer.model.eval()
    with torch.no_grad():
        a = trainer.model.imagine(trainer.model.encode(obs), torch.as_tensor(batch["action"]))
        b = loaded.imagine(loaded.encode(obs), torch.as_tensor(batch["action"]))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert record["step"] == 4 and record["code_version"]


def test_bad_checkpoints_say_what_is_wrong(tmp_path):
    trainer = _trainer(tmp_path / "run", steps=2)
    trainer.fit(progress=False)
    path = tmp_path / "run" / "checkpoint.pt"
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_world_model(truncated)
    other = tmp_path / "policy.pt"
    save_checkpoint(other, "policy", {"config": {}})
    with pytest.raises(
        CheckpointError, match="holds a 'policy' checkpoint, expected 'world-model'"
    ):
        load_world_model(other)
    with pytest.raises(CheckpointError, match="trained on other observations: vector_dims"):
        load_world_model(path, spec=dataclasses.replace(trainer.model.spec, vector_dims=(7,)))
    changed = _trainer(tmp_path / "run", steps=2)
    changed.model.config = dataclasses.replace(changed.model.config, latent_dim=8)
    changed.config = changed.model.config
    with pytest.raises(CheckpointError, match="latent_dim: 16 vs 8"):
        changed.resume()


def test_latent_does_not_collapse(tmp_path):
    trainer = _trainer(tmp_path, steps=60)
    trainer.fit(progress=False)
    batch = synthetic_batch(trainer.model.spec, B=64, T=1, seed=11)
    with torch.no_grad():
        z = trainer.model.encode({"proprio": batch["obs/proprio"][:, 0]})
    std = z.std(0)
    assert (std > 0.1).float().mean() > 0.9  # nearly every dimension still varies across inputs
    singular = torch.linalg.svdvals(z - z.mean(0))
    effective_rank = float((singular.sum() ** 2) / (singular**2).sum())
    assert effective_rank > 4


def test_dream_env_passes_check_env_and_trains_with_sb3():
    from stable_baselines3 import PPO
    from stable_baselines3.common.logger import Logger

    model = build_world_model(DEBUG, SPEC, seed=0)
    batch = synthetic_batch(B=6, T=1)
    starts = {k[4:]: v[:, 0] for k, v in batch.items() if k.startswith("obs/")}
    env = DreamEnv(model, starts, max_steps=10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(
            env, skip_render_check=True
        )  # the dream env has no renderer (decode latents instead)
    agent = PPO("MlpPolicy", env, n_steps=32, batch_size=16, n_epochs=1, seed=0, device="cpu")
    agent.set_logger(Logger(folder=None, output_formats=[]))  # no /tmp/SB3-<time> folder
    agent.learn(total_timesteps=64)
    action, _ = agent.predict(env.reset(seed=0)[0])
    assert action.shape == (3,)


def test_trains_on_another_gymnasium_env_pusher(tmp_path):
    env = gymnasium.make("Pusher-v5")
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    rng = np.random.default_rng(0)
    episodes = []
    for seed in range(4):
        obs, _ = env.reset(seed=seed)
        o, a, r = [obs], [], []
        for _ in range(30):
            action = rng.uniform(-1, 1, act_dim).astype(np.float32)
            obs, reward, *_ = env.step(action)
            o.append(obs), a.append(action), r.append(reward)
        episodes.append((np.array(o, np.float32), np.array(a, np.float32), np.array(r, np.float32)))
    env.close()

    def sample(gen):
        picks = [episodes[int(i)] for i in gen.integers(0, len(episodes), 16)]
        starts = gen.integers(0, 30 - 4, 16)
        return {
            "obs/state": np.stack([o[s : s + 5] for (o, _, _), s in zip(picks, starts)]),
            "action": np.stack([a[s : s + 4] for (_, a, _), s in zip(picks, starts)]),
            "reward": np.stack([r[s : s + 4] for (_, _, r), s in zip(picks, starts)]),
        }

    spec = ObsSpec(
        image_keys=(),
        image_size=0,
        vector_keys=("state",),
        vector_dims=(obs_dim,),
        action_dim=act_dim,
    )
    config = dataclasses.replace(
        preset("state"),
        hidden_dim=64,
        latent_dim=32,
        horizon=4,
        batch_size=16,
        steps=80,
        eval_every=40,
        checkpoint_every=40,
    )
    model = build_world_model(config, spec, seed=0)
    model.set_normalizer(
        np.concatenate([e[0] for e in episodes]), np.concatenate([e[1] for e in episodes])
    )
    history = WorldModelTrainer(model, tmp_path, sample, tensorboard=False).fit(progress=False)
    assert history[-1]["loss"] < 0.7 * history[0]["loss"]


@pytest.fixture(scope="module")
def pick_place_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("pp")
    collect(
        "pick-place",
        4,
        root,
        seed=0,
        noise=0.2,
        progress=False,
        image_size=32,
        max_steps=25,
        terminate_on_success=False,
    )
    return root


def test_cli_train_world_model_and_imagine(pick_place_data, tmp_path, capsys):
    run = tmp_path / "wm"
    assert (
        main(
            [
                "train",
                "world-model",
                "--data",
                str(pick_place_data),
                "--out",
                str(run),
                "--preset",
                "debug",
                "--quiet",
            ]
        )
        == 0
    )
    result = json.loads((run / "eval.json").read_text())
    for h in ("1", "5", "10", "20"):
        row = result["per_horizon"][h]
        assert row["model"] >= 0 and row["nothing_moves"] >= 0 and row["linear"] >= 0
    assert (run / "eval.png").exists() and any((run / "tensorboard").iterdir())
    video = tmp_path / "imagined.mp4"
    assert (
        main(
            [
                "imagine",
                "--world-model",
                str(run),
                "--task",
                "pick-place",
                "--seed",
                "3",
                "--out",
                str(video),
                "--size",
                "64",
            ]
        )
        == 0
    )
    from embodied.media.video import read_video

    frames = read_video(video)
    assert frames.shape[0] == 25 and frames.shape[2] >= 3 * 64  # real | imagined | objects map
    out = capsys.readouterr().out
    printed = json.loads(out[out.rindex("\n{") + 1 :])  # imagine's summary, printed last
    errors = printed["object_error_cm_by_step"]
    assert len(errors) == 25 and all(e >= 0 for e in errors)


def test_train_refuses_a_run_of_another_dataset(pick_place_data, tmp_path):
    run = tmp_path / "wm"
    train_world_model(pick_place_data, run, preset_name="debug", progress=False)
    other = tmp_path / "other"
    collect(
        "pick-place",
        3,
        other,
        seed=1,
        progress=False,
        image_size=32,
        max_steps=25,
        terminate_on_success=False,
    )
    with pytest.raises(CheckpointError, match="cannot resume"):
        train_world_model(other, run, preset_name="debug", progress=False)


def test_aux_keys_are_targets_never_inputs():
    spec = dataclasses.replace(
        SPEC, vector_keys=("proprio", "objects_by_colour"), vector_dims=(4, 8)
    )
    model = build_world_model(DEBUG, spec, seed=0)
    assert model.input_vector_keys == ("proprio",) and model.aux_keys == ("objects_by_colour",)
    batch = synthetic_batch(spec)
    loss, metrics = model.loss(batch)
    loss.backward()
    assert "aux" in metrics and all(p.grad is not None for p in model.aux_head.parameters())
    obs = {k[4:]: v for k, v in batch.items() if k.startswith("obs/")}
    z = model.encode(obs)
    assert model.aux(z).shape == (4, 4, 8)
    obs["objects_by_colour"] = obs["objects_by_colour"] * 0 + 5.0  # not an input: z is unchanged
    torch.testing.assert_close(model.encode(obs), z)


SLOT_SPEC = dataclasses.replace(
    SPEC, vector_keys=("proprio", "objects_by_colour"), vector_dims=(4, 8)
)


@pytest.mark.parametrize("images,dynamics", [(True, "joint"), (False, "joint"), (True, "shared")])
def test_object_slots_are_the_aux_keys_carried_in_the_latent(images, dynamics):
    config = dataclasses.replace(
        DEBUG, object_slot_size=4, use_images=images, decoder=images, slot_dynamics=dynamics
    )
    spec = SLOT_SPEC if images else dataclasses.replace(SLOT_SPEC, image_keys=(), image_size=0)
    model = build_world_model(config, spec, seed=0)
    assert model.slot_count == 2 and model.aux_head is None
    assert model.latent_size == DEBUG.latent_dim + 8
    batch = synthetic_batch(spec, B=3, T=2)
    obs = {k[4:]: v for k, v in batch.items() if k.startswith("obs/")}
    z = model.encode(obs)
    assert z.shape == (3, 3, model.latent_size)
    torch.testing.assert_close(
        model.aux(z), z[..., DEBUG.latent_dim :] * model.vector_std[-8:] + model.vector_mean[-8:]
    )
    # untrained, the slots do not move whatever the action: "nothing moves" is where it starts
    z_seq = model.imagine(z[:, 0], torch.as_tensor(batch["action"]))
    torch.testing.assert_close(
        z_seq[..., DEBUG.latent_dim :], z[:, :1, DEBUG.latent_dim :].expand(-1, 2, -1)
    )
    loss, metrics = model.loss(batch)
    loss.backward()
    assert "aux" in metrics and "motion" in metrics
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
    obs["objects_by_colour"] = obs["objects_by_colour"] * 0 + 5.0  # still a target, never an input
    torch.testing.assert_close(model.encode(obs), z)


def test_checkpoint_configs_from_before_object_slots_load_without_them():
    saved = {k: v for k, v in preset("default").to_dict().items() if k != "object_slot_size"}
    assert LatentWorldModelConfig.from_dict(saved).object_slot_size == 0
    assert preset("default").object_slot_size == 4
    joint = {k: v for k, v in preset("default").to_dict().items() if k != "slot_dynamics"}
    assert LatentWorldModelConfig.from_dict(joint).slot_dynamics == "joint"  # as they were built
    assert preset("default").slot_dynamics == "shared"


def test_object_slots_must_divide_the_aux_keys():
    with pytest.raises(ValueError, match="object_slot_size 3 does not divide .* 8 values"):
        build_world_model(dataclasses.replace(DEBUG, object_slot_size=3), SLOT_SPEC, seed=0)
    with pytest.raises(ValueError, match="object_slot_size must be >= 0"):
        dataclasses.replace(DEBUG, object_slot_size=-1)
    with pytest.raises(ValueError, match="slot_dynamics must be 'joint' or 'shared', got 'each'"):
        dataclasses.replace(DEBUG, object_slot_size=4, slot_dynamics="each")


PERCEIVED_SPEC = dataclasses.replace(
    SPEC,
    vector_keys=("proprio", "objects_by_colour", "perceived_objects"),
    vector_dims=(4, 8, 8),
)


def test_object_slots_can_start_from_a_given_key():
    """With ``object_input_key`` the slots are that key's values in the aux keys' units (a learned
    correction starts at zero); the key is not an input of the free latent."""
    config = dataclasses.replace(DEBUG, object_slot_size=4, object_input_key="perceived_objects")
    model = build_world_model(config, PERCEIVED_SPEC, seed=0)
    assert "perceived_objects" not in model.input_vector_keys
    assert not hasattr(model.encoders["image_front"], "slot_maps")
    batch = synthetic_batch(PERCEIVED_SPEC, B=3, T=2)
    model.vector_mean[4:12] = 0.5
    model.vector_std[4:12] = 2.0
    obs = {k[4:]: v for k, v in batch.items() if k.startswith("obs/")}
    z = model.encode(obs)
    torch.testing.assert_close(
        model.aux(z), torch.as_tensor(obs["perceived_objects"]), rtol=1e-5, atol=1e-5
    )
    loss, metrics = model.loss(batch)
    loss.backward()
    assert model.slots["readout"][-1].weight.grad.abs().sum() > 0  # the correction learns
    obs["objects_by_colour"] = obs["objects_by_colour"] * 0 + 5.0  # the target is not read
    torch.testing.assert_close(model.encode(obs), z)


def test_object_input_key_errors_name_the_problem():
    config = dataclasses.replace(DEBUG, object_slot_size=4, object_input_key="perceived_objects")
    with pytest.raises(ValueError, match="'perceived_objects' is not a vector key of the data"):
        build_world_model(config, SLOT_SPEC, seed=0)
    short = dataclasses.replace(PERCEIVED_SPEC, vector_dims=(4, 8, 12))
    with pytest.raises(ValueError, match="has 12 values per step, the auxiliary keys .* 8"):
        build_world_model(config, short, seed=0)
    with pytest.raises(ValueError, match="needs object slots"):
        dataclasses.replace(DEBUG, object_input_key="perceived_objects")
