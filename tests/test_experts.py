"""The scripted experts are imitable: continuous feedback laws without hidden state that still
solve every task (docs/DECISIONS.md, "Imitable experts").

The continuity tests put the robot in states on both sides of the gates of the former waypoint
controllers (1.2 cm to close on a cube, 1 cm to descend onto a pad, 1.2 cm of lateral offset to
drive a push, 80% gripper opening to come down) and check that the clean action changes little
between states 1 mm apart. A gated law jumps by 1 to 2 there (checked against the former expert
while writing these tests).
"""

import copy

import mujoco
import numpy as np
import pytest

import envs
from envs.experts import ScriptedExpert, closest_equivalent
from envs.robot import FINGER_OPEN
from envs.scene import CUBE_HALF

STEP = 0.001
"""Distance between neighbouring states of a sweep (m)."""
OFFSETS = np.arange(0.0, 0.03 + STEP / 2, STEP)
"""0 to 3 cm in 1 mm steps: across the former gates at 1 and 1.2 cm."""
MOTION_JUMP = 0.3
"""Largest change of a dx, dy, dz or dyaw command between neighbouring states (a gate: ~1)."""
GRIP_JUMP = 0.6
"""Largest change of the gripper command between neighbouring states (a gate: 2)."""


def clean_action(env) -> np.ndarray:
    return ScriptedExpert(env).label()[0]


def set_hand(env, pos, yaw: float, opening: float = 1.0) -> None:
    """Put the hand at ``pos`` turned by ``yaw`` (converged IK), fingers at ``opening`` (0..1)."""
    q = env.controller.solve_converged(env.data.qpos[env._arm_qadr], np.asarray(pos, float), yaw)
    env.data.qpos[env._arm_qadr] = q
    env.data.qpos[env._finger_qadr] = FINGER_OPEN * opening
    mujoco.mj_forward(env.model, env.data)
    assert np.allclose(env.ee_pos, pos, atol=1e-4), "hand pose not reachable"


def set_cube(env, name: str, pos, yaw: float = 0.0) -> None:
    a = env._qadr[env.body_of(name)]
    env.data.qpos[a : a + 3] = pos
    env.data.qpos[a + 3 : a + 7] = (np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2))
    mujoco.mj_forward(env.model, env.data)


def assert_continuous(actions: np.ndarray, grip_takes_both_signs: bool = False) -> None:
    jumps = np.abs(np.diff(actions, axis=0))
    i, j = np.unravel_index(np.argmax(jumps[:, :4]), jumps[:, :4].shape)
    assert jumps[i, j] <= MOTION_JUMP, (
        f"action[{j}] jumps by {jumps[i, j]:.2f} between samples {i} and {i + 1}:\n{actions}"
    )
    k = int(np.argmax(jumps[:, 4]))
    assert jumps[k, 4] <= GRIP_JUMP, (
        f"gripper command jumps by {jumps[k, 4]:.2f} between samples {k} and {k + 1}:\n{actions}"
    )
    if grip_takes_both_signs:
        assert actions[:, 4].min() < -0.25 and actions[:, 4].max() > 0.25, actions[:, 4]


def run_expert_until(env, condition, max_steps: int = 100) -> None:
    """Step the clean expert until ``condition(env)`` holds."""
    expert = ScriptedExpert(env)
    for _ in range(max_steps):
        if condition(env):
            return
        env.step(expert.label()[0])
    raise AssertionError("the expert never reached the state to sweep from")


# ---------------------------------------------------------------------- continuity: pick


@pytest.fixture(params=[0, 3])
def pick_env(request):
    """Pick-place with the hand at the grasp point of the cube to pick, fingers open."""
    env = envs.make("pick-place", obs_mode="state")
    env.reset(seed=request.param)
    obj = env.current_subtask.obj
    cube = env.object_pos(obj)
    set_hand(env, [cube[0], cube[1], CUBE_HALF], 0.0)
    set_cube(env, obj, env.ee_pos, 0.0)
    yield env, obj
    env.close()


def test_pick_is_continuous_in_the_cube_offset(pick_env):
    """Former gates: close only within 1.2 cm in xy, else rise straight up and open."""
    env, obj = pick_env
    ee = env.ee_pos
    direction = np.array([0.6, -0.8, 0.0])
    actions = []
    for d in OFFSETS:
        set_cube(env, obj, ee + d * direction)
        actions.append(clean_action(env))
    actions = np.array(actions)
    assert_continuous(actions, grip_takes_both_signs=True)
    assert actions[0, 2] == pytest.approx(0.0, abs=0.05) and actions[-1, 2] > 0.9  # stay, rise


def test_pick_is_continuous_in_the_hand_height(pick_env):
    """Former gate: close only within 1.2 cm of the cube's centre in height."""
    env, obj = pick_env
    cube = env.object_pos(obj)
    actions = []
    for d in OFFSETS:
        set_hand(env, cube + [0.0, 0.0, d], 0.0)
        actions.append(clean_action(env))
    actions = np.array(actions)
    assert_continuous(actions, grip_takes_both_signs=True)
    assert actions[-1, 2] < -0.9  # well above: come down


def test_pick_is_continuous_in_the_gripper_opening(pick_env):
    """Former gate: come down onto the cube only with the gripper at least 80% open."""
    env, obj = pick_env
    above = env.object_pos(obj) + [0.0, 0.0, 0.04]
    actions = []
    for opening in np.linspace(0.0, 1.0, 51):
        set_hand(env, above, 0.0, opening=opening)
        actions.append(clean_action(env))
    actions = np.array(actions)
    assert_continuous(actions)
    assert actions[0, 2] > 0.5 and actions[-1, 2] < -0.5  # closed: rise; open: descend


# ---------------------------------------------------------------------- continuity: place


def in_place(env) -> bool:
    subtask = env.current_subtask
    return subtask is not None and subtask.verb == "place" and env.gripper_opening < 0.6


def carrying_far(env) -> bool:
    if not in_place(env):
        return False
    subtask = env.current_subtask
    cube, pad = env.object_pos(subtask.obj), env.object_pos(subtask.dest)
    return cube[2] > CUBE_HALF + 0.06 and np.linalg.norm(cube[:2] - pad[:2]) > 0.04


def releasing(env) -> bool:
    return in_place(env) and clean_action(env)[4] < 0.9  # the release ramp has begun


def sweep_pad(env) -> np.ndarray:
    """The clean action with the destination pad moved 0..3 cm from under the carried cube."""
    subtask = env.current_subtask
    pad = env._body[env.body_of(subtask.dest)]
    cube = env.object_pos(subtask.obj)
    direction = np.array([0.6, -0.8])
    actions = []
    for d in OFFSETS:
        env.model.body_pos[pad][:2] = cube[:2] + d * direction
        mujoco.mj_forward(env.model, env.data)
        actions.append(clean_action(env))
    return np.array(actions)


@pytest.mark.parametrize("seed", [0, 1])
def test_place_is_continuous_in_the_xy_error_while_carrying(seed):
    """Former gate: descend only when the carried cube is within 1 cm of the pad in xy."""
    env = envs.make("pick-place", obs_mode="state")
    env.reset(seed=seed)
    run_expert_until(env, carrying_far)
    actions = sweep_pad(env)
    assert_continuous(actions)
    assert actions[0, 2] < -0.9 and actions[-1, 2] > -0.1  # over the pad: descend; off: not
    assert (actions[:, 4] == 1.0).all()  # high above the pad: never release
    env.close()


@pytest.mark.parametrize("seed", [0, 1])
def test_place_release_is_a_ramp_of_the_xy_error(seed):
    """Former gate: let go within 1 cm of the pad, else carry up and away with the fingers shut."""
    env = envs.make("pick-place", obs_mode="state")
    env.reset(seed=seed)
    run_expert_until(env, releasing)
    actions = sweep_pad(env)
    assert_continuous(actions, grip_takes_both_signs=True)
    assert actions[0, 4] < 0 and actions[-1, 4] == 1.0  # on the pad: open; off it: hold on
    env.close()


# ---------------------------------------------------------------------- continuity: push


@pytest.fixture(params=[0, 1])
def push_env(request):
    """Push with the fingers closed; yields the env and the push frame (cube, direction, yaw)."""
    env = envs.make("push", obs_mode="state")
    env.reset(seed=request.param)
    subtask = env.current_subtask
    cube = env.object_pos(subtask.obj)
    u = env.push_goal(subtask) - cube[:2]
    u /= np.linalg.norm(u)
    yaw = closest_equivalent(float(np.arctan2(u[1], u[0])), np.pi, env.ee_yaw)
    yield env, cube, u, yaw
    env.close()


def test_push_is_continuous_in_the_lateral_offset(push_env):
    """Former gate: drive only with the hand within 1.2 cm of the line through cube and goal."""
    env, cube, u, yaw = push_env
    normal = np.array([-u[1], u[0]])
    actions = []
    for lateral in np.arange(-0.03, 0.03 + STEP / 2, STEP):
        xy = cube[:2] - 0.042 * u + lateral * normal  # in contact behind the cube
        set_hand(env, [xy[0], xy[1], CUBE_HALF], yaw, opening=0.0)
        actions.append(clean_action(env))
    actions = np.array(actions)
    assert_continuous(actions)
    middle = len(actions) // 2
    assert actions[middle, :2] @ u > 0.9 and abs(actions[middle, 2]) < 0.05  # on line: drive
    assert actions[0, 2] > 0.9 and actions[-1, 2] > 0.9  # well off the line: rise


def test_push_is_continuous_in_the_hand_height(push_env):
    """Former gate: drive only with the hand within 2 cm of the table-level push height."""
    env, cube, u, yaw = push_env
    xy = cube[:2] - 0.042 * u
    actions = []
    for h in np.arange(0.0, 0.04 + STEP / 2, STEP):
        set_hand(env, [xy[0], xy[1], CUBE_HALF + h], yaw, opening=0.0)
        actions.append(clean_action(env))
    actions = np.array(actions)
    assert_continuous(actions)
    assert actions[0, :2] @ u > 0.9 and actions[-1, :2] @ u < -0.2  # low: drive; high: back off


# ---------------------------------------------------------------------- memoryless


def test_label_is_the_same_for_fresh_experts_and_repeated_calls():
    env = envs.make("stack", obs_mode="state")
    env.reset(seed=2)
    running = ScriptedExpert(env, noise=0.1, seed=2)
    done, t = False, 0
    while not done:
        if t % 3 == 0:
            action, label = running.label()
            again = running.label()
            fresh = ScriptedExpert(env).label()
            other = ScriptedExpert(env, noise=0.5, seed=99).label()
            for a, lab in (again, fresh, other):
                np.testing.assert_array_equal(a, action)
                assert lab == label
        step = running.act()
        np.testing.assert_array_equal(step.action, ScriptedExpert(env).label()[0])
        _, _, terminated, truncated, _ = env.step(step.executed)
        done, t = terminated or truncated, t + 1
    env.close()


def test_label_depends_only_on_the_current_state():
    """Restore states seen earlier in an episode: a fresh expert gives the labels given then."""
    env = envs.make("chain", obs_mode="state")
    env.reset(seed=5)
    expert = ScriptedExpert(env, noise=0.1, seed=5)
    seen = []
    done, t = False, 0
    while not done:
        if t % 7 == 0:
            seen.append((copy.copy(env.data), env._progress, *expert.label()))
        _, _, terminated, truncated, _ = env.step(expert.act().executed)
        done, t = terminated or truncated, t + 1
    assert len({label for *_, label in seen}) >= 3
    for data, progress, action, label in seen:
        env.data, env._progress = copy.copy(data), progress  # the physics exactly as it was then
        again, again_label = ScriptedExpert(env).label()
        np.testing.assert_array_equal(again, action)
        assert again_label == label
    env.close()


# ---------------------------------------------------------------------- still solves the tasks


@pytest.mark.parametrize("seed", [3, 11])
def test_noisy_expert_solves_every_task(task, seed):
    env = envs.make(task, obs_mode="state")
    env.reset(seed=seed)
    expert = ScriptedExpert(env, noise=0.1, seed=seed)
    done, info = False, {}
    while not done:
        _, _, terminated, truncated, info = env.step(expert.act().executed)
        done = terminated or truncated
    assert info["success"], f"{task} seed {seed} failed at {info['subtask']}"
    env.close()


def test_sort_plan_goes_left_to_right():
    env = envs.make("sort", obs_mode="state")
    firsts = set()
    for seed in range(8):
        env.reset(seed=seed)
        plan = env.plan
        picks = [s.obj for s in plan[::2]]
        assert [s.verb for s in plan] == ["pick", "place"] * 3
        assert [s.obj for s in plan[1::2]] == picks
        assert [s.dest for s in plan[1::2]] == [p.replace("_cube", "_pad") for p in picks]
        ys = [env.object_pos(p)[1] for p in picks]
        assert ys == sorted(ys, reverse=True), f"seed {seed}: y = {ys}"
        firsts.add(env.body_of(picks[0]))
    assert len(firsts) > 1  # the order follows the layout, not the body names
    env.close()
