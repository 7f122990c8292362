"""StarCraft battles in words: LLM-PySC2's observation text and action grammar over SMAC.

``llm-smac:<map>`` runs on the built-in simulator (``smac:<map>``, many battles at once) and
``llm-sc2:<map>`` on the real game (``sc2:<map>``). Each *LLM agent* commands one or more
*teams* of allied units (``teams=``):

- ``"unit"`` (default): one agent per unit, each its own team, named ``<Type>-<k>``
  (``Stalker-1``, ``Stalker-2``, counted per type in SMAC's unit order);
- ``"type"``: one agent per unit type, commanding all its units as one team (``Stalker``);
- ``"commander"``: one agent, ``Commander``, commanding every unit as its own team (LLM-PySC2's
  3s_vs_5z set-up: one agent, teams Stalker-1/2/3);
- a mapping ``{agent: [unit team names]}`` covering every unit once.

**Observation** (per agent, deterministic for a state; LLM-PySC2's layout): game time; per team
its units (type, hex tag, screen position, health and shields with %, weapon cooldown in game
loops), the other allies and the enemies within sight of the team (with distance, health %);
relevant knowledge (each unit type on the map, written from our unit statistics); the valid
actions per team with their arguments; the team's last actions; errors in the agent's last
reply; messages received; the task. Tags are the game's in ``llm-sc2`` and
``0x1<slot:04x>0001`` in the simulator. Screen positions map the whole map onto [0, 128]²
(x to the east, y to the north).

**Actions** (:mod:`marl.llm.grammar`, at most ``max_actions`` per team, the first now and the
rest queued): ``<Attack_Unit(tag)>``, ``<Move_Screen([x, y])>``, ``<Stop()>``,
``<No_Operation()>`` (keep the current orders), a Medivac's ``<Heal_Unit(tag)>``;
``<MessageTo(agent|Channel-i, '''text''')>`` and ``<ListenTo(Channel-i)>``. Orders stand
across steps until done or replaced (:mod:`marl.llm.smac_orders`). Anything invalid (unknown
name, bad or missing argument, an ally as attack target, a point off the screen, a unit that
cannot do it) is a no-op for the units concerned and a line under "Errors in your last reply"
in the agent's next observation; a team with no valid action keeps its orders.

**Time**: one decision every ``decision_seconds`` game seconds (default 1, LLM-PySC2's
``MAX_LLM_DECISION_FREQUENCY``), i.e. ``round(decision_seconds / (8 / 22.4))`` environment
steps (at least 1), orders carried out in between.

**Outcome** per battle and decision: the SMAC reward summed over the steps (each agent gets the
battle's), and ``won``, ``damage_dealt``/``damage_taken`` (health and shields lost, summed over
steps), ``kills``/``deaths``, ``actions`` (team actions read), ``rejected`` (actions refused)
and ``parse_errors`` (the parser's error lines).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from marl.envs.smac.env import SMACEnv
from marl.envs.smac.maps import SMACMap
from marl.envs.smac.units import LOOPS_PER_SECOND, STEP_LOOPS, UnitType
from marl.llm.grammar import Message, TextAction, parse_reply
from marl.llm.smac_orders import Order, OrderBook, focus_fire_orders
from marl.llm.text_env import Mailroom, TextStep

SCREEN = 128
STEP_SECONDS = STEP_LOOPS / LOOPS_PER_SECOND
TEAM_LAYOUTS = ("unit", "type", "commander")
RACES = {"T": "Terran", "P": "Protoss", "Z": "Zerg"}


def display_name(unit: UnitType) -> str:
    """The game's name of a unit type: ``Stalker``, ``SpineCrawler``."""
    return "".join(part.capitalize() for part in unit.name.split("_"))


@dataclass(frozen=True)
class Team:
    """Allied units commanded together: ``units`` are ally slots."""

    name: str
    units: tuple[int, ...]


def plan_teams(allies: Sequence[UnitType],
               layout: str | Mapping[str, Sequence[str]]) -> dict[str, tuple[Team, ...]]:
    """The teams of each LLM agent (see the module card), in a fixed order."""
    counts: dict[str, int] = {}
    singles = []
    for slot, unit in enumerate(allies):
        name = display_name(unit)
        counts[name] = counts.get(name, 0) + 1
        singles.append(Team(f"{name}-{counts[name]}", (slot,)))
    if layout == "unit":
        return {t.name: (t,) for t in singles}
    if layout == "commander":
        return {"Commander": tuple(singles)}
    if layout == "type":
        kinds = dict.fromkeys(display_name(u) for u in allies)
        return {k: (Team(k, tuple(s for s, u in enumerate(allies) if display_name(u) == k)),)
                for k in kinds}
    if not isinstance(layout, Mapping):
        raise ValueError(f"teams={layout!r}: one of {', '.join(TEAM_LAYOUTS)}, or a mapping "
                         "{agent: [unit team names]}")
    by_name = {t.name: t for t in singles}
    given = [n for names in layout.values() for n in names]
    unknown = sorted(set(given) - set(by_name))
    missing = [n for n in by_name if n not in given]
    twice = sorted({n for n in given if given.count(n) > 1})
    if unknown or missing or twice or not all(layout.values()):
        raise ValueError(
            f"teams: every unit team ({', '.join(by_name)}) must belong to exactly one agent"
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
            + (f"; not given: {', '.join(missing)}" if missing else "")
            + (f"; given twice: {', '.join(twice)}" if twice else "")
            + ("; an agent without teams" if not all(layout.values()) else ""))
    return {str(agent): tuple(by_name[n] for n in names) for agent, names in layout.items()}


def knowledge(unit: UnitType) -> str:
    """One line of facts about a unit type, written from its statistics."""
    traits = ", ".join([RACES[unit.race], *sorted(unit.attributes)] + (["air"] if unit.air else []))
    vitals = f"{unit.health:g} health" + (f", {unit.shield:g} shields" if unit.shield else "")
    vitals += f", armour {unit.armour:g}"
    bonus = "".join(f" (+{v:g} vs {k})" for k, v in sorted(unit.bonus.items()))
    hits = f"{unit.attacks} x {unit.damage:g}" if unit.attacks > 1 else f"{unit.damage:g}"
    if unit.healer:
        weapon = (f"heals {unit.heal_rate:g} health per second within {unit.range:g} "
                  f"(1 energy per 3 health, {unit.max_energy:g} energy at most); cannot attack")
    elif unit.splash_radius:
        weapon = (f"explodes on its target for {hits} damage{bonus} to every enemy within "
                  f"{unit.splash_radius:g}, and dies")
    else:
        reach = "melee" if unit.range < 1 else f"range {unit.range:g}"
        weapon = f"{hits} damage{bonus} every {unit.cooldown:g} s, {reach}"
    speed = f"speed {unit.speed:g}" if unit.speed else "cannot move"
    regen = f"; regenerates {unit.health_regen:g} health per second" if unit.health_regen else ""
    return f"{display_name(unit)} ({traits}): {vitals}; {weapon}; {speed}{regen}."


@dataclass
class _Episode:
    """A battle's running episode: the texts' memory and the outcome so far."""

    last_actions: dict[str, str] = field(default_factory=dict)  # team -> accepted actions
    errors: dict[str, list[str]] = field(default_factory=dict)  # agent -> lines
    mail: Mailroom = field(default_factory=Mailroom)
    active: bool = True


class SMACTextBattles:
    """``env.num_envs`` SMAC battles (simulator or real game) with LLM agents' text I/O.

    ``reset()`` starts a battle in every copy; ``step(replies)`` takes one reply per agent and
    battle (agents left out keep their orders) and plays one decision. A battle that ended
    stays ended (no more observations, its replies ignored) until the next ``reset()``, so
    that episodes run in waves, one per battle, as ``marl.runner.evaluate`` does.
    """

    def __init__(self, env: Any, map_name: str, *,
                 teams: str | Mapping[str, Sequence[str]] = "unit",
                 decision_seconds: float = 1.0, max_actions: int = 3,
                 task: str | None = None) -> None:
        if not decision_seconds > 0:
            raise ValueError(f"decision_seconds={decision_seconds!r}: a positive number of game "
                             "seconds between decisions")
        if not isinstance(max_actions, int) or max_actions < 1:
            raise ValueError(f"max_actions={max_actions!r}: a positive integer (actions per team "
                             "and decision)")
        self.env = env
        env.autoreset = False  # a finished battle keeps its final state for the last text
        self.sim: SMACEnv = env if isinstance(env, SMACEnv) else env.sims[0]
        scenario = self.sim.scenario
        if not isinstance(scenario, SMACMap):
            raise ValueError("the text bridge needs a fixed SMAC map (its teams and tags are "
                             "fixed); SMACv2's generated scenarios are not supported")
        self.map_name = map_name
        self.units: tuple[UnitType, ...] = scenario.ally_units + scenario.enemy_units
        self.n_agents = n = scenario.n_agents
        self.teams = plan_teams(self.units[:n], teams)
        self.agents = list(self.teams)
        self.num_battles = env.num_envs
        self.max_actions = max_actions
        self.decision_steps = max(1, round(decision_seconds / STEP_SECONDS))
        self.book = OrderBook(self.num_battles, n)
        self.task = task or self._default_task()
        kinds = {u.name: u for u in self.units}
        self.knowledge = "\n".join(f"    {knowledge(u)}" for u in kinds.values())
        self.episodes = [_Episode() for _ in range(self.num_battles)]
        self.last_obs: list[dict[str, str]] = []

    # --- names ------------------------------------------------------------------------------
    def tag(self, battle: int, slot: int) -> str:
        """The hex tag of the unit in ``slot``: the game's (``llm-sc2``) or a fixed one."""
        battles = getattr(self.env, "battles", None)
        if battles is not None:
            return f"0x{battles[battle].tags[slot]:x}"
        return f"0x{(1 << 32) | (slot << 16) | 1:x}"

    def _slots_by_tag(self, battle: int) -> dict[str, int]:
        return {self.tag(battle, s): s for s in range(len(self.units))}

    def _default_task(self) -> str:
        def army(units: Sequence[UnitType]) -> str:
            kinds = dict.fromkeys(display_name(u) for u in units)
            counts = {k: sum(display_name(u) == k for u in units) for k in kinds}
            return ", ".join(f"{c} {k}{'s' if c > 1 else ''}" for k, c in counts.items())

        n = self.n_agents
        return (f"Win the battle on map {self.map_name}: destroy every enemy unit "
                f"({army(self.units[n:])}) with your army ({army(self.units[:n])}) before time "
                f"runs out ({self.sim.spec.episode_limit * STEP_SECONDS:.0f} game seconds). "
                "Focus fire and keep your units alive.")

    # --- episodes ---------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> list[dict[str, str]]:
        """A new battle in every copy; the first observation of every agent."""
        self.env.reset(seed=seed)
        for b in range(self.num_battles):
            self.book.clear(b)
        self.episodes = [_Episode() for _ in range(self.num_battles)]
        self.last_obs = self._texts(self.arrays(), range(self.num_battles))
        return self.last_obs

    @property
    def active(self) -> list[bool]:
        return [e.active for e in self.episodes]

    def live_agents(self, battle: int) -> list[str]:
        """The agents of ``battle`` with a living unit (the ones to ask), none once it ended."""
        if not self.episodes[battle].active:
            return []
        alive = self.arrays()["alive"][battle]
        return [a for a, teams in self.teams.items() if any(alive[s] for t in teams
                                                            for s in t.units)]

    def step(self, replies: Sequence[Mapping[str, str]]) -> TextStep:
        """One decision: read each battle's replies, then play ``decision_steps`` steps."""
        if len(replies) != self.num_battles:
            raise ValueError(f"step() takes one mapping of replies per battle "
                             f"({self.num_battles}), got {len(replies)}")
        view = self.arrays()
        playing = [b for b in range(self.num_battles) if self.episodes[b].active]
        counts = [{"actions": 0, "rejected": 0, "parse_errors": 0} for _ in range(self.num_battles)]
        for b in playing:
            self._read_replies(b, replies[b], view, counts[b])
        n = self.n_agents
        reward = np.zeros(self.num_battles)
        dealt, taken = np.zeros(self.num_battles), np.zeros(self.num_battles)
        kills, deaths = np.zeros(self.num_battles, int), np.zeros(self.num_battles, int)
        won = np.zeros(self.num_battles, bool)
        terminated, truncated = np.zeros(self.num_battles, bool), np.zeros(self.num_battles, bool)
        for _ in range(self.decision_steps):
            still = [b for b in playing if self.episodes[b].active]
            if not still:
                break
            for b in range(self.num_battles):
                if not self.episodes[b].active:
                    self.book.clear(b)  # an ended battle's survivors hold
            actions = self.book.actions(view["pos"], view["alive"], view["avail"])
            step = self.env.step(actions.to(self.env.device))
            after = self.arrays()
            hp, hp_after = view["hit_points"], after["hit_points"]
            lost = np.clip(hp - hp_after, 0, None)
            died = view["alive"] & ~after["alive"]
            done = (step.terminated | step.truncated).cpu().numpy()
            step_reward = step.reward.sum(-1).cpu().numpy()
            step_won = step.info["won"].cpu().numpy()
            for b in still:
                reward[b] += step_reward[b]
                dealt[b] += lost[b, n:].sum()
                taken[b] += lost[b, :n].sum()
                kills[b] += died[b, n:].sum()
                deaths[b] += died[b, :n].sum()
                if done[b]:
                    self.episodes[b].active = False
                    won[b] = step_won[b]
                    terminated[b] = bool(step.terminated[b])
                    truncated[b] = bool(step.truncated[b])
            view = after
        self.last_obs = self._texts(view, playing, previous=self.last_obs)
        info = [{"won": bool(won[b]), "damage_dealt": float(dealt[b]),
                 "damage_taken": float(taken[b]), "kills": int(kills[b]),
                 "deaths": int(deaths[b]), **counts[b]} for b in range(self.num_battles)]
        return TextStep(self.last_obs, reward.tolist(), terminated.tolist(), truncated.tolist(),
                        info)

    # --- the battle as arrays ---------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        """Every battle's units as numpy arrays ``[B, U, ...]`` (allies first)."""
        s = self.env.state
        k = self.sim.columns(s)
        health, shield = s.health.cpu().numpy(), s.shield.cpu().numpy()
        return {"pos": s.pos.cpu().numpy().astype(np.float64), "health": health,
                "shield": shield, "alive": health > 0,
                "hit_points": np.clip(health, 0, None) + np.clip(shield, 0, None),
                "cooldown": s.cooldown.cpu().numpy(), "t": s.t.cpu().numpy(),
                "avail": self.env.last_obs.avail.cpu().numpy(),
                "sight": k.sight.expand_as(s.health).cpu().numpy(),
                "bounds": np.array([self._bounds(b) for b in range(self.num_battles)])}

    def _bounds(self, battle: int) -> tuple[float, float]:
        sims = getattr(self.env, "sims", None)
        sim = sims[battle] if sims is not None else self.sim
        return (float(sim.bounds[0]), float(sim.bounds[1]))

    def _screen(self, pos: np.ndarray, bounds: np.ndarray) -> list[int]:
        return [int(round(float(pos[i]) / float(bounds[i]) * SCREEN)) for i in range(2)]

    # --- replies -> orders ------------------------------------------------------------------
    def _read_replies(self, b: int, replies: Mapping[str, str], view: dict[str, np.ndarray],
                      counts: dict[str, int]) -> None:
        episode = self.episodes[b]
        episode.errors = {}  # errors are about the last reply only
        tags = self._slots_by_tag(b)
        outbox: list[tuple[str, Message]] = []
        for agent in self.agents:
            if agent not in replies:
                continue
            teams = {t.name: t for t in self.teams[agent]}
            parsed = parse_reply(str(replies[agent]), list(teams), max_actions=self.max_actions)
            errors = list(parsed.errors)
            counts["parse_errors"] += len(parsed.errors)
            for team_name, actions in parsed.actions.items():
                team = teams[team_name]
                accepted = []
                per_unit: dict[int, list[Order]] = {s: [] for s in team.units}
                for action in actions:
                    counts["actions"] += 1
                    problem = self._check(action, team, b, tags, view, per_unit)
                    if problem is None:
                        accepted.append(action.text())
                    else:
                        counts["rejected"] += 1
                        errors.append(f"Team {team_name}: {action.text()}: {problem}")
                for slot, orders in per_unit.items():
                    if orders:
                        self.book.give(b, slot, orders)
                if accepted:
                    episode.last_actions[team_name] = "  ".join(accepted)
            episode.mail.listen(agent, parsed.listen)
            outbox += [(agent, m) for m in parsed.messages]
            episode.errors[agent] = errors
        for sender, problems in episode.mail.deliver(outbox, self.agents).items():
            episode.errors[sender] += problems

    def _check(self, action: TextAction, team: Team, b: int, tags: dict[str, int],
               view: dict[str, np.ndarray], per_unit: dict[int, list[Order]]) -> str | None:
        """Why ``action`` is invalid for ``team``, or None after adding its orders."""
        n = self.n_agents
        name = action.name
        healer = [self.units[s].healer for s in team.units]
        known = ["Stop", "No_Operation", "Move_Screen"]
        known += (["Heal_Unit"] if any(healer) else []) + (["Attack_Unit"]
                                                           if not all(healer) else [])
        if name not in known:
            return f"unknown action {name!r} for this team (valid: {', '.join(known)})"
        wants_tag, wants_point = name in ("Attack_Unit", "Heal_Unit"), name == "Move_Screen"
        if len(action.tags) != int(wants_tag) or (action.point is not None) != wants_point:
            args = "a tag" if wants_tag else "a point [x, y]" if wants_point else "no arguments"
            return f"{name} takes {args}"
        if name == "Stop":
            order = Order("stop")
        elif name == "No_Operation":
            return None
        elif name == "Move_Screen":
            assert action.point is not None
            if not all(0 <= c <= SCREEN for c in action.point):
                return f"the point {list(action.point)} is off the screen (0..{SCREEN})"
            x, y = (action.point[i] / SCREEN * view["bounds"][b, i] for i in range(2))
            order = Order("move", point=(float(x), float(y)))
        else:
            slot = tags.get(action.tags[0])
            if slot is None:
                return f"no unit has the tag {action.tags[0]}"
            if not view["alive"][b, slot]:
                return f"the unit {action.tags[0]} is dead"
            if name == "Attack_Unit" and slot < n:
                return f"{action.tags[0]} is an ally; attack enemies"
            if name == "Heal_Unit" and (slot >= n or self.units[slot].healer):
                return f"{action.tags[0]} cannot be healed (heal allies that are not Medivacs)"
            order = Order("attack" if name == "Attack_Unit" else "heal", target=slot)
        for slot, heals in zip(team.units, healer, strict=True):
            if order.kind in ("stop", "move") or (order.kind == "heal") == heals:
                per_unit[slot].append(order)
        return None

    # --- texts ------------------------------------------------------------------------------
    def _texts(self, view: dict[str, np.ndarray], battles: Any,
               previous: list[dict[str, str]] | None = None) -> list[dict[str, str]]:
        out = list(previous) if previous else [{} for _ in range(self.num_battles)]
        for b in battles:
            out[b] = {agent: self._text(b, agent, view) for agent in self.agents}
        return out

    def _unit_line(self, b: int, slot: int, view: dict[str, np.ndarray],
                   distance: float | None = None) -> str:
        unit = self.units[slot]
        health = max(float(view["health"][b, slot]), 0.0)
        parts = [f"Unit: {display_name(unit)}", f"Tag: {self.tag(b, slot)}",
                 f"ScreenPos: {self._screen(view['pos'][b, slot], view['bounds'][b])}"]
        if distance is not None:
            parts.append(f"Distance: {distance:.1f}")
        parts.append(f"Health: {health:.0f}({100 * health / unit.health:.0f} %)")
        if unit.shield:
            shield = max(float(view["shield"][b, slot]), 0.0)
            parts.append(f"Shield: {shield:.0f}({100 * shield / unit.shield:.0f} %)")
        if distance is None:
            parts.append(f"Weapon_cooldown: {float(view['cooldown'][b, slot]):.0f}")
        return "    ".join(parts)

    def _text(self, b: int, agent: str, view: dict[str, np.ndarray]) -> str:
        n, pos, alive = self.n_agents, view["pos"][b], view["alive"][b]
        seconds = int(view["t"][b] * STEP_SECONDS)
        lines = ["Game Info:", f"    Time: {seconds // 60}:{seconds % 60:02d}"]
        own = [s for t in self.teams[agent] for s in t.units]
        for team in self.teams[agent]:
            lines.append(f"Team {team.name} Info:")
            living = [s for s in team.units if alive[s]]
            if not living:
                lines.append("    All units of this team are dead.")
                continue
            lines.append("    Controlled Team Units:")
            lines += [f"        {self._unit_line(b, s, view)}" for s in living]
            dist = np.linalg.norm(pos[:, None, :] - pos[None, living, :], axis=-1).min(-1)
            seen = dist < view["sight"][b, living].max()
            for title, slots in (("Nearby Allied Units", range(n)),
                                 ("Nearby Enemy Units", range(n, len(self.units)))):
                near = sorted((s for s in slots if alive[s] and seen[s] and s not in own),
                              key=lambda s: (round(float(dist[s]), 1), s))
                if near:
                    lines.append(f"    {title}:")
                    lines += [f"        {self._unit_line(b, s, view, float(dist[s]))}"
                              for s in near]
        lines += ["Relevant Knowledge:", self.knowledge, "Valid Actions:"]
        for team in self.teams[agent]:
            healer = [self.units[s].healer for s in team.units]
            valid = ["<Stop()>", "<No_Operation()>", "<Move_Screen(screen)>"]
            valid += (["<Attack_Unit(tag)>"] if not all(healer) else []) + (
                ["<Heal_Unit(tag)>"] if any(healer) else [])
            lines += [f"    Team {team.name} Valid Actions:", "        " + "  ".join(valid)]
        lines += ["Action Args:",
                  "    (1) tag: a unit's hex tag, e.g. " + self.tag(b, n),
                  f"    (2) screen: a point [x, y] with 0 <= x, y <= {SCREEN} (the whole map; "
                  "x grows to the east, y to the north)"]
        episode = self.episodes[b]
        last = [f"    Team {t.name}: {episode.last_actions[t.name]}" for t in self.teams[agent]
                if t.name in episode.last_actions]
        lines += ["Last Actions:", *(last or ["    None"])]
        if episode.errors.get(agent):
            lines += ["Errors in your last reply:",
                      *(f"    {e}" for e in episode.errors[agent])]
        lines += episode.mail.lines(agent, self.agents)
        lines += ["Task:", f"    {self.task}",
                  f"Give each team no more than {self.max_actions} actions (the first is "
                  "carried out now, the rest after it).",
                  "Now, start generating your analysis and actions:"]
        return "\n".join(lines)


def focus_fire_actions(battles: SMACTextBattles) -> None:
    """Give every unit of every running battle the focus-fire heuristic's orders directly
    (no text): the id-level baseline the scripted text policy is compared with."""
    view = battles.arrays()
    n = battles.n_agents
    max_hp = np.array([u.health for u in battles.units])
    for b, episode in enumerate(battles.episodes):
        if not episode.active:
            continue
        fraction = np.clip(view["health"][b], 0, None) / max_hp
        orders = focus_fire_orders(view["pos"][b], view["alive"][b], view["hit_points"][b],
                                   fraction, view["sight"][b, :n],
                                   np.array([u.healer for u in battles.units[:n]]), n)
        for slot, given in enumerate(orders):
            if given:
                battles.book.give(b, slot, given)

