"""Chain (long horizon): 2-4 randomly drawn instructions in one episode, scored by links completed.

Each link is "put the X cube on the Y pad" (pick, place) or "push the X cube to the left /
right / forward / backward" (push), each on a different cube; a chain has 3-6 subtasks.
Success means every link is done, in order; ``info["links_completed"]`` counts the links.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.base import PUSH_DISTANCE, Episode, ManipulationEnv, TaskConfig
from envs.language import COLOR_NAMES, DIRECTIONS, Subtask, join_clauses
from envs.placement import OBJECT_HIGH, OBJECT_LOW, random_colors, random_yaw, sample_layout
from envs.registry_tasks import TASKS
from envs.scene import ObjectSpec

N_CUBES = 4
N_PADS = 2
MIN_SUBTASKS, MAX_SUBTASKS = 3, 6


@TASKS.register("chain")
@dataclass(frozen=True)
class ChainConfig(TaskConfig):
    """A chain of pick-and-place and push instructions on four cubes and two pads."""

    max_steps: int = 300
    """Control steps before the episode is truncated."""
    min_links: int = 2
    """Fewest instructions in a chain."""
    max_links: int = 4
    """Most instructions in a chain (at most one per cube)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.min_links <= self.max_links <= N_CUBES:
            raise ValueError(
                f"invalid ChainConfig: need 1 <= min_links <= max_links <= {N_CUBES}, "
                f"got min_links={self.min_links}, max_links={self.max_links}"
            )

    def build(self, render_mode: str | None = None) -> ChainEnv:
        return ChainEnv(self, render_mode=render_mode)


class ChainEnv(ManipulationEnv):
    task_name = "chain"

    def _scene_objects(self) -> tuple[ObjectSpec, ...]:
        cubes = tuple(ObjectSpec(f"cube{i}", "cube") for i in range(N_CUBES))
        pads = tuple(ObjectSpec(f"pad{i}", "pad") for i in range(N_PADS))
        return cubes + pads

    def _push_goal(
        self, start: np.ndarray, direction: str, others: list[np.ndarray]
    ) -> np.ndarray | None:
        """The goal of pushing a cube at ``start``, or None when the push would leave the table region
        or pass near another object."""
        u = np.array(DIRECTIONS[direction])
        goal = start + PUSH_DISTANCE * u
        behind = start - 0.06 * u
        if np.any(goal < OBJECT_LOW - 0.02) or np.any(goal > OBJECT_HIGH + 0.02):
            return None
        if np.any(behind < OBJECT_LOW - 0.08) or np.any(behind > OBJECT_HIGH + 0.08):
            return None
        for q in others:
            t = np.clip(np.dot(q - behind, u), 0.0, PUSH_DISTANCE + 0.06)
            if np.linalg.norm(behind + t * u - q) < 0.07:
                return None
        return goal

    def _sample_episode(self, rng: np.random.Generator) -> Episode:
        cfg: ChainConfig = self.config
        colors = random_colors(rng, COLOR_NAMES, N_CUBES + N_PADS)
        cube_colors, pad_colors = colors[:N_CUBES], colors[N_CUBES:]
        for _ in range(1000):
            xy = sample_layout(rng, ["pad"] * N_PADS + ["cube"] * N_CUBES)
            pads, cubes = xy[:N_PADS], xy[N_PADS:]
            n_links = int(rng.integers(cfg.min_links, cfg.max_links + 1))
            order = rng.permutation(N_CUBES)[:n_links]
            free_pads = list(rng.permutation(N_PADS))
            plan: list[Subtask] = []
            clauses: list[str] = []
            link_ends: list[int] = []
            push_goals: dict[str, tuple[float, float]] = {}
            for i in order:
                cube = f"{cube_colors[i]}_cube"
                others = [c for j, c in enumerate(cubes) if j != i] + list(pads)
                use_pad = free_pads and rng.random() < 0.5
                goal = None
                if not use_pad:
                    direction = list(DIRECTIONS)[int(rng.integers(len(DIRECTIONS)))]
                    goal = self._push_goal(cubes[i], direction, others)
                    use_pad = goal is None and bool(free_pads)
                if use_pad:
                    pad = f"{pad_colors[free_pads.pop()]}_pad"
                    plan += [Subtask("pick", cube), Subtask("place", cube, pad)]
                    clauses.append(self.phrase("pick_place", rng, obj=cube, dest=pad))
                elif goal is not None:
                    push = Subtask("push", cube, direction)
                    plan.append(push)
                    push_goals[push.label] = (float(goal[0]), float(goal[1]))
                    clauses.append(self.phrase("push_dir", rng, obj=cube, dest=direction))
                else:
                    break
                link_ends.append(len(plan))
            else:
                if MIN_SUBTASKS <= len(plan) <= MAX_SUBTASKS:
                    placements = {f"pad{i}": (*pads[i], 0.0) for i in range(N_PADS)}
                    placements |= {f"cube{i}": (*cubes[i], random_yaw(rng)) for i in range(N_CUBES)}
                    return Episode(
                        colors={f"cube{i}": cube_colors[i] for i in range(N_CUBES)}
                        | {f"pad{i}": pad_colors[i] for i in range(N_PADS)},
                        placements=placements,
                        plan=plan,
                        instruction=join_clauses(clauses, rng),
                        link_ends=link_ends,
                        push_goals=push_goals,
                    )
        raise RuntimeError("could not draw a feasible chain in 1000 attempts")
