"""The reference imitation baselines, the floor every layered agent must beat (like robomimic's BC):

* ``bc-state``: a per-step MLP on privileged, task-relative state (the hand, and the objects the
  instruction names, as roles: see :mod:`envs.task_features`), trained on the experts' clean
  actions; the gripper is executed as +-1.
* ``bc-pixels``: a plain convolutional policy on the cameras + proprioception + the instruction.
  The instruction (the colour/kind/direction of each object it names) modulates every conv layer
  (FiLM) from the first, so "which cube" is bound to the pixels early; random-shift
  augmentation; a chunk of actions per inference, executed 4 at a time.

Config, network and agent of each live here together; :class:`BCBundle` is their checkpoint
(the one format, ``kind = "agent"``), loaded by :func:`policies.bundles.load_agent`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from envs.task_features import (
    INSTRUCTION_DIM,
    PROPRIO_USED,
    GroundedState,
    TaskFeatures,
    instruction_vector,
)
from policies.agent_registry import AGENTS
from policies.bc_config import BCPixelsConfig
from policies.chunking import ActionChunkQueue
from policies.config import POLICIES, POLICY_BUILDERS
from policies.state_mlp import (
    GRIPPER,
    BCStatePolicy,
    Normalizer,
    executable,
    mlp,
)
from policies.two_systems import HIERARCHICAL_KINDS, IMAGINING_KINDS, check_planner
from world_models.checkpoint import CheckpointError, save_checkpoint

KIND = "agent"
BC_KINDS = ("bc-state", "bc-pixels", "bc-keypoints", "hierarchical-keypoints", "end-to-end",
            "hierarchical")
PROPRIO = "proprio"
OBJECT_STATE = "object_state"


# ---------------------------------------------------------------------- networks


def random_shift(images: torch.Tensor, pad: int, generator: torch.Generator | None) -> torch.Tensor:
    """DrQ-style augmentation: pad ``(B, H, W, 3)`` images by replicating edges, crop back at a
    random offset per image."""
    if pad <= 0:
        return images
    b, h, w, _ = images.shape
    dev = images.device
    padded = nn.functional.pad(images.permute(0, 3, 1, 2).float(), (pad,) * 4, mode="replicate")
    offsets = torch.randint(0, 2 * pad + 1, (b, 2), generator=generator).to(dev)  # (y, x)
    rows = offsets[:, :1] + torch.arange(h, device=dev)[None]  # (B, H)
    cols = offsets[:, 1:] + torch.arange(w, device=dev)[None]  # (B, W)
    batch = torch.arange(b, device=dev)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.to(images.dtype)





class FiLMConvStem(nn.Module):
    """A camera's conv stem; every conv layer but the last is scaled and shifted by the
    instruction: ``images (B, H, W, 3) uint8 -> (B, hidden)``."""

    def __init__(self, channels: tuple[int, ...], image_size: int, hidden: int, cond: int):
        super().__init__()
        convs, films, size, c_in = [], [], image_size, 3
        for i, c in enumerate(channels):
            kernel, stride, pad = (8, 4, 2) if i == 0 else (3, 2 if i == 1 else 1, 1)
            convs.append(nn.Conv2d(c_in, c, kernel, stride, pad))
            if i < len(channels) - 1:
                films.append(nn.Linear(cond, 2 * c))
            size = (size + 2 * pad - kernel) // stride + 1
            c_in = c
        self.convs = nn.ModuleList(convs)
        self.films = nn.ModuleList(films)
        for film in self.films:  # start as the identity modulation
            nn.init.zeros_(film.weight)
            nn.init.zeros_(film.bias)
        self.proj = nn.Linear(c_in * size * size, hidden)

    def forward(self, images: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = images
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i < len(self.films):
                gamma, beta = self.films[i](cond).chunk(2, dim=-1)
                x = x * (1.0 + gamma[:, :, None, None]) + beta[:, :, None, None]
            x = F.relu(x)
        return F.relu(self.proj(x.flatten(1)))


@POLICY_BUILDERS.register(BCPixelsConfig)
class BCPixelsPolicy(nn.Module):
    """``images {key: (B, H, W, 3) uint8}, proprio (B, P), instruction (B, I) -> chunk (B, K, A)``."""

    def __init__(
        self,
        config: BCPixelsConfig,
        image_keys: tuple[str, ...],
        image_size: int,
        action_dim: int = 5,
    ) -> None:
        super().__init__()
        self.config = config
        self.image_keys = tuple(image_keys)
        self.image_size = image_size
        self.action_dim = action_dim
        cond = config.hidden // 2
        self.instruction = nn.Sequential(nn.Linear(INSTRUCTION_DIM, cond), nn.ReLU())
        self.stems = nn.ModuleDict(
            {
                key: FiLMConvStem(config.channels, image_size, config.hidden, cond)
                for key in self.image_keys
            }
        )
        self.normalizer = Normalizer(len(PROPRIO_USED))
        width = config.hidden * len(self.image_keys) + len(PROPRIO_USED) + cond
        self.head = mlp([width, config.hidden, config.hidden, config.chunk * action_dim])

    def forward(self, *inputs, **options) -> torch.Tensor:
        """The inputs of :meth:`embed` -> the action chunk ``(B, K, A)``."""
        out = self.head[-1](self.embed(*inputs, **options))
        return out.view(-1, self.config.chunk, self.action_dim)

    def embed(
        self,
        images: dict[str, torch.Tensor],
        proprio: torch.Tensor,
        instruction: torch.Tensor,
        shift: int = 0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """The head's last hidden layer ``(B, hidden)``: what a residual policy reads."""
        cond = self.instruction(instruction)
        feats = []
        for key in self.image_keys:
            x = images[key]
            if shift:
                x = random_shift(x, shift, generator)  # integer crop: uint8 stays exact
            x = x.permute(0, 3, 1, 2).float() * (1.0 / 255.0)
            feats.append(self.stems[key](x, cond))
        p = self.normalizer(proprio[:, list(PROPRIO_USED)].float())
        return self.head[:-1](torch.cat([*feats, p, cond], dim=-1))

    def loss(self, batch: dict[str, Any], generator: torch.Generator | None = None):
        """``batch``: ``obs/<image key>``, ``obs/proprio``, ``instruction (B, I)``, ``actions
        (B, K, A)``, ``action_mask (B, K)``; masked mean squared error over the chunk."""
        device = self.normalizer.mean.device
        images = {k: torch.as_tensor(batch[f"obs/{k}"], device=device) for k in self.image_keys}
        pred = self(
            images,
            torch.as_tensor(batch[f"obs/{PROPRIO}"], device=device),
            torch.as_tensor(batch["instruction"], device=device),
            shift=self.config.train.shift if self.training else 0,
            generator=generator,
        )
        target = torch.as_tensor(batch["actions"], device=device)
        mask = torch.as_tensor(batch["action_mask"], device=device)[..., None]
        err = ((pred - target) ** 2 * mask).sum() / (mask.sum() * self.action_dim)
        first = pred[:, 0, GRIPPER], target[:, 0, GRIPPER]
        grip_ok = (torch.sign(first[0]) == torch.sign(first[1])).float().mean()
        return err, {"loss": float(err.detach()), "gripper_accuracy": float(grip_ok)}


# ---------------------------------------------------------------------- agents


@AGENTS.register("bc-state")
class BCStateAgent:
    """Acts every step from task-relative privileged state; no subtasks."""

    def __init__(self, policy: BCStatePolicy, features: TaskFeatures) -> None:
        self.policy = policy.eval()
        self.state = GroundedState(features.kinds)
        self.reset("")

    def reset(self, instruction: str) -> None:
        self.instruction = instruction
        self.state.reset(instruction)
        self.memory = self.policy.memory()
        """The steps :meth:`act` took this episode, as far back as the policy reads them
        (``config.previous_action``, ``config.history``)."""

    @property
    def previous(self) -> np.ndarray:
        """The last action :meth:`act` returned (zeros at the start)."""
        return self.memory.last_action

    def _run(self, features: np.ndarray, fn) -> np.ndarray:
        """``fn`` (the policy or its embedding) on ``features`` and the remembered steps."""
        x = self.memory.inputs(features)
        with torch.no_grad():
            device = self.policy.normalizer.mean.device
            return fn(torch.from_numpy(x)[None].to(device))[0].cpu().numpy()

    def raw_action(self, obs: dict[str, Any]) -> np.ndarray:
        """The network's action before snapping (a DAgger teacher's label)."""
        return self._run(self.state(obs), self.policy)

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        features = self.state(obs)
        action = executable(self._run(features, self.policy))
        self.memory.record(features, action)
        return action

    def embed(self, obs: dict[str, Any]) -> np.ndarray:
        """The policy's last hidden layer for ``obs``: what a residual policy reads."""
        return self._run(self.state(obs), self.policy.embed)

    @property
    def subtask(self) -> str:
        return "none"


@AGENTS.register("bc-pixels")
class BCPixelsAgent:
    """Predicts a chunk from the cameras, proprioception and instruction; executes part of it."""

    def __init__(self, policy: BCPixelsPolicy) -> None:
        self.policy = policy.eval()
        self.queue = ActionChunkQueue(policy.config.execute)
        self.reset("")

    def reset(self, instruction: str) -> None:
        self.instruction = instruction
        self._code = torch.from_numpy(instruction_vector(instruction))[None]
        self.queue.clear()

    def _inputs(self, obs: dict[str, Any]):
        device = self.policy.normalizer.mean.device
        images = {
            k: torch.from_numpy(np.ascontiguousarray(obs[k]))[None].to(device)
            for k in self.policy.image_keys
        }
        proprio = torch.from_numpy(np.asarray(obs[PROPRIO], dtype=np.float32))[None]
        return images, proprio.to(device), self._code.to(device)

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        if self.queue.needs_chunk():
            with torch.no_grad():
                chunk = self.policy(*self._inputs(obs))[0]
            self.queue.push(chunk.cpu().numpy())
        return executable(self.queue.pop())

    def embed(self, obs: dict[str, Any]) -> np.ndarray:
        """The policy's last hidden layer for ``obs``: what it sees now, every step."""
        with torch.no_grad():
            return self.policy.embed(*self._inputs(obs))[0].cpu().numpy()

    @property
    def subtask(self) -> str:
        return "none"


# ---------------------------------------------------------------------- checkpoint


@dataclass
class BCBundle:
    """A trained baseline: network, config, the env layout and the tasks' object kinds."""

    kind: str
    policy: nn.Module
    """A BCStatePolicy, BCPixelsPolicy or BCKeypointsPolicy (policies.bc_keypoints)."""
    env: dict[str, Any]
    """Env settings the agent was trained with (observation layout), applied at evaluation."""
    tasks: tuple[str, ...]
    task_kinds: dict[str, tuple[str, ...]]
    """Task -> the kinds of its scene's objects (the layout of ``object_state``)."""
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in BC_KINDS:
            raise ValueError(f"unknown baseline {self.kind!r}; known: {BC_KINDS}")

    def make(
        self,
        seed: int = 0,
        world_model_check: bool = True,
        task: str | None = None,
        planner: str = "learned",
        world_model: Any = None,
    ):
        """A fresh agent for ``task`` (``bc-state`` reads the task's object layout); a baseline
        has no System 2, so ``planner`` must stay ``learned``. ``world_model``: a world model of
        the perceived objects that a ``hierarchical-keypoints`` System 2 thinks with (unless
        ``world_model_check`` is off)."""
        check_planner(planner, self.kind)
        if world_model is not None and self.kind not in IMAGINING_KINDS:
            raise ValueError(
                f"a world model is given to the System 2 of {', '.join(IMAGINING_KINDS)}; "
                f"this agent is {self.kind!r}"
            )
        agent = AGENTS.get(self.kind)
        if self.kind == "bc-pixels":
            return agent(self.policy)
        if task is None:
            if len(self.tasks) != 1:
                raise ValueError(f"name the task: this agent knows {list(self.tasks)}")
            task = self.tasks[0]
        if task not in self.task_kinds:
            raise CheckpointError(f"this agent was trained on {list(self.tasks)}, not {task!r}")
        features = TaskFeatures(self.task_kinds[task])
        if self.kind in IMAGINING_KINDS:
            return agent.create(
                self.policy, features, planner, world_model if world_model_check else None
            )
        if self.kind in HIERARCHICAL_KINDS:
            return agent.create(self.policy, features, planner)
        return agent(self.policy, features)

    def to(self, device: str | torch.device) -> BCBundle:
        """Move the network to ``device`` (agents then act there; observations stay NumPy)."""
        self.policy.to(device)
        return self

    def save(self, path: str | Path) -> Path:
        cpu_state = {k: v.cpu() for k, v in self.policy.state_dict().items()}
        payload = {
            "agent": self.kind,
            "config": self.policy.config.to_dict(),
            "state": cpu_state,
            "env": self.env,
            "tasks": list(self.tasks),
            "task_kinds": {t: list(k) for t, k in self.task_kinds.items()},
            "info": self.info,
        }
        if hasattr(self.policy, "image_keys"):
            payload["image_keys"] = list(self.policy.image_keys)
            payload["image_size"] = self.policy.image_size
        return save_checkpoint(path, KIND, payload)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> BCBundle:
        kind = record["agent"]
        if kind not in BC_KINDS:
            raise CheckpointError(f"unknown baseline {kind!r}; known: {BC_KINDS}")
        stored = dict(record["config"])
        if kind == "hierarchical-keypoints":  # written before System 2 could read links in order
            stored.setdefault("planner_slots", "active")
        config = POLICIES.get(kind).from_dict(stored)
        if kind == "bc-state":
            policy = config.build()
        else:
            policy = config.build(tuple(record["image_keys"]), int(record["image_size"]))
        policy.load_state_dict(record["state"])
        return cls(
            kind=kind,
            policy=policy.eval(),
            env=dict(record["env"]),
            tasks=tuple(record["tasks"]),
            task_kinds={t: tuple(k) for t, k in record["task_kinds"].items()},
            info=record.get("info", {}),
        )

    def check_env(self, task: str, observation_space) -> None:
        """Raise a clear error for a task or observation layout this agent was not trained on."""
        if task not in self.tasks:
            raise CheckpointError(
                f"this agent was trained on tasks {list(self.tasks)}, not {task!r}; "
                "train it on demos of that task too (train agent --data DIR [DIR ...])"
            )
        spaces = observation_space.spaces
        needed = [PROPRIO, OBJECT_STATE] if self.kind == "bc-state" else [PROPRIO]
        image_keys = list(getattr(self.policy, "image_keys", ()))
        needed += image_keys
        problems = [f"no observation {k!r}" for k in needed if k not in spaces]
        if image_keys:
            for key in self.policy.image_keys:
                if key in spaces and spaces[key].shape[0] != self.policy.image_size:
                    problems.append(
                        f"{key} is {spaces[key].shape[0]} px, trained on {self.policy.image_size} px"
                    )
        if problems:
            raise CheckpointError(
                f"the env's observations do not match the agent's (trained with {self.env}): "
                + "; ".join(problems)
            )
