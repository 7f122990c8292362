"""``llm-crafter:<N>p``: language-model players in multi-agent Crafter.

Each player (``player_0`` …) is an LLM agent commanding one team, named after itself. Its
observation is the ``crafter:`` family's text view (vitals, inventory, daylight, what is where
in its view, teammates and their last actions) followed, as in the SMAC bridge, by its valid
actions (the available ones under the action mask), its last actions, the errors in its last
reply, the messages it received and the task. Actions are Crafter's, written in the grammar
as ``<Move_Left()>``, ``<Do()>``, ``<Make_Wood_Pickaxe()>``, ``<Give_Wood()>`` (no arguments).

One decision every ``decision_steps`` environment steps (default 1); a player's actions (at
most ``max_actions``, default 1) are carried out one per step, then it does nothing (noop)
until the next decision. An unknown or unavailable action is dropped with an error line; one
that has become unavailable when its turn comes is a noop, with an error line. Messages work as
in the SMAC bridge. Each world is a :class:`~marl.envs.crafter.env.MultiCrafter` with
``obs_type="text"``; ``llm-crafter:mac-<N>p`` has DAMCS's MAC rules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from marl.envs.crafter import parallel_env as crafter_env
from marl.envs.crafter.rules import ACTIONS
from marl.llm.grammar import parse_reply
from marl.llm.text_env import Mailroom, TextStep

GRAMMAR_NAMES = tuple("_".join(p.capitalize() for p in a.split("_")) for a in ACTIONS)
ACTION_OF = {name: i for i, name in enumerate(GRAMMAR_NAMES)}
NOOP = 0


@dataclass
class _World:
    env: Any
    obs: dict[str, str] = field(default_factory=dict)
    infos: dict[str, dict] = field(default_factory=dict)
    queue: dict[str, list[int]] = field(default_factory=dict)
    last_actions: dict[str, str] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    mail: Mailroom = field(default_factory=Mailroom)
    active: bool = True


class CrafterTextWorlds:
    """``worlds`` multi-agent Crafter worlds with LLM agents' text I/O (same interface as
    :class:`~marl.llm.smac_text.SMACTextBattles`: a world that ended stays ended until
    ``reset()``)."""

    def __init__(self, name: str, worlds: int = 1, *, decision_steps: int = 1,
                 max_actions: int = 1, task: str | None = None, seed: int | None = None,
                 **crafter_kwargs: Any) -> None:
        for key, value in (("decision_steps", decision_steps), ("max_actions", max_actions),
                           ("worlds", worlds)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{key}={value!r}: a positive integer")
        if "obs_type" in crafter_kwargs:
            raise ValueError("llm-crafter: obs_type is always 'text'")
        self.worlds = [_World(crafter_env(name, obs_type="text", seed=None if seed is None
                                          else seed + i, **crafter_kwargs))
                       for i in range(worlds)]
        self.num_battles = worlds
        self.agents = list(self.worlds[0].env.possible_agents)
        self.teams = {a: (a,) for a in self.agents}
        self.decision_steps, self.max_actions = decision_steps, max_actions
        self.task = task or ("Survive and unlock as many achievements as you can, working with "
                             "the other players: collect wood, place a table, make tools, "
                             "collect stone, coal, iron and finally a diamond.")
        self.last_obs: list[dict[str, str]] = []

    @property
    def active(self) -> list[bool]:
        return [w.active for w in self.worlds]

    def reset(self, seed: int | None = None) -> list[dict[str, str]]:
        for i, w in enumerate(self.worlds):
            w.obs, w.infos = w.env.reset(seed=None if seed is None else seed + i)
            w.queue, w.last_actions, w.errors, w.mail = {}, {}, {}, Mailroom()
            w.active = True
        self.last_obs = [self._texts(w) for w in self.worlds]
        return self.last_obs

    def live_agents(self, battle: int) -> list[str]:
        w = self.worlds[battle]
        return list(w.env.agents) if w.active else []

    def step(self, replies: Sequence[Mapping[str, str]]) -> TextStep:
        if len(replies) != self.num_battles:
            raise ValueError(f"step() takes one mapping of replies per world "
                             f"({self.num_battles}), got {len(replies)}")
        n = self.num_battles
        reward, terminated, truncated = np.zeros(n), [False] * n, [False] * n
        info: list[dict[str, Any]] = [{"actions": 0, "rejected": 0, "parse_errors": 0}
                                      for _ in range(n)]
        playing = [i for i, w in enumerate(self.worlds) if w.active]
        for i in playing:
            self._read_replies(self.worlds[i], replies[i], info[i])
        for _ in range(self.decision_steps):
            for i in playing:
                w = self.worlds[i]
                if not w.active:
                    continue
                actions = {a: self._next_action(w, a) for a in w.env.agents}
                w.obs, rewards, terms, truncs, w.infos = w.env.step(actions)
                reward[i] += sum(rewards.values())
                if not w.env.agents:
                    w.active = False
                    terminated[i] = all(terms.values())
                    truncated[i] = not terminated[i]
        for i in playing:
            w = self.worlds[i]
            info[i]["achievements"] = sorted(set().union(*(
                set(v.get("achievements", ())) for v in w.infos.values())))
            if not w.active:
                info[i].update({f"episode_{k}": v for k, v in w.env.episode_figures().items()})
            self.last_obs[i] = self._texts(w)
        return TextStep(self.last_obs, reward.tolist(), terminated, truncated, info)

    def _next_action(self, w: _World, agent: str) -> int:
        queue = w.queue.get(agent, [])
        if not queue:
            return NOOP
        action = queue.pop(0)
        if not w.infos[agent]["action_mask"][action]:
            w.errors.setdefault(agent, []).append(
                f"<{GRAMMAR_NAMES[action]}()> was not possible any more when its turn came")
            return NOOP
        return action

    def _read_replies(self, w: _World, replies: Mapping[str, str],
                      counts: dict[str, Any]) -> None:
        outbox = []
        w.errors = {}  # errors are about the last reply only
        for agent in self.agents:
            if agent not in replies or agent not in w.env.agents:
                continue
            parsed = parse_reply(str(replies[agent]), [agent], max_actions=self.max_actions)
            errors = list(parsed.errors)
            counts["parse_errors"] += len(errors)
            mask = w.infos[agent]["action_mask"]
            queue: list[int] = []
            accepted: list[str] = []
            for action in parsed.actions.get(agent, []):
                counts["actions"] += 1
                index = ACTION_OF.get(action.name)
                problem = None
                if index is None:
                    problem = "unknown action (valid: the list under Valid Actions)"
                elif action.tags or action.point is not None:
                    problem = f"{action.name} takes no arguments"
                elif not mask[index]:
                    problem = "not possible now (missing materials, tools or a nearby table)"
                if problem is None and index is not None:
                    queue.append(index)
                    accepted.append(action.text())
                else:
                    counts["rejected"] += 1
                    errors.append(f"{action.text()}: {problem}")
            if parsed.actions.get(agent):
                w.queue[agent] = queue
            if accepted:
                w.last_actions[agent] = "  ".join(accepted)
            w.mail.listen(agent, parsed.listen)
            outbox += [(agent, m) for m in parsed.messages]
            w.errors[agent] = errors
        for sender, problems in w.mail.deliver(outbox, self.agents).items():
            w.errors[sender] += problems

    def _texts(self, w: _World) -> dict[str, str]:
        return {a: self._text(w, a) for a in self.agents}

    def _text(self, w: _World, agent: str) -> str:
        if agent not in w.env.agents:
            return str(w.obs.get(agent, "You are dead."))
        mask = w.infos[agent]["action_mask"]
        valid = "  ".join(f"<{GRAMMAR_NAMES[i]}()>" for i in range(len(ACTIONS)) if mask[i])
        lines = [str(w.obs[agent]), "Valid Actions:", f"    {valid}", "Last Actions:",
                 f"    {w.last_actions.get(agent, 'None')}"]
        if w.errors.get(agent):
            lines += ["Errors in your last reply:", *(f"    {e}" for e in w.errors[agent])]
        lines += w.mail.lines(agent, self.agents)
        lines += ["Task:", f"    {self.task}",
                  f"Give no more than {self.max_actions} action"
                  f"{'s' if self.max_actions > 1 else ''} (carried out one per step).",
                  "Now, start generating your analysis and actions:"]
        return "\n".join(lines)
