"""What every text environment shares: the result of a decision, the agents' mail, and the
PettingZoo face.

A text environment (:class:`~marl.llm.smac_text.SMACTextBattles`,
:class:`~marl.llm.crafter_text.CrafterTextWorlds`) runs several battles at once; ``reset()``
gives each agent's observation text in every battle, ``step(replies)`` takes each agent's reply
text and plays one decision. :class:`TextParallelEnv` shows one battle as a PettingZoo
``ParallelEnv`` whose observations and actions are strings.
"""

from __future__ import annotations

import string
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from gymnasium import spaces
from pettingzoo import ParallelEnv

from marl.llm.grammar import Message

MAX_MESSAGE = 500  # characters of a message passed on
TEXT_CHARS = string.printable  # what observations and replies are made of
TEXT_MAX = 1 << 20  # characters


@dataclass
class TextStep:
    """What one decision did in each battle (lists over battles)."""

    obs: list[dict[str, str]]
    reward: list[float]
    terminated: list[bool]
    truncated: list[bool]
    info: list[dict[str, Any]]


class TextBattles(Protocol):
    """Several battles with LLM agents' text I/O (a battle that ended stays ended until
    ``reset()``, so episodes run in waves, one per battle)."""

    agents: list[str]
    num_battles: int
    last_obs: list[dict[str, str]]

    @property
    def active(self) -> list[bool]: ...

    def reset(self, seed: int | None = None) -> list[dict[str, str]]: ...

    def live_agents(self, battle: int) -> list[str]: ...

    def step(self, replies: Any) -> TextStep: ...


@dataclass
class Mailroom:
    """The messages of one battle's agents: to an agent by name, or to a channel
    ``Channel-<i>`` that reaches every agent who listens to it (except the sender). A message
    is read in the recipient's next observation; listening lasts the episode."""

    listening: dict[str, set[str]] = field(default_factory=dict)  # channel -> agents
    inbox: dict[str, list[str]] = field(default_factory=dict)  # agent -> message lines

    def listen(self, agent: str, channels: Iterable[str]) -> None:
        for channel in channels:
            self.listening.setdefault(channel, set()).add(agent)

    def deliver(self, outbox: Iterable[tuple[str, Message]],
                agents: Collection[str]) -> dict[str, list[str]]:
        """Replace the inboxes with ``outbox`` (sender, message); errors per sender."""
        self.inbox = {}
        errors: dict[str, list[str]] = {}
        for sender, message in outbox:
            text = message.text[:MAX_MESSAGE]
            if message.to.startswith("Channel-"):
                for agent in sorted(self.listening.get(message.to, ())):
                    if agent != sender:
                        self.inbox.setdefault(agent, []).append(
                            f"From {sender} on {message.to}: '''{text}'''")
            elif message.to in agents and message.to != sender:
                self.inbox.setdefault(message.to, []).append(f"From {sender}: '''{text}'''")
            else:
                errors.setdefault(sender, []).append(
                    f"{message.text_form()[:80]}: no other agent named {message.to!r} "
                    f"(agents: {', '.join(agents)}; channels: Channel-<i>)")
        return errors

    def lines(self, agent: str, agents: Collection[str]) -> list[str]:
        """The observation's Communications section for ``agent``."""
        inbox = [f"    {m}" for m in self.inbox.get(agent, [])]
        others = [a for a in agents if a != agent]
        tail = ([f"    You can message {', '.join(others)} or a channel Channel-<i>."]
                if others else [])
        return ["Communications:", *(inbox or ["    No messages."]), *tail]


class TextParallelEnv(ParallelEnv):
    """One battle of a text environment as a PettingZoo ``ParallelEnv``: observations and
    actions are strings (``gymnasium.spaces.Text``), the reward is the battle's, each agent
    leaves ``agents`` when its units are all dead or the battle ends, and ``infos`` hold the
    battle's outcome (won, damage, kills and deaths, invalid actions) of the last decision."""

    metadata: dict[str, Any] = {"name": "marl_llm_text_v1", "is_parallelizable": True}

    def __init__(self, battles: Any) -> None:
        if battles.num_battles != 1:
            raise ValueError("TextParallelEnv shows one battle; make the text environment "
                             "with one battle")
        self.battles = battles
        self.possible_agents = list(battles.agents)
        self.agents: list[str] = []
        self._space = spaces.Text(max_length=TEXT_MAX, charset=TEXT_CHARS)

    def observation_space(self, agent: str) -> spaces.Space:
        return self._space

    def action_space(self, agent: str) -> spaces.Space:
        return self._space

    def reset(self, seed: int | None = None,
              options: dict | None = None) -> tuple[dict[str, str], dict[str, dict]]:
        obs = self.battles.reset(seed=seed)[0]
        self.agents = self.battles.live_agents(0)
        return {a: obs[a] for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions: dict[str, str]) -> tuple[dict, dict, dict, dict, dict]:
        unknown = sorted(set(actions) - set(self.agents))
        if unknown:
            raise ValueError(f"actions for agents not in play: {', '.join(unknown)} "
                             f"(in play: {', '.join(self.agents)})")
        before = self.agents
        result = self.battles.step([{a: str(t) for a, t in actions.items()}])
        self.agents = self.battles.live_agents(0)
        obs = result.obs[0]
        ended = result.terminated[0] or result.truncated[0]
        terminations = {a: (result.terminated[0] or a not in self.agents) and
                        not result.truncated[0] for a in before}
        truncations = {a: result.truncated[0] for a in before}
        rewards = {a: float(result.reward[0]) for a in before}
        infos = {a: dict(result.info[0]) for a in before}
        if ended:
            self.agents = []
        return {a: obs[a] for a in before}, rewards, terminations, truncations, infos

    def close(self) -> None:
        close = getattr(getattr(self.battles, "env", None), "close", None)
        if close is not None:
            close()
