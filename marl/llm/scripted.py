"""Scripted text policies: they read an observation *text* and write a reply in the grammar.

They stand in for a language model behind :class:`~marl.llm.backends.FunctionBackend`, so the
whole loop (observation text, prompt, reply, parser, orders) runs without one, and they give
the baselines a model is compared with:

- :func:`focus_fire_reply` — every team attacks, among the enemies in its "Nearby Enemy Units"
  within attack range (6), the one with the fewest hit points (health + shields; ties: the
  nearer, then the first listed), else the nearest enemy it sees, and stops when it sees none;
  a Medivac team heals the nearby non-Medivac ally with the lowest health % (ties: the
  nearer). It is :func:`marl.llm.smac_orders.focus_fire_orders` read off the text, so
  comparing the two measures what the text layer loses.
- :func:`random_reply` — every team takes a uniformly random one of: stop, a move to a random
  screen point, an attack on a random nearby enemy (a heal of a random nearby ally), drawn from
  a generator seeded by the decision's key.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from marl.envs.smac.maps import SHOOT
from marl.llm.backends import Request
from marl.llm.grammar import TextAction, format_reply

_TEAM = re.compile(r"^Team (\S+) Info:$")
_UNIT = re.compile(r"Unit: (\w+)\s+Tag: (0x[0-9a-f]+)\s+ScreenPos: \[(-?\d+), (-?\d+)\]"
                   r"(?:\s+Distance: ([\d.]+))?\s+Health: (\d+)\((\d+) %\)"
                   r"(?:\s+Shield: (\d+)\((\d+) %\))?")
_VALID = re.compile(r"^Team (\S+) Valid Actions:$")


@dataclass
class SeenUnit:
    kind: str
    tag: str
    distance: float
    health: int
    health_pct: int
    shield: int


@dataclass
class TeamView:
    """What one team block of an observation text lists."""

    name: str
    enemies: list[SeenUnit] = field(default_factory=list)
    allies: list[SeenUnit] = field(default_factory=list)
    heals: bool = False  # its valid actions include Heal_Unit


def read_observation(text: str) -> list[TeamView]:
    """The teams of an LLM-PySC2-style observation text, with the units they see."""
    teams: dict[str, TeamView] = {}
    team: TeamView | None = None  # the team block being read (top-level "Team X Info:")
    section = ""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip(" "))
        if indent == 0:
            m = _TEAM.match(stripped)
            team = teams.setdefault(m[1], TeamView(m[1])) if m is not None else None
            section = ""
        elif (m := _VALID.match(stripped)) is not None and m[1] in teams:
            teams[m[1]].heals = i + 1 < len(lines) and "<Heal_Unit(" in lines[i + 1]
        elif team is not None and indent == 4:
            section = stripped
        elif team is not None and (m := _UNIT.search(stripped)) is not None:
            unit = SeenUnit(m[1], m[2], float(m[5] or 0.0), int(m[6]), int(m[7]),
                            int(m[8] or 0))
            if section == "Nearby Enemy Units:":
                team.enemies.append(unit)
            elif section == "Nearby Allied Units:":
                team.allies.append(unit)
    return list(teams.values())


def focus_fire_reply(request: Request) -> str:
    """The focus-fire heuristic's reply to the observation in ``request`` (its last message)."""
    actions: dict[str, list[TextAction]] = {}
    for team in read_observation(request.messages[-1]["content"]):
        if team.heals:
            friends = [u for u in team.allies if u.kind != "Medivac"]
            pick = min(friends, key=lambda u: (u.health_pct, u.distance), default=None)
            name = "Heal_Unit"
        else:
            in_range = [u for u in team.enemies if u.distance <= SHOOT]
            pick = (min(in_range, key=lambda u: (u.health + u.shield, u.distance)) if in_range
                    else min(team.enemies, key=lambda u: u.distance, default=None))
            name = "Attack_Unit"
        actions[team.name] = [TextAction(name, (pick.tag,)) if pick is not None
                              else TextAction("Stop")]
    return format_reply(actions, analysis="Focus fire on the weakest enemy in range.")


def random_reply(request: Request, seed: int = 0) -> str:
    """A random valid-looking reply (see the module card)."""
    rng = random.Random(f"{seed}/{request.key}")
    actions: dict[str, list[TextAction]] = {}
    for team in read_observation(request.messages[-1]["content"]):
        targets = [u for u in team.allies if u.kind != "Medivac"] if team.heals else team.enemies
        choice = rng.randrange(3 if targets else 2)
        if choice == 0:
            action = TextAction("Stop")
        elif choice == 1:
            action = TextAction("Move_Screen", point=(rng.randint(0, 128), rng.randint(0, 128)))
        else:
            action = TextAction("Heal_Unit" if team.heals else "Attack_Unit",
                                (rng.choice(targets).tag,))
        actions[team.name] = [action]
    return format_reply(actions, analysis="Random.")
