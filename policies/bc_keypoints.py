"""``bc-keypoints``: a pixel agent in two learned stages. The cameras become a table of where every
object is (:class:`~policies.perception.ObjectPerception`, trained on the demos' frames with
labels projected from the privileged object state), and a ``bc-state`` policy acts on the
task-relative features of that table. Privileged state is used only as training labels
("learning by cheating", Chen et al. 2019); at run time the agent reads the cameras, the
proprioception and the instruction, never ``object_state``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from envs.base import IMAGE_PREFIX
from envs.task_features import GroundedState, TaskFeatures
from policies.agents import AGENTS
from policies.bc import PROPRIO, BCStatePolicy, executable
from policies.bc_config import BCKeypointsConfig, BCStateConfig
from policies.config import POLICY_BUILDERS
from policies.perception import ObjectPerception, object_state_from_table


def hand_yaw(proprio: np.ndarray) -> float:
    return float(np.arctan2(proprio[3], proprio[4]))


def remember(table: np.ndarray, memory: np.ndarray | None) -> np.ndarray:
    """``table`` with each identity no camera sees now (presence logit <= 0) taken from
    ``memory``, the last table, where it was seen."""
    table = table.copy()
    if memory is not None:
        unseen = (table[:, 0] <= 0) & (memory[:, 0] > 0)
        table[unseen] = memory[unseen]
    return table


def episode_features(
    perception: ObjectPerception,
    images: dict[str, np.ndarray],
    proprio: np.ndarray,
    instruction: str,
    kinds: tuple[str, ...],
) -> np.ndarray:
    """``(T, STATE_DIM)``: the state features an agent computes from what it perceives at each
    of an episode's ``T`` frames (``images`` per camera name), step by step as it acts."""
    tables = perception({c: torch.from_numpy(v) for c, v in images.items()}, proprio)
    memory, remembered = None, []
    for table in tables:
        memory = remember(table, memory)
        remembered.append(memory)
    return table_features(np.stack(remembered), proprio, instruction, kinds)


def table_features(
    tables: np.ndarray, proprio: np.ndarray, instruction: str, kinds: tuple[str, ...]
) -> np.ndarray:
    """``(T, STATE_DIM)``: the state features of an episode's identity tables ``(T, K, 4)``, in
    order, as the agent builds them: each table as an ``object_state``, bound at the first."""
    states = np.stack(
        [
            object_state_from_table(t, kinds, instruction, hand_yaw(p))
            for t, p in zip(tables, proprio)
        ]
    )
    features = TaskFeatures(kinds)
    bound = features.bind(instruction, states[0])
    return features.state_features(proprio, states, states[0], bound)


@POLICY_BUILDERS.register(BCKeypointsConfig)
class BCKeypointsPolicy(nn.Module):
    """Perception (cameras -> identity table) and a state policy (features -> action)."""

    def __init__(
        self,
        config: BCKeypointsConfig,
        image_keys: tuple[str, ...],
        image_size: int,
        action_dim: int = 5,
    ) -> None:
        super().__init__()
        self.config = config
        self.image_keys = tuple(image_keys)
        self.image_size = image_size
        self.action_dim = action_dim
        cameras = tuple(k[len(IMAGE_PREFIX) :] for k in self.image_keys)
        self.perception = ObjectPerception(cameras, image_size, config.width)
        self.state = BCStatePolicy(BCStateConfig(hidden=config.state_hidden), action_dim)

    @property
    def normalizer(self):
        return self.state.normalizer

    def loss(self, batch: dict[str, Any], generator: torch.Generator | None = None):
        """``batch``: per camera ``obs/image_<cam>`` with ``cells/<cam>`` and ``seen/<cam>``,
        ``heights``, ``proprio``, ``table`` (for the validation error in cm); ``features`` and
        ``actions`` for the state policy (a batch of its own size)."""
        device = self.normalizer.mean.device
        tensor = lambda x: torch.as_tensor(x, device=device)  # noqa: E731
        images = {c: tensor(batch[f"obs/{IMAGE_PREFIX}{c}"]) for c in self.perception.cameras}
        labels = {k: tensor(v) for k, v in batch.items() if k.split("/")[0] in ("cells", "seen")}
        labels["heights"] = tensor(batch["table"])[..., 3]
        perception_loss, info = self.perception.loss(images, labels)
        state_loss, state_info = self.state.loss(
            {"features": batch["features"], "actions": batch["actions"]}
        )
        loss = perception_loss + state_loss
        info |= {
            "loss": float(loss.detach()),
            "perception_loss": float(perception_loss.detach()),
            "state_loss": state_info["loss"],
            "gripper_accuracy": state_info["gripper_accuracy"],
        }
        if not self.training:  # validation: where the perceived objects are, in centimetres
            table = np.asarray(batch["table"])
            present = table[..., 0] > 0
            seen = self.perception(images, np.asarray(batch["proprio"]))
            err = np.linalg.norm(seen[..., 1:4] - table[..., 1:4], axis=-1)[present]
            info["position_error_cm"] = float(err.mean() * 100)
            info["presence_accuracy"] = float(((seen[..., 0] > 0) == present).mean())
        return loss, info


@AGENTS.register("bc-keypoints")
class BCKeypointsAgent:
    """Perceives the objects every step and acts with the state policy on them. An object no
    camera sees (an arm in the way) keeps its last seen position."""

    def __init__(self, policy: BCKeypointsPolicy, features: TaskFeatures) -> None:
        self.policy = policy.eval()
        self.kinds = features.kinds
        self.state = GroundedState(features.kinds)
        self.reset("")

    def reset(self, instruction: str) -> None:
        self.instruction = instruction
        self.state.reset(instruction)
        self.memory: np.ndarray | None = None

    def perceive(self, obs: dict[str, Any]) -> np.ndarray:
        """The identity table ``(K, 4)`` of this observation, with the memory filled in."""
        images = {
            c: torch.from_numpy(np.ascontiguousarray(obs[f"{IMAGE_PREFIX}{c}"]))[None]
            for c in self.policy.perception.cameras
        }
        proprio = np.asarray(obs[PROPRIO], dtype=np.float32)[None]
        self.memory = remember(self.policy.perception(images, proprio)[0], self.memory)
        return self.memory

    def features(self, obs: dict[str, Any]) -> np.ndarray:
        proprio = np.asarray(obs[PROPRIO], dtype=np.float32)
        object_state = object_state_from_table(
            self.perceive(obs), self.kinds, self.instruction, hand_yaw(proprio)
        )
        return self.state({PROPRIO: proprio, "object_state": object_state})

    def raw_action(self, obs: dict[str, Any]) -> np.ndarray:
        with torch.no_grad():
            x = torch.from_numpy(self.features(obs))[None]
            return self.policy.state(x)[0].numpy()

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        return executable(self.raw_action(obs))

    @property
    def subtask(self) -> str:
        return "none"
