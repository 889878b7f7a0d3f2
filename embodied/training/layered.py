"""Train an end-to-end or hierarchical agent by imitation from demo datasets, resumably.

    RUN/
      system1/checkpoint.pt    System 1 training state (atomic; resumed when present)
      system1/tensorboard/
      system2/checkpoint.pt    the planner's (hierarchical agents only)
      agent.pt                 the agent: every network, config, tokenizer and the world model
      train.json               what was trained on, how long it took, the final losses

Equal compute: the end-to-end agent's System 1 gets as many updates as the hierarchical agent's
System 1 and planner together (the two networks have the same backbone size).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embodied.data.dataset import DatasetError, EpisodeDataset, FrameStack
from envs.language import SUBTASK_VOCAB
from policies.agents import AGENTS, AgentBundle
from policies.config import PlannerConfig, VLAConfig, planner_preset, policy_preset
from policies.tokenizer import WordTokenizer
from sandbox_common.atomic import write_json_atomic
from world_models import ObsSpec, Trainer, load_world_model
from world_models.trainer import resolve_device

IMAGE_PREFIX = "image_"
PROPRIO = "proprio"
AGENT_FILE = "agent.pt"
VALIDATION_EVERY = 10
ENV_FIELDS = ("obs_mode", "cameras", "image_size")
"""Env settings that fix the observation layout; recorded in the agent and applied at evaluation."""


@dataclass
class Demos:
    """Every episode of one or more datasets, concatenated for fast batch sampling."""

    images: dict[str, np.ndarray]
    """``(N_obs, H, W, 3) uint8`` per image key, all episodes back to back."""
    proprio: np.ndarray
    """``(N_obs, P)``."""
    actions: np.ndarray
    """``(N_act, A)``: the experts' clean actions."""
    subtask_ids: np.ndarray
    """``(N_act,)``: the subtask executed at each step (index into SUBTASK_VOCAB)."""
    pointer: np.ndarray
    """``(N_obs,)``: the plan position at each observation (subtasks completed so far)."""
    obs_start: np.ndarray
    act_start: np.ndarray
    lengths: np.ndarray
    """``(E,)`` steps per episode (observations: one more)."""
    instruction_tokens: np.ndarray
    """``(E, L)``."""
    plans: list[np.ndarray]
    """Per episode, the plan's subtask ids followed by 0 (``none``)."""

    def __len__(self) -> int:
        return len(self.lengths)


def open_datasets(roots: list[str | Path]) -> tuple[list[EpisodeDataset], dict[str, Any]]:
    """Open dataset directories and check they share one observation layout."""
    if not roots:
        raise DatasetError("no dataset directories given")
    datasets = [EpisodeDataset(r) for r in roots]
    layouts = {}
    for ds in datasets:
        cfg = ds.meta.get("env_config", {})
        layout = {k: cfg.get(k) for k in ENV_FIELDS}
        layout["cameras"] = list(layout["cameras"] or [])
        if layout["obs_mode"] != "pixels" or not layout["cameras"]:
            raise DatasetError(
                f"{ds.root}: the agents see camera images; this dataset was collected with "
                f"obs_mode={layout['obs_mode']!r}, cameras={layout['cameras']} (collect with pixels)"
            )
        if PROPRIO not in ds.obs_keys:
            raise DatasetError(f"{ds.root}: no {PROPRIO!r} observations; it has {ds.obs_keys}")
        layouts[str(ds.root)] = layout
    return datasets, one_layout(layouts)


def one_layout(layouts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The observation layout every dataset shares (dataset root -> layout); a clear error when
    they differ."""
    first = next(iter(layouts.values()))
    if any(layout != first for layout in layouts.values()):
        raise DatasetError(
            f"datasets have different observation layouts: {layouts}; collect them with the same "
            "--cameras and --image-size"
        )
    return first


def load_demos(
    datasets: list[EpisodeDataset],
    tokenizer: WordTokenizer,
    max_len: int,
    episodes: list[tuple[int, int]],
) -> Demos:
    """``episodes``: (dataset index, episode index) pairs to load."""
    image_keys = sorted(k for k in datasets[0].obs_keys if k.startswith(IMAGE_PREFIX))
    frames = FrameStack(datasets, episodes, image_keys)
    proprio, actions, subtasks, pointers, lengths, tokens, plans = [], [], [], [], [], [], []
    for d, e in episodes:
        ep = datasets[d].read(e)
        frames.add(ep)
        proprio.append(ep.obs[PROPRIO].astype(np.float32))
        actions.append(ep.steps["expert_action"].astype(np.float32))
        subtasks.append(ep.steps["subtask_id"].astype(np.int64))
        index = ep.steps["subtask_index"].astype(np.int64)
        pointers.append(np.concatenate([[0], index]))
        lengths.append(len(ep))
        tokens.append(tokenizer.encode(ep.instruction, max_len))
        plan = [SUBTASK_VOCAB.index(label) for label in ep.meta["plan"]]
        plans.append(np.array([*plan, 0], dtype=np.int64))
    lengths_a = np.array(lengths, dtype=np.int64)
    return Demos(
        images=frames.arrays,
        proprio=np.concatenate(proprio),
        actions=np.concatenate(actions),
        subtask_ids=np.concatenate(subtasks),
        pointer=np.concatenate(pointers),
        obs_start=np.concatenate([[0], np.cumsum(lengths_a + 1)[:-1]]),
        act_start=np.concatenate([[0], np.cumsum(lengths_a)[:-1]]),
        lengths=lengths_a,
        instruction_tokens=np.stack(tokens),
        plans=plans,
    )


class BatchSampler:
    """``system1(rng)`` and ``planner(rng)`` batches from :class:`Demos` (see ``policies.vla`` and
    ``policies.planner`` for the layouts)."""

    def __init__(
        self, demos: Demos, batch_size: int, chunk: int, condition: str, label_tokens: np.ndarray
    ) -> None:
        if condition not in ("instruction", "subtask"):
            raise ValueError(f"condition must be instruction or subtask, got {condition!r}")
        self.demos = demos
        self.batch_size = batch_size
        self.chunk = chunk
        self.condition = condition
        self.label_tokens = label_tokens
        """``(len(SUBTASK_VOCAB), L)`` tokens of every subtask label."""

    def _obs(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        out = {f"obs/{k}": v[rows] for k, v in self.demos.images.items()}
        out[f"obs/{PROPRIO}"] = self.demos.proprio[rows]
        return out

    def system1(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        d = self.demos
        ep = rng.integers(0, len(d), self.batch_size)
        t = (rng.random(self.batch_size) * d.lengths[ep]).astype(np.int64)
        offsets = t[:, None] + np.arange(self.chunk)[None]
        mask = offsets < d.lengths[ep][:, None]
        act_rows = d.act_start[ep][:, None] + np.minimum(offsets, d.lengths[ep][:, None] - 1)
        batch = self._obs(d.obs_start[ep] + t)
        batch["actions"] = d.actions[act_rows]
        batch["action_mask"] = mask.astype(np.float32)
        if self.condition == "instruction":
            batch["tokens"] = d.instruction_tokens[ep]
        else:
            batch["tokens"] = self.label_tokens[d.subtask_ids[d.act_start[ep] + t]]
        return batch

    def planner(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        d = self.demos
        ep = rng.integers(0, len(d), self.batch_size)
        t = (rng.random(self.batch_size) * (d.lengths[ep] + 1)).astype(np.int64)
        rows = d.obs_start[ep] + t
        pointer = d.pointer[rows]
        u = rng.random(self.batch_size)
        back = np.maximum(pointer - rng.integers(1, 3, self.batch_size), 0)
        index = np.where(u < 0.5, pointer, np.where(u < 0.85, back, pointer + 1))
        index = np.where((u >= 0.5) & (u < 0.85) & (pointer == 0), 0, index)
        done = index < pointer
        subtask = np.array(
            [d.plans[e][min(i, len(d.plans[e]) - 1)] for e, i in zip(ep, index)], dtype=np.int64
        )
        batch = self._obs(rows)
        batch["tokens"] = d.instruction_tokens[ep]
        batch["plan_index"] = index
        batch["subtask"] = subtask
        batch["done"] = done.astype(np.float32)
        return batch


def split_episodes(
    datasets: list[EpisodeDataset],
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(train, validation) (dataset, episode) pairs: every ``VALIDATION_EVERY``-th episode is
    held out (the first one only, for tiny datasets)."""
    pairs = [(d, e) for d, ds in enumerate(datasets) for e in range(len(ds))]
    val_pairs = pairs[::VALIDATION_EVERY] if len(pairs) >= 2 * VALIDATION_EVERY else pairs[:1]
    held = set(val_pairs)
    return [p for p in pairs if p not in held] or pairs, val_pairs


def data_summary(
    datasets: list[EpisodeDataset], train_pairs: list, val_pairs: list, lengths: np.ndarray
) -> dict[str, Any]:
    """What a run was trained on, recorded in its checkpoints and ``train.json``."""
    return {
        "root": [str(ds.root) for ds in datasets],
        "tasks": sorted({ds.meta["task"] for ds in datasets}),
        "episodes_train": len(train_pairs),
        "episodes_val": len(val_pairs),
        "steps_train": int(lengths.sum()),
    }


def _fixed_batches(sample, seed: int, count: int) -> list[dict[str, np.ndarray]]:
    return [sample(np.random.default_rng([seed, 10**6 + i])) for i in range(count)]


def train_agent(
    kind: str,
    data: list[str | Path],
    out: str | Path,
    preset: str = "default",
    head: str | None = None,
    world_model: str | Path | None = None,
    seed: int = 0,
    steps: int | None = None,
    planner_steps: int | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    tensorboard: bool = True,
    device: str = "cpu",
) -> dict[str, Any]:
    """Train (or resume) an agent; returns the summary written to ``RUN/train.json``.

    ``steps`` / ``planner_steps`` override the presets' update counts; ``stop_after`` ends the call
    after that many updates of System 1 training, as a kill would (tests of resume).
    """
    AGENTS.get(kind)
    s1_config: VLAConfig = policy_preset(preset, head=head)
    p_config: PlannerConfig = planner_preset(preset)
    if planner_steps is not None:
        p_config = replace(p_config, train=replace(p_config.train, steps=planner_steps))
    s1_steps = steps if steps is not None else s1_config.train.steps
    if kind == "end-to-end":
        s1_steps += p_config.train.steps  # equal compute: the planner's updates go to System 1
    s1_config = replace(s1_config, train=replace(s1_config.train, steps=s1_steps))
    if kind == "hierarchical" and world_model is None:
        print("note: no --world-model given; System 2 will not check its plans in imagination")
    out = Path(out)
    start = time.perf_counter()
    torch_device = resolve_device(device)

    datasets, env_layout = open_datasets(list(data))
    tasks = sorted({ds.meta["task"] for ds in datasets})
    instructions = [ds.meta_of(e)["instruction"] for ds in datasets for e in range(len(ds))]
    tokenizer = WordTokenizer.fit([*instructions, *SUBTASK_VOCAB])
    max_len = s1_config.fusion.max_text_len
    train_pairs, val_pairs = split_episodes(datasets)
    demos = load_demos(datasets, tokenizer, max_len, train_pairs)
    val_demos = load_demos(datasets, tokenizer, max_len, val_pairs)
    image_keys = tuple(sorted(demos.images))
    spec = ObsSpec(
        image_keys=image_keys,
        image_size=int(demos.images[image_keys[0]].shape[1]),
        vector_keys=(PROPRIO,),
        vector_dims=(int(demos.proprio.shape[1]),),
        action_dim=int(demos.actions.shape[1]),
    )
    label_tokens = tokenizer.encode_batch(list(SUBTASK_VOCAB), max_len)
    condition = "instruction" if kind == "end-to-end" else "subtask"
    data_info = data_summary(datasets, train_pairs, val_pairs, demos.lengths)
    report: dict[str, Any] = {
        "kind": kind,
        "preset": preset,
        "head": s1_config.head,
        "seed": seed,
        "data": data_info,
    }

    def fit(name: str, model, config, sample, val_sample) -> Trainer:
        sampler_batches = _fixed_batches(val_sample, seed, 4)
        trainer = Trainer(
            model,
            out / name,
            sample,
            kind=f"{name}-training",
            settings=config.train,
            identity={
                "agent": kind,
                "config": config.to_dict(),
                "spec": spec.to_dict(),
                "vocab": list(tokenizer.vocab),
            },
            seed=seed,
            data_info=data_info,
            validation=sampler_batches,
            tensorboard=tensorboard,
            desc=f"train {name}",
            device=torch_device,
        )
        resumed = trainer.resume()
        trainer.fit(progress=progress, stop_after=stop_after)
        model.cpu()  # agents act on the CPU
        last = trainer.history[-1] if trainer.history else {}
        report[name] = {
            "steps": trainer.step,
            "resumed": resumed,
            "train_seconds_this_call": round(trainer.seconds, 1),
            "train_seconds": round(trainer.total_seconds, 3),
            "final": {k: v for k, v in last.items() if k.startswith("val_") or k == "loss"},
        }
        return trainer

    torch.manual_seed(seed)
    system1 = s1_config.build(spec, len(tokenizer))
    system1.backbone.set_normalizer(demos.proprio)
    train_s = BatchSampler(
        demos, s1_config.train.batch_size, s1_config.chunk, condition, label_tokens
    )
    val_s = BatchSampler(
        val_demos, s1_config.train.batch_size, s1_config.chunk, condition, label_tokens
    )
    s1_trainer = fit("system1", system1, s1_config, train_s.system1, val_s.system1)
    if s1_trainer.step < s1_steps:
        return {"stopped_at": s1_trainer.step}

    planner = None
    if kind == "hierarchical":
        torch.manual_seed(seed + 1)
        planner = p_config.build(spec, len(tokenizer), len(SUBTASK_VOCAB))
        planner.backbone.set_normalizer(demos.proprio)
        train_p = BatchSampler(demos, p_config.train.batch_size, 1, "instruction", label_tokens)
        val_p = BatchSampler(val_demos, p_config.train.batch_size, 1, "instruction", label_tokens)
        fit("system2", planner, p_config, train_p.planner, val_p.planner)

    wm = None
    if kind == "hierarchical" and world_model is not None:
        wm, record = load_world_model(world_model)
        missing = [
            k for k in (*wm.image_keys, *wm.input_vector_keys) if k not in datasets[0].obs_keys
        ]
        if missing or (wm.image_keys and wm.spec.image_size != spec.image_size):
            raise DatasetError(
                f"{world_model}: the world model reads {list(wm.image_keys)} at {wm.spec.image_size} px "
                f"and {list(wm.input_vector_keys)}; the demos have {datasets[0].obs_keys} at {spec.image_size} px"
            )
        report["world_model"] = {"path": str(world_model), "data": record.get("data", {})}

    bundle = AgentBundle(
        kind=kind,
        tokenizer=tokenizer,
        spec=spec,
        system1=system1.eval(),
        subtasks=SUBTASK_VOCAB,
        env=env_layout,
        tasks=tuple(tasks),
        planner=planner.eval() if planner is not None else None,
        world_model=wm,
        info={"preset": preset, "seed": seed, "data": data_info},
    )
    bundle.save(out / AGENT_FILE)
    report["seconds_this_call"] = round(time.perf_counter() - start, 1)
    write_json_atomic(out / "train.json", report)
    return report


def summary_line(report: dict[str, Any]) -> str:
    parts = [f"{report['kind']} agent ({report['head']} head)"]
    for name in ("system1", "system2"):
        if name in report:
            final = report[name]["final"]
            parts.append(
                f"{name}: {report[name]['steps']} steps, "
                + json.dumps({k: round(v, 4) for k, v in final.items()})
            )
    return "; ".join(parts)
