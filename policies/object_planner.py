"""System 2 over perceived objects: which subtask comes at position ``i`` of the plan, and is it
done yet, read from the instruction's task-relative features (``envs.task_features``) of the
objects perception reports.

A subtask label (``place(red_pad)``) is scored through its *code*, not its name: the verb, and
for each object it names the slot that object holds in the instruction (slot 0: the first object
the instruction names, or for a sort the leftmost cube), or a push direction. The planner
therefore learns "after picking the slot-0 cube, place it on slot 1" once for every colour, and
can only propose subtasks about objects the instruction names and the scene holds: a label
whose object is not bound has no code and is never a candidate.

numpy + torch; the runtime wrapper that perceives lives in ``policies.hierarchical_keypoints``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from envs.language import SUBTASK_VOCAB, VERBS
from envs.task_features import DIRECTION_NAMES, MAX_MENTIONS, STATE_DIM, Mention, subtasks_named_by
from policies.bc import Normalizer, mlp

VERB_NAMES: tuple[str, ...] = ("none", *VERBS)
CODE_DIM = len(VERB_NAMES) + 2 * MAX_MENTIONS + len(DIRECTION_NAMES)
"""Verb one-hot, the slot of the first and second object named, a push direction."""
NO_SCORE = -1e9
"""The log-probability given to subtasks that are not candidates."""


def split_label(label: str) -> tuple[str, list[str]]:
    """``"push(red_cube, left)"`` -> ``("push", ["red_cube", "left"])``; ``"none"`` -> no args."""
    verb, _, rest = label.partition("(")
    args = [a.strip() for a in rest.rstrip(")").split(",") if a.strip()]
    return verb, args


def verb_code(label: str) -> np.ndarray:
    """``(len(VERB_NAMES),)`` one-hot of the label's verb."""
    out = np.zeros(len(VERB_NAMES), dtype=np.float32)
    out[VERB_NAMES.index(split_label(label)[0])] = 1.0
    return out


def mention_slots(bound: list[tuple[int, Mention]]) -> dict[str, int]:
    """``"red_cube" -> slot``: where each named object stands in the instruction (first mention)."""
    slots: dict[str, int] = {}
    for slot, (_, m) in enumerate(bound):
        slots.setdefault(f"{m.color}_{m.kind}", slot)
    return slots


def label_code(label: str, slots: dict[str, int]) -> np.ndarray | None:
    """``(CODE_DIM,)`` code of a subtask label; None when it names an object not in ``slots``."""
    verb, args = split_label(label)
    code = np.zeros(CODE_DIM, dtype=np.float32)
    code[VERB_NAMES.index(verb)] = 1.0
    for i, arg in enumerate(args[:2]):
        if arg in DIRECTION_NAMES:
            code[len(VERB_NAMES) + 2 * MAX_MENTIONS + DIRECTION_NAMES.index(arg)] = 1.0
        elif arg in slots:
            code[len(VERB_NAMES) + i * MAX_MENTIONS + slots[arg]] = 1.0
        else:
            return None
    return code


def candidates(instruction: str, bound: list[tuple[int, Mention]]) -> tuple[np.ndarray, np.ndarray]:
    """The subtasks System 2 may propose for ``instruction`` in a scene where it is ``bound``:
    ``(C,)`` indices into ``SUBTASK_VOCAB`` (``none`` first) and their ``(C, CODE_DIM)`` codes.
    Those about what the instruction names (``subtasks_named_by``) and the scene holds."""
    slots = mention_slots(bound)
    allowed = subtasks_named_by(instruction, SUBTASK_VOCAB)
    index, codes = [], []
    for i, label in enumerate(SUBTASK_VOCAB):
        code = label_code(label, slots) if allowed[i] else None
        if code is not None:
            index.append(i)
            codes.append(code)
    return np.array(index, dtype=np.int64), np.stack(codes)


class ObjectPlanner(nn.Module):
    """``features (B, STATE_DIM)``, plan ``position (B,)``, candidate ``codes (B, C, CODE_DIM)``
    -> a score per candidate ``(B, C)`` and a done logit ``(B,)`` for the subtask there."""

    def __init__(self, hidden: tuple[int, ...], max_subtasks: int) -> None:
        super().__init__()
        self.max_subtasks = max_subtasks
        self.normalizer = Normalizer(STATE_DIM)
        width = hidden[-1]
        self.trunk = nn.Sequential(
            mlp([STATE_DIM + max_subtasks + 1, *hidden]), nn.ReLU()
        )  # fmt: skip
        self.score = mlp([width + CODE_DIM, width, 1])
        self.done = nn.Linear(width, 1)

    def forward(self, features, position, codes) -> tuple[torch.Tensor, torch.Tensor]:
        device = self.normalizer.mean.device
        x = self.normalizer(torch.as_tensor(features, device=device))
        pos = torch.as_tensor(position, device=device).long().clamp(0, self.max_subtasks)
        h = self.trunk(torch.cat([x, F.one_hot(pos, self.max_subtasks + 1).float()], -1))
        codes = torch.as_tensor(codes, device=device)
        pairs = torch.cat([h[:, None].expand(-1, codes.shape[1], -1), codes], -1)
        return self.score(pairs).squeeze(-1), self.done(h).squeeze(-1)

    def loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """``batch``: ``features`` (the instruction's), ``position``, ``codes``, ``code_mask (B, C)``,
        ``target (B,)`` (the true subtask's candidate), ``done (B,)``."""
        device = self.normalizer.mean.device
        scores, done_logit = self(batch["features"], batch["position"], batch["codes"])
        mask = torch.as_tensor(batch["code_mask"], device=device) > 0
        scores = scores.masked_fill(~mask, NO_SCORE)
        target = torch.as_tensor(batch["target"], device=device).long()
        done = torch.as_tensor(batch["done"], device=device).float()
        subtask_loss = F.cross_entropy(scores, target)
        done_loss = F.binary_cross_entropy_with_logits(done_logit, done)
        return subtask_loss + done_loss, {
            "subtask_loss": float(subtask_loss.detach()),
            "done_loss": float(done_loss.detach()),
            "subtask_accuracy": float((scores.argmax(-1) == target).float().mean()),
            "done_accuracy": float(((done_logit > 0).float() == done).float().mean()),
        }
