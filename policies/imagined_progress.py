"""System 2 thinks with a world model that sees the objects (issue 14).

For each candidate subtask, System 1 is rolled forward in a world model whose object slots start
from what the agent perceives (``train world-model --perception RUN``): at each imagined step
System 1 reads the objects and the proprioception the world model imagines, under the
candidate's text, and its action moves the imagined state on. The candidate's score is the
imagined progress of the objects the *instruction* names toward where the instruction wants
them (:func:`distance_to_goal`), the best over the horizon: System 2 reads the instruction, not
the world model's reward head, which was never told which cube is meant.

Two uses: :class:`~policies.hierarchical_keypoints.HierarchicalKeypointsAgent` adds it to its
learned planner's log-probabilities when it deliberates (``eval --world-model``), and
:class:`ImaginedPlanAgent` chooses by it alone, every few steps, among every subtask the
instruction allows (``eval --planner imagined``: model-predictive control over System 1's
skills, the comparison row without a learned planner).
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import torch

from envs.base import IMAGE_PREFIX, PROPRIO
from envs.language import SUBTASK_VOCAB
from envs.task_features import LINK_DIM, MAX_LINKS, PROPRIO_USED
from policies.bc import executable
from policies.perceived_scene import OBJECTS_BY_COLOUR, PERCEIVED_OBJECTS, hand_yaw
from policies.perception import NUM_IDENTITIES, object_state_from_table
from policies.two_systems import TwoSystems, _elapsed_ms
from world_models.latent import LatentWorldModel

PROGRESS_UNIT = 0.05
"""Metres of imagined progress per unit of score: with the planner's ``wm_weight`` of 2, 5 cm of
imagined progress weighs as much as a factor e^2 in the planner's probabilities."""
UNDONE_COST = 0.1
"""Metres a link that is not done yet adds to the distance to the goal: finishing a link (a
cube set down on its pad) counts, undoing one (a cube lifted off) costs."""


def distance_to_goal(x: np.ndarray) -> np.ndarray:
    """``(N,)`` metres still to go under the instruction, from planner features ``(N, STATE_DIM)``
    (links in the instruction's order or active first: the sum does not depend on it): every
    link not done adds its object's distance to its destination (a reach: the hand's distance to
    the target) plus :data:`UNDONE_COST`, and the hand's distance to the first such object that
    has to be moved."""
    n = len(x)
    links = x[:, len(PROPRIO_USED) + 1 :].reshape(n, MAX_LINKS, LINK_DIM)
    open_ = (links[..., 0] > 0.5) & (links[..., 28] < 0.5)  # present and not done
    moved = (links[..., 12] > 0.5) | (links[..., 18:22].sum(-1) > 0.5)  # a destination / direction
    to_hand = np.linalg.norm(links[..., 7:10], axis=-1)
    to_dest = np.where(moved, np.linalg.norm(links[..., 25:28], axis=-1), to_hand)
    total = ((to_dest + UNDONE_COST) * open_).sum(1)
    first = np.argmax(open_ & moved, axis=1)
    has = (open_ & moved).any(1)
    return total + np.where(has, to_hand[np.arange(n), first], 0.0)


def check_world_model(world_model: LatentWorldModel, cameras: tuple[str, ...]) -> None:
    """Raise ``ValueError`` unless ``world_model`` imagines the perceived objects: slots started
    from ``perceived_objects``, read out as ``objects_by_colour``, on the agent's cameras."""
    c = world_model.config
    problems = []
    if c.object_input_key != PERCEIVED_OBJECTS:
        problems.append(
            f"its object slots start from {c.object_input_key or 'its own keypoint maps'!r}, "
            f"not {PERCEIVED_OBJECTS!r} (train it with `train world-model --perception RUN`)"
        )
    if (
        tuple(c.aux_keys) != (OBJECTS_BY_COLOUR,)
        or getattr(world_model, "slot_count", 0) != NUM_IDENTITIES
    ):
        problems.append(
            f"its slots are not the {NUM_IDENTITIES} identities of {OBJECTS_BY_COLOUR!r}"
        )
    extra = [k for k in world_model.image_keys if k.removeprefix(IMAGE_PREFIX) not in cameras]
    if extra:
        problems.append(f"it reads cameras the agent does not have: {extra}")
    if PROPRIO not in world_model.input_vector_keys:
        problems.append(f"it does not predict {PROPRIO!r}")
    if problems:
        raise ValueError(
            "this world model cannot imagine a keypoint agent's scene: " + "; ".join(problems)
        )


class ImaginedProgress:
    """``progress(obs, labels)`` -> ``(C,)`` imagined progress toward the instruction's goal, in
    :data:`PROGRESS_UNIT`, when System 1 pursues each label for ``horizon`` steps (see the
    module docstring)."""

    def __init__(self, world_model: LatentWorldModel, system1, planner, horizon: int = 12) -> None:
        check_world_model(world_model, system1.scene.perception.cameras)
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        self.world_model = world_model.eval()
        self.system1 = system1  # KeypointSystem1: its network, features, held cube and scene
        self.planner = planner  # ScenePlanner: the instruction bound to the scene
        self.horizon = horizon
        dims = dict(zip(world_model.spec.vector_keys, world_model.spec.vector_dims))
        start = 0
        for key in world_model.input_vector_keys:  # where proprio lies in what it predicts
            if key == PROPRIO:
                self._proprio = slice(start, start + dims[key])
            start += dims[key]

    def _imagined(self, z: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """The imagined tables ``(C, K, 4)`` (presence and position of each identity) and
        proprioception ``(C, P)`` of ``z``."""
        tables = self.world_model.aux(z).numpy().reshape(len(z), NUM_IDENTITIES, 4)
        return tables, self.world_model.state(z)[:, self._proprio].numpy()

    def _goal_distance(self, tables: np.ndarray, proprio: np.ndarray) -> np.ndarray:
        scene, state = self.system1.scene, self.planner.state
        slots = scene.slots(self.planner.instruction, self.planner.kinds)
        objects = np.stack(
            [object_state_from_table(t, self.planner.kinds, slots, hand_yaw(p))
             for t, p in zip(tables, proprio)]
        )  # fmt: skip
        x = state.features.state_features(proprio, objects, state.initial, state.bound)
        return distance_to_goal(x)

    @torch.no_grad()
    def progress(self, obs: dict[str, Any], labels: list[str]) -> np.ndarray:
        wm, system1, scene = self.world_model, self.system1, self.system1.scene
        if self.planner.state.initial is None:
            raise RuntimeError("ImaginedProgress.progress before System 2's first assess")
        count = len(labels)
        batch = {k: torch.from_numpy(np.asarray(obs[k])[None]) for k in (*wm.image_keys, PROPRIO)}
        batch[PERCEIVED_OBJECTS] = torch.from_numpy(scene.objects_by_colour()[None])
        z = wm.encode(batch).expand(count, -1).contiguous()  # every candidate starts here
        conditionings = [system1.conditioning(label) for label in labels]
        memories = [copy.deepcopy(system1.memory) for _ in labels]  # each goes on from the real one
        tables, proprio = self._imagined(z)
        start = self._goal_distance(tables, proprio)
        best = start.copy()
        for _ in range(self.horizon):
            now = [system1.inputs_under(tables[c][None], proprio[c][None], conditionings[c])[0]
                   for c in range(count)]  # fmt: skip
            x = np.stack([m.inputs(n) for m, n in zip(memories, now)]).astype(np.float32)
            actions = np.stack([executable(a) for a in system1.policy(torch.from_numpy(x)).numpy()])
            for memory, n, a in zip(memories, now, actions):
                memory.record(n, a)
            z = wm.next(z, torch.from_numpy(actions))
            tables, proprio = self._imagined(z)
            best = np.minimum(best, self._goal_distance(tables, proprio))
        return (start - best) / PROGRESS_UNIT


class ImaginedPlanAgent(TwoSystems):
    """System 2 without a learned planner: every ``replan_every`` steps it imagines System 1
    pursuing every subtask the instruction allows and commits to the one with the most imagined
    progress (:class:`ImaginedProgress`), model-predictive control over System 1's skills.
    System 1 and the perceived scene are the hierarchical keypoint agent's."""

    def __init__(self, system1, planner, check: ImaginedProgress, replan_every: int = 8) -> None:
        if replan_every < 1:
            raise ValueError(f"replan_every must be >= 1, got {replan_every}")
        self.system1 = system1
        self.planner = planner
        self.check = check
        self.replan_every = replan_every
        self.timings: list[float] = []
        self.reset("")

    def reset(self, instruction: str) -> None:
        self.instruction = instruction
        self.system1.reset("none")
        self.planner.reset(instruction)
        self.labels: list[str] | None = None  # bound to the scene at the first observation
        self._since = self.replan_every

    @property
    def subtask(self) -> str:
        return self.system1.label or "none"

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        if self._since >= self.replan_every:
            start = time.perf_counter()
            self.planner.assess(obs, 0)  # perceives the frame, binds the instruction once
            if self.labels is None:  # what the instruction names and the scene holds
                self.labels = [SUBTASK_VOCAB[i] for i in np.flatnonzero(self.planner.allowed())
                               if SUBTASK_VOCAB[i] != "none"]  # fmt: skip
            progress = self.check.progress(obs, self.labels)
            self.system1.set_text(self.labels[int(np.argmax(progress))])
            self.timings.append(_elapsed_ms(start))
            self._since = 0
        self._since += 1
        return self.system1.act(obs)
