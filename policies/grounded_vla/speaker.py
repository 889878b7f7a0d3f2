"""System 2 of the hierarchical VLA: reads the instruction and the scene, and says the next
subtask in words, one word at a time ("put the red cube on the blue pad"), which System 1 then
reads through its own language path, as it would read a person's.

Three learned parts, each with one job:

* a **reader** (its own :class:`~policies.grounded_vla.grounder.LanguageGrounder`): the
  instruction's word pieces and the first scene's object tokens -> the instruction's links,
  each pointing at the objects it names (trained on fresh wordings, half of them counterfactual
  meanings of the same scene, as the end-to-end agent's path is);
* a **tracker**: the links' geometry in the scene now, in the instruction's order
  (:func:`~envs.link_features.link_features`, ``slot_order="instruction"``) -> which link is
  next (trained on the link the expert was working on at every demo step);
* a **speaker**: that one link (its object, destination, direction, push bit) -> its words,
  decoded greedily by a GRU over a small vocabulary (:data:`SPEAKER_WORDS`).

Words are said from one link at a time, so a subtask never mixes two links' objects (the free
decoder this replaced read the whole instruction at every word: it did, and chain fell to 44%).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from envs.language import COLOR_NAMES, DIRECTIONS
from envs.link_features import KINDS, LINK_DIM, MAX_LINKS, PROPRIO_USED, STATE_DIM, Link
from policies.grounded_vla.config import GroundedVLAConfig
from policies.grounded_vla.grounder import LanguageGrounder
from policies.grounded_vla.links import DIRECTION_CLASSES, NO_DEST, identity_name
from policies.perception import NUM_IDENTITIES

SPEAKER_WORDS: tuple[str, ...] = (
    "<pad>", "<bos>", "<eos>", "put", "push", "reach", "the", "on", "onto",
    *COLOR_NAMES, *KINDS, *DIRECTIONS,
)  # fmt: skip
BOS, EOS = SPEAKER_WORDS.index("<bos>"), SPEAKER_WORDS.index("<eos>")
MAX_SAID = 12
"""Words of the longest subtask System 2 says, ``<eos>`` included."""
_FIRST_LINK = len(PROPRIO_USED) + 1
"""Where the first link's block starts in the link features (its first entry: the link exists)."""


def subtask_text(link: Link) -> str:
    """The words System 2 says for a link."""
    obj = identity_name(link.obj).replace("_", " ")
    if link.direction is not None:
        return f"push the {obj} {link.direction}"
    if link.dest is not None:
        dest = identity_name(link.dest).replace("_", " ")
        return f"push the {obj} onto the {dest}" if link.pushed else f"put the {obj} on the {dest}"
    return f"reach the {obj}"


def said_ids(text: str) -> np.ndarray:
    """``(MAX_SAID,)``: the word ids of ``text``, then ``<eos>``, padded."""
    ids = [SPEAKER_WORDS.index(w) for w in text.split()] + [EOS]
    out = np.zeros(MAX_SAID, np.int64)
    out[: len(ids)] = ids
    return out


def link_code(link: Link) -> np.ndarray:
    """``(4,)`` int: a link as the speaker reads it: object, destination (or ``NO_DEST``),
    direction class, push bit."""
    return np.array(
        [link.obj, NO_DEST if link.dest is None else link.dest,
         DIRECTION_CLASSES.index(link.direction), int(link.pushed)], np.int64,
    )  # fmt: skip


def random_link(rng: np.random.Generator) -> Link:
    """A link of any identities, of one of the four shapes a task asks for (reach, put, push
    onto, push in a direction): the speaker's training covers every object it could meet."""
    obj, dest = (int(i) for i in rng.integers(NUM_IDENTITIES, size=2))
    shape = int(rng.integers(4))
    if shape == 0:
        return Link(obj, None, None, False)
    if shape == 3:
        directions = tuple(DIRECTIONS)
        return Link(obj, None, directions[int(rng.integers(len(directions)))], True)
    return Link(obj, dest, None, shape == 2)


class LinkTracker(nn.Module):
    """``features (B, STATE_DIM)`` (the links in the instruction's order) ``-> (B, MAX_LINKS)``
    logits of the link to work on next, absent links masked."""

    def __init__(self, hidden: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(STATE_DIM, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, MAX_LINKS),
        )  # fmt: skip

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        blocks = features[:, _FIRST_LINK : _FIRST_LINK + MAX_LINKS * LINK_DIM : LINK_DIM]
        present = blocks > 0
        present[:, 0] = True  # an instruction asks for something
        return self.net(features).masked_fill(~present, -1e4)


class LinkSpeaker(nn.Module):
    """``codes (B, 4)`` (:func:`link_code`) ``-> logits (B, MAX_SAID, V)`` of the link's words,
    teacher-forced; :meth:`say` decodes greedily."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.obj = nn.Embedding(NUM_IDENTITIES, d)
        self.dest = nn.Embedding(NUM_IDENTITIES + 1, d)
        self.direction = nn.Embedding(len(DIRECTION_CLASSES), d)
        self.pushed = nn.Embedding(2, d)
        self.words = nn.Embedding(len(SPEAKER_WORDS), d)
        self.gru = nn.GRU(d, d, batch_first=True)
        self.out = nn.Linear(2 * d, len(SPEAKER_WORDS))

    def _start(self, codes: torch.Tensor) -> torch.Tensor:
        link = (self.obj(codes[:, 0]) + self.dest(codes[:, 1]) + self.direction(codes[:, 2])
                + self.pushed(codes[:, 3]))  # fmt: skip
        return torch.tanh(link)

    def forward(self, codes: torch.Tensor, said: torch.Tensor) -> torch.Tensor:
        link = self._start(codes)
        previous = torch.cat([torch.full_like(said[:, :1], BOS), said[:, :-1]], 1)
        h, _ = self.gru(self.words(previous), link[None].contiguous())
        return self.out(torch.cat([h, link[:, None].expand_as(h)], -1))

    @torch.no_grad()
    def say(self, link: Link) -> str:
        codes = torch.as_tensor(link_code(link)[None], device=self.out.weight.device)
        start = self._start(codes)
        h, word, out = start[None].contiguous(), BOS, []
        for _ in range(MAX_SAID):
            step, h = self.gru(self.words(torch.tensor([[word]], device=codes.device)), h)
            word = int(self.out(torch.cat([step[:, 0], start], -1))[0].argmax())
            if word in (EOS, 0):
                break
            out.append(SPEAKER_WORDS[word])
        return " ".join(out)


class SubtaskSpeaker(nn.Module):
    """System 2 (module docstring): :meth:`read` the instruction once, then :meth:`next_link`
    and :meth:`say` it at each deliberation."""

    def __init__(self, config: GroundedVLAConfig) -> None:
        super().__init__()
        self.reader = LanguageGrounder(config)
        self.tracker = LinkTracker()
        self.speaker = LinkSpeaker(config.d_model)

    def loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """``batch``: the reader's (``s2_tokens``, ``s2_first_table``, ``s2_link_<key>``), the
        tracker's (``s2_features (B, STATE_DIM)``, ``s2_which (B,)``) and the speaker's
        (``s2_codes (B, 4)``, ``s2_said (B, MAX_SAID)``)."""
        device = self.tracker.net[0].weight.device
        reading = {k[3:]: v for k, v in batch.items() if k.startswith("s2_")}
        read_loss, read_info = self.reader.loss(reading)
        which = torch.as_tensor(batch["s2_which"], device=device)
        track = self.tracker(torch.as_tensor(batch["s2_features"], device=device))
        track_loss = F.cross_entropy(track, which)
        said = torch.as_tensor(batch["s2_said"], device=device)
        logits = self.speaker(torch.as_tensor(batch["s2_codes"], device=device), said)
        say_loss = F.cross_entropy(logits.flatten(0, 1), said.flatten(), ignore_index=0)
        loss = read_loss + track_loss + say_loss
        with torch.no_grad():
            said_right = ((logits.argmax(-1) == said) | (said == 0)).all(-1)
        return loss, {
            "system2_loss": float(loss.detach()),
            "system2_reading_accuracy": read_info["instruction_accuracy"],
            "system2_tracking_accuracy": float((track.argmax(-1) == which).float().mean()),
            "system2_saying_accuracy": float(said_right.float().mean()),
        }

    def read(self, tokens: np.ndarray, table: np.ndarray) -> list[Link]:
        """The instruction's links ``(L, G)`` pointed at the objects of the first table."""
        return self.reader.links(tokens, table)

    @torch.no_grad()
    def next_link(self, features: np.ndarray) -> int:
        """The link to work on, from the links' features now (instruction order)."""
        x = torch.as_tensor(np.asarray(features, np.float32)[None])
        return int(self.tracker(x.to(self.tracker.net[0].weight.device))[0].argmax())

    def say(self, link: Link) -> str:
        return self.speaker.say(link)
