"""Imagined vs real: play one action sequence in the simulator and in the world model, side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

import envs
from embodied.agent import ExpertAgent
from embodied.media.video import annotate, side_by_side, write_video
from embodied.training.world_model import (
    OBJECTS_BY_COLOUR,
    PERCEIVED_OBJECTS,
    load_object_perception,
    perceived_objects,
)
from envs.base import INSTRUCTION, OBJECT_KINDS
from envs.language import COLORS
from world_models import CheckpointError, ObsSpec, load_world_model


def _upscale(frame: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(frame).resize((size, size), Image.NEAREST))


def _error_panel(errors: np.ndarray, upto: int, width: int, height: int, label: str) -> np.ndarray:
    """A small line chart of ``errors[:upto + 1]`` on a fixed scale."""
    image = Image.new("RGB", (width, height), (18, 18, 22))
    draw = ImageDraw.Draw(image)
    top = max(float(np.nanmax(errors)), 1e-6)
    margin = 6
    w, h = width - 2 * margin, height - 2 * margin - 12
    n = len(errors)
    points = [
        (margin + w * i / max(n - 1, 1), margin + 12 + h * (1 - errors[i] / top))
        for i in range(min(upto + 1, n))
    ]
    draw.line([(margin, margin + 12 + h), (margin + w, margin + 12 + h)], fill=(90, 90, 90))
    if len(points) > 1:
        draw.line(points, fill=(255, 170, 40), width=2)
    draw.text(
        (margin, 1),
        f"{label}  step {upto + 1}: {errors[min(upto, n - 1)]:.3f}  (max {top:.3f})",
        fill=(230, 230, 230),
    )
    return np.asarray(image)


MAP_HALF_WIDTH = 0.25
"""Half the side of the table area the objects panel shows (m), centred on the arm's base line."""


def _objects_panel(true: np.ndarray, predicted: np.ndarray, size: int) -> np.ndarray:
    """A top-down map of ``objects_by_colour`` rows: each object present in ``true`` as a filled
    marker (square: cube, ring: pad or target) in its colour, the model's guess for it as a cross,
    joined by a line; the title gives the mean position error (cm) over those objects."""
    image = Image.new("RGB", (size, size), (30, 30, 34))
    draw = ImageDraw.Draw(image)
    margin = 8

    def pixel(xy: np.ndarray) -> tuple[float, float]:
        u = (xy[1] + MAP_HALF_WIDTH) / (2 * MAP_HALF_WIDTH)  # table y to the right
        v = (xy[0] + MAP_HALF_WIDTH) / (
            2 * MAP_HALF_WIDTH
        )  # table x downwards (towards the camera)
        return margin + u * (size - 2 * margin), margin + 12 + v * (size - 2 * margin - 12)

    rows_true = true.reshape(len(COLORS), len(OBJECT_KINDS), 4)
    rows_pred = predicted.reshape(len(COLORS), len(OBJECT_KINDS), 4)
    errors = []
    for c, rgb in enumerate(COLORS.values()):
        fill = tuple(int(255 * v) for v in rgb)
        for k, kind in enumerate(OBJECT_KINDS):
            if rows_true[c, k, 0] < 0.5:
                continue
            (tu, tv), (pu, pv) = pixel(rows_true[c, k, 1:3]), pixel(rows_pred[c, k, 1:3])
            errors.append(float(np.linalg.norm(rows_true[c, k, 1:4] - rows_pred[c, k, 1:4])))
            r = 5
            if kind == "cube":
                draw.rectangle((tu - r, tv - r, tu + r, tv + r), fill=fill)
            else:
                draw.ellipse(
                    (tu - r - 2, tv - r - 2, tu + r + 2, tv + r + 2), outline=fill, width=3
                )
            draw.line((tu, tv, pu, pv), fill=(200, 200, 200), width=1)
            draw.line((pu - r, pv - r, pu + r, pv + r), fill=fill, width=2)
            draw.line((pu - r, pv + r, pu + r, pv - r), fill=fill, width=2)
    title = f"x imagined: {100 * np.mean(errors):.1f} cm off" if errors else "objects"
    draw.text((margin, 1), title, fill=(230, 230, 230))
    return np.asarray(image)


def make_env_of(record: dict[str, Any], task: str):
    """``task`` with the cameras and episode settings a world model was trained on, never
    ending early (the whole episode plays out)."""
    env_config = dict(record["data"].get("env_config") or {})
    keep = {"image_size", "cameras", "max_steps", "frame_skip"}
    overrides = {
        k: (tuple(v) if isinstance(v, list) else v) for k, v in env_config.items() if k in keep
    }
    return envs.make(task, **overrides, obs_mode="pixels", terminate_on_success=False)


def play_expert(env, seed: int, noise: float) -> tuple[list[dict], list[np.ndarray], dict]:
    """One episode of the noisy scripted expert: its ``T + 1`` observations, ``T`` actions and
    the first step's info (the instruction)."""
    agent = ExpertAgent(env, noise=noise, seed=seed)
    obs, info = env.reset(seed=seed)
    agent.reset(info["instruction"])
    observations, actions, done = [obs], [], False
    while not done:
        action = agent.act(obs)
        obs, _, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        actions.append(action)
        done = terminated or truncated
    return observations, actions, info


def add_object_inputs(model, record: dict[str, Any], env, observations: list[dict], name) -> None:
    """Add the object vectors ``model`` reads beside the env's observations, in place: the true
    objects by colour (a training target) and the objects its record's perception reports (where
    the slots start). ``env`` is the episode's, still open; ``name`` names the model in errors."""
    if OBJECTS_BY_COLOUR in model.spec.vector_keys:
        for o in observations:
            o[OBJECTS_BY_COLOUR] = env.objects_by_colour(o["object_state"])
    if PERCEIVED_OBJECTS in model.spec.vector_keys:  # the slots start from what perception reports
        source = record["data"].get("perception")
        if not source:
            raise CheckpointError(
                f"{name}: reads {PERCEIVED_OBJECTS} but its record names no perception"
            )
        perception = load_object_perception(source)
        frames = {
            k: np.stack([o[k] for o in observations])
            for k in observations[0]
            if k.startswith("image_") or k == "proprio"
        }
        for o, row in zip(observations, perceived_objects(perception, frames)):
            o[PERCEIVED_OBJECTS] = row


@torch.no_grad()
def imagine_video(
    world_model: str | Path,
    task: str,
    seed: int,
    out: str | Path,
    noise: float = 0.1,
    size: int = 256,
) -> dict[str, Any]:
    """Roll a noisy scripted expert in the simulator; replay its actions in the world model from the
    encoded first observation; write ``real | imagined`` with the prediction error over time."""
    model, record = load_world_model(world_model)
    if model.decoder is None:
        raise CheckpointError(
            f"{world_model}: this world model has no image decoder, so there is nothing to watch"
        )
    env = make_env_of(record, task)
    try:
        observations, actions, info = play_expert(env, seed, noise)
        add_object_inputs(model, record, env, observations, world_model)
    finally:
        env.close()
    problems = _layout_differences(model.spec, observations[0], int(env.action_space.shape[0]))
    if problems:
        raise CheckpointError(
            f"{world_model}: trained on observations unlike task {task!r}'s: " + "; ".join(problems)
        )

    keys = list(model.spec.image_keys + model.spec.vector_keys)
    stacked = {k: np.stack([o[k] for o in observations]) for k in keys}
    z0 = model.encode({k: v[:1] for k, v in stacked.items()})
    z = model.imagine(z0, torch.as_tensor(np.stack(actions)[None], dtype=torch.float32))[0]
    imagined = model.decode(z).numpy()
    first_key = model.spec.image_keys[0]
    real = stacked[first_key][1:]
    pixel_error = ((imagined.astype(np.float32) - real.astype(np.float32)) / 255.0) ** 2
    pixel_error = pixel_error.mean(axis=(1, 2, 3))
    state_error = None
    if model.input_vector_keys:
        true_vec = np.concatenate([stacked[k][1:] for k in model.input_vector_keys], 1)
        pred_vec = model.state(z).numpy()
        std = model.vector_std.numpy()[model.input_index.numpy()]
        state_error = (((pred_vec - true_vec) / std) ** 2).mean(1)
    errors, label = (
        (state_error, "state error") if state_error is not None else (pixel_error, "pixel error")
    )
    true_objects = pred_objects = None
    if model.aux_keys == (OBJECTS_BY_COLOUR,):
        true_objects = stacked[OBJECTS_BY_COLOUR][1:]
        pred_objects = model.aux(z).numpy()
        object_cm = np.asarray(_object_errors_cm(true_objects, pred_objects))
        errors, label = np.nan_to_num(object_cm), "object error (cm)"

    frames = []
    panel_h = max(48, size // 4)
    for t in range(len(actions)):
        left = annotate(_upscale(real[t], size), "real", "", t + 1)
        right = annotate(_upscale(imagined[t], size), "imagined (open loop)", "", t + 1)
        top = side_by_side(left, right)
        if true_objects is not None:
            panel = _objects_panel(true_objects[t], pred_objects[t], top.shape[0])
            top = side_by_side(top, panel)
        chart = _error_panel(errors, t, top.shape[1], panel_h, label)
        frames.append(np.concatenate([top, chart], axis=0))
    path = write_video(frames, out, fps=10)
    return {
        "task": task,
        "seed": seed,
        "steps": len(actions),
        "file": str(path),
        "instruction": observations[0][INSTRUCTION],
        "mean_pixel_mse": float(pixel_error.mean()),
        "state_error_by_step": None
        if state_error is None
        else [round(float(e), 4) for e in state_error],
        "object_error_cm_by_step": None
        if true_objects is None
        else [round(float(e), 2) for e in object_cm],
    }


def _object_errors_cm(true: np.ndarray, predicted: np.ndarray) -> list[float]:
    """Per step, the mean distance (cm) between each present object and the model's guess for it."""
    t = true.reshape(len(true), -1, 4)
    p = predicted.reshape(len(predicted), -1, 4)
    present = t[..., 0] > 0.5
    dist = np.linalg.norm(t[..., 1:] - p[..., 1:], axis=-1)
    return [100 * float(d[m].mean()) if m.any() else float("nan") for d, m in zip(dist, present)]


def _layout_differences(spec: ObsSpec, obs: dict[str, Any], action_dim: int) -> list[str]:
    """What differs between the layout a model was trained on and an observation of this env."""
    problems = []
    wanted = dict(zip(spec.vector_keys, spec.vector_dims))
    wanted |= {k: (spec.image_size, spec.image_size, 3) for k in spec.image_keys}
    for key, shape in wanted.items():
        if key not in obs:
            problems.append(f"the env has no observation {key!r}")
        elif np.shape(obs[key]) != (shape if isinstance(shape, tuple) else (shape,)):
            problems.append(f"{key}: trained on shape {shape}, the env gives {np.shape(obs[key])}")
    if action_dim != spec.action_dim:
        problems.append(f"action_dim: trained on {spec.action_dim}, the env has {action_dim}")
    return problems


__all__ = ["imagine_video"]
