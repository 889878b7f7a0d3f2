import numpy as np
import pytest

import envs

TASK_NAMES = envs.TASKS.names()


@pytest.fixture(params=TASK_NAMES)
def task(request) -> str:
    return request.param


def random_actions(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, size=(n, 5)).astype(np.float32)
