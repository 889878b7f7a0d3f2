"""Factors of variation and world events of a manipulation env, per episode.

A mixin of :class:`envs.base.ManipulationEnv`: ``reset`` asks it which factors and events an
episode gets (the config's, a domain-randomisation draw, or ``reset(options=...)``'s), lets it
swap the instruction (the ``counterfactual`` factor) and perturb the model; ``step`` passes the
actions and observations through it and lets the events fire. What each factor does:
``envs/perturbation.py``; the catalogue: ``envs/factors.py``; the events: ``envs/events.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.events import WorldEvents, check_events
from envs.factors import check_factors, randomized_factors
from envs.perturbation import Perturbation, swap_instruction
from envs.task_config import Episode

RESET_OPTIONS: tuple[str, ...] = ("factors", "events")


class Variation:
    """What differs from the nominal episode: factors, a swapped instruction, world events."""

    def _init_variation(self) -> None:
        self.perturbation = Perturbation(self)
        self._config_factors = check_factors(dict(self.config.factors), self.task_name)
        self._config_events = check_events(self.config.events, self.task_name)
        self._heldout_phrasing = False
        self._events: WorldEvents | None = None
        self._episode_events: tuple[str, ...] = ()
        self._original_plan: list | None = None
        self._original_reached = False

    def _entropy(self) -> int:
        """A number fixed by the episode's seed and history, read without drawing from it."""
        state = self.np_random.bit_generator.state
        inner = state.get("state")
        if isinstance(inner, dict) and isinstance(inner.get("state"), int):
            return int(inner["state"])
        return abs(hash(repr(state)))

    def _begin_variation(self, options: dict[str, Any] | None) -> None:
        """Before the episode is drawn: decide its factors and events."""
        options = dict(options or {})
        unknown = sorted(set(options) - set(RESET_OPTIONS))
        if unknown:
            raise ValueError(
                f"unknown reset option(s) {unknown}; accepted: {', '.join(RESET_OPTIONS)} "
                '(e.g. options={"factors": {"light_intensity": 0.5}, "events": ["move-target"]})'
            )
        entropy = self._entropy()
        if "factors" in options:
            factors = check_factors(options["factors"] or {}, self.task_name)
        else:
            factors = dict(self._config_factors)
            if self.config.randomize:
                draw = np.random.default_rng([entropy, 0xD5])
                drawn = randomized_factors(
                    draw,
                    self.config.randomize,
                    self.config.randomize_magnitude,
                    self.task_name,
                    self.config.randomize_joint,
                )
                factors = drawn | factors
        events = options.get("events", self._config_events)
        self._episode_events = check_events(events or (), self.task_name)
        self.perturbation.restore()
        self.perturbation.begin(factors, entropy)
        self._heldout_phrasing = self.perturbation.use_heldout_phrasing()
        self._event_entropy = entropy

    def _vary_episode(self, episode: Episode) -> Episode:
        """After the draw: the counterfactual instruction, if this episode gets one."""
        self._original_plan = None
        self._original_reached = False
        swapped = self.perturbation.counterfactual(episode, self._kinds)
        if swapped is None:
            return episode
        self._original_plan = list(episode.plan)
        return swapped

    def swap_instruction(self, rng: np.random.Generator, only: tuple[str, ...] = ()) -> None:
        """Mid-episode: the instruction (and plan) now name other objects (``only`` may change)."""
        episode = self._require_episode()
        if self._original_plan is None:
            self._original_plan = list(episode.plan)
        self._episode = swap_instruction(episode, self._kinds, rng, only)

    def _start_events(self) -> None:
        """After the episode is set up: arm its world events."""
        self._events = None
        if self._episode_events:
            rng = np.random.default_rng([self._event_entropy, 0xE7])
            self._events = WorldEvents(self, self._episode_events, rng)

    def _fire_events(self, completed: list[str]) -> None:
        if self._events is not None:
            self._events.after_step(self, completed)

    def _variation_info(self) -> dict[str, Any]:
        if self._original_plan is not None:
            self._original_reached |= self.subtask_done(self._original_plan[-1])
        events = self._events
        return {
            "factors": dict(self.perturbation.factors),
            "counterfactual": self._original_plan is not None,
            "original_goal_reached": bool(self._original_reached),
            "events_fired": ",".join(events.fired) if events else "",
            "event_step": events.first_step if events else -1,
        }

    @property
    def cube_half(self) -> float:
        """Half edge of every cube this episode (``object_size`` changes it)."""
        return self.perturbation.cube_half
