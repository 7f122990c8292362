"""The built-in SMAC simulator: many copies of a StarCraft II micro battle as tensor code.

Interface (SMAC's, default flags): observations, state, actions and availability as laid out
in :mod:`marl.envs.smac.maps`; the team reward is SMAC's (damage dealt to enemy health and
shields, +10 per kill, +200 for a win, scaled so a perfect episode returns 20) split evenly
over the agents, so the agents' rewards sum to SMAC's scalar; ``info["won"]``. SMAC takes the
absolute value of a step's gain (enemy shields that regenerate pay), SMACv2 clips it at 0. The
same simulator plays SMACv2-style generated scenarios (:mod:`marl.envs.smac.generated`: unit
types and starts drawn per copy and episode, per-type sight and attack ranges); there the
reward is scaled by each battle's own enemies (SMAC scales by the first episode's), so that a
perfect battle returns 20 whatever was drawn.

The map (SMAC maps: :mod:`marl.envs.smac.mapdata`, from the map files): its walkable cells
(:mod:`marl.envs.smac.terrain`), where each side's units start (the same every episode, as in
the game), the enemies' order, and the allies' unit statistics (the map's ``_RL`` copies).

Dynamics, per environment step of 8 game loops, each loop for every unit of every copy at once:

1. **Orders.** An agent's action sets its order for the step: stop (hold still), move 2 units
   north/south/east/west, or attack enemy ``j`` (a Medivac: heal ally ``j``). Allied units
   never act on their own (SMAC's allies are passive).
2. **Enemy AI**: the map's order, then SC2's unit behaviour (:meth:`SMACEnv._enemy_ai`,
   docs/envs/smac.md): attack-move towards the map's point, acquire an ally within scan range
   (one that attacks it first, then one that can hurt it or is flagged as a threat — the
   Medivac — the closest), keep it while it stays
   targetable and within its weapon's range, resume the attack-move without one. Every 0.5 game
   seconds, enemies without a target are ordered onto the closest ally: on SMAC's maps those
   standing idle at their order's point (the enemy is a computer player, whose AI sends its
   idle army after the enemy: the allies cannot win time by hiding), on SMACv2 (its map
   script) and ``2c_vs_64zg`` (whose script sends the enemies at the allies' units) all of
   them. An enemy Medivac heals the most injured friendly unit in sight, else keeps with the
   closest friendly unit.
3. **Movement.** A unit with a target out of range walks to it, to 0.01 inside its range; a
   unit with a move order walks to its destination; at its speed, never past the goal. Ground
   units walk on walkable cells: straight when the goal is in sight, else along a shortest
   path round walls and up ramps
   (:meth:`~marl.envs.smac.terrain.Terrain.waypoint`); a blocked step slides along the wall.
   Overlapping ground units are pushed apart by half their overlap (a Colossus steps over
   others and walks over cliffs); positions stay inside the map.
4. **Weapons.** A unit whose target is within its range after the loop's move (between unit
   edges; so a unit that walks into range fires in the same loop), that its weapon
   can target (air or ground: only Marines, Stalkers and Hydralisks hit the Medivac), and whose
   cooldown has run out (cooldowns count whole game loops) fires: ``attacks`` hits of
   :func:`~marl.envs.smac.combat.hit_table` damage, landed by
   :func:`~marl.envs.smac.combat.land_hits` (shields first, then armour); then its cooldown
   restarts, with SC2's random extra delay of -1 to +2 game loops (``WEAPON_DELAY``). A
   Colossus's shot also hits every other opponent touching a line 2.8 long across its target;
   a Baneling explodes on its target, damaging every opponent whose edge is within 2.2, and
   dies. A Medivac heals 12.6 health per second at 1 energy per 3 health.
5. **Regeneration.** Protoss shields regenerate 2.8 per second after 7 seconds without damage;
   Zerg health 0.38 per second; Medivac energy 0.7875 per second.

The battle ends (``terminated``) when a side is wiped out or left with only Medivacs; reaching
the map's episode limit is ``truncated`` (SMAC reports it as the end of the episode too). A
move is available when the point 1 unit ahead is walkable (SMAC's ``can_move``).

Tasks (generated scenarios only): :meth:`SMACEnv.set_tasks` fixes each copy's unit types and
start cells (:mod:`marl.envs.smac.tasks`, ``env.task_space``) from its next reset on, autoresets
included; every unit starts at its cell's centre with the generator's ±0.5 jitter.

:meth:`SMACEnv.observe` and :meth:`SMACEnv.outcome` also serve the real-game bridge
(:mod:`marl.envs.smac.sc2`), which reads the game's units into a :class:`SMACState`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from marl.batched_env import BatchedEnv
from marl.envs.smac.columns import UnitColumns
from marl.envs.smac.combat import hit_table, land_hits, land_unshielded_hits, target_table
from marl.envs.smac.generated import GeneratedScenario, jittered
from marl.envs.smac.maps import N_BASE_ACTIONS, SMACMap
from marl.envs.smac.planar import PointConstant, gather_points, length, where_points
from marl.envs.smac.tasks import SMACv2TaskSpace
from marl.envs.smac.terrain import Terrain
from marl.envs.smac.units import LOOPS_PER_SECOND, STEP_LOOPS
from marl.spec import EnvSpec, Obs

MAP_SIZE = 32.0
MOVE_AMOUNT = 2.0
SHIELD_DELAY = 7.0 * LOOPS_PER_SECOND  # loops without damage before shields regenerate
SHIELD_REGEN = 2.8 / LOOPS_PER_SECOND
REWARD_KILL, REWARD_WIN = 10.0, 200.0
# SC2 weapons wait a random extra -0.0625 to +0.125 game seconds (16 loops each) after every
# shot (their RandomDelayMin/Max; SMAX draws the same): with the same starts every episode,
# this (and 2m_vs_1z's drawn attack point) is what makes two battles differ
WEAPON_DELAY = (-1.0, 2.0)
ACTION_NAMES_BASE = ("no-op", "stop", "north", "south", "east", "west")
# orders; an enemy's MOVE is the map's attack-move (to its destination, acquiring targets on
# the way), ATTACK a target it acquired itself, CHASE a target it was ordered to attack
NONE, STOP, MOVE, ATTACK, CHASE = 0, 1, 2, 3, 4
TIER = 1e4  # target priority tiers of the enemy AI, in units of distance
APPROACH = 0.01  # a unit walking to its target stops this far inside its weapon's range
ARRIVED = 1.0  # an enemy this close to its attack-move point stands there, idle


@dataclass
class SMACState:
    """B copies of a battle with U = allies + enemies units (allies first)."""

    pos: torch.Tensor  # float [B, U, 2]
    health: torch.Tensor  # float [B, U]
    shield: torch.Tensor  # float [B, U]
    cooldown: torch.Tensor  # float [B, U], game loops until the weapon is ready
    energy: torch.Tensor  # float [B, U]
    quiet: torch.Tensor  # float [B, U], game loops since the unit last took damage
    order: torch.Tensor  # int64 [B, U]: NONE, STOP, MOVE, ATTACK (attack or heal), CHASE
    target: torch.Tensor  # int64 [B, U], unit index of the target (ATTACK)
    dest: torch.Tensor  # float [B, U, 2], destination (MOVE; an enemy's attack-move point)
    last_action: torch.Tensor  # int64 [B, N], -1 at the start
    t: torch.Tensor  # int64 [B], environment steps taken
    kind: torch.Tensor  # int64 [B, U], each unit's type (index into the scenario's kinds)


def _at(column: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``column`` (``[U]`` or ``[B, U]``) at the unit indices ``index [B, U]``."""
    return column[index] if column.dim() < index.dim() else column.gather(-1, index)


class SMACEnv(BatchedEnv[SMACState]):
    """``num_envs`` copies of the SMAC map (or generated SMACv2 scenario) ``scenario``."""

    # a step is ~2,000 small ops over 8 game loops: skipping autograd's bookkeeping in each
    # outweighs copying the new state out of inference mode (BatchedEnv._transition)
    inference_step = True

    def __init__(self, scenario: SMACMap | GeneratedScenario, num_envs: int = 1,
                 device: str | torch.device = "cpu", *, validate: bool = True,
                 seed: int | None = None) -> None:
        super().__init__(num_envs, device, validate=validate, seed=seed)
        self.scenario = m = scenario
        dev = self.device
        kinds = m.kinds
        self.n_agents, self.n_enemies = n, e = m.n_agents, m.n_enemies
        self.n_units = u = n + e
        self.spec = EnvSpec(
            n_agents=n, obs_shape=(m.obs_size,), state_shape=(m.state_size,),
            n_actions=m.n_actions, episode_limit=m.limit, agent_names=m.agent_names,
            action_names=ACTION_NAMES_BASE + tuple(f"target_{j}" for j in range(e)))
        self.table = UnitColumns.of(kinds, m.types, [m.ranges(t) for t in kinds], dev)
        self.kind_hits = hit_table(kinds, kinds).to(dev)  # damage per hit [K, K]
        self.kind_targets = target_table(kinds, kinds).to(dev)  # who can target whom [K, K]
        if isinstance(m, SMACMap):  # the same unit in every slot: [U] columns, built once
            slots = torch.tensor(m.slot_kinds, device=dev)
            self.fixed = self.table.take(slots)
            self.fixed_targets = self.kind_targets[slots[:, None], slots[None, :]]  # [U, U]
            # damage per hit of unit i on unit j at i * U + j
            self.fixed_hits = self.kind_hits[slots[:, None], slots[None, :]].flatten()
            self.hit_rows = torch.arange(u, device=dev) * u
        self.team = torch.tensor([0] * n + [1] * e, device=dev)
        self.opponents = self.team[:, None] != self.team[None, :]
        self.not_self = ~torch.eye(u, dtype=torch.bool, device=dev)
        # where the dead stand for the push: apart from each other and everyone alive
        self.far_away = PointConstant(1e4 * torch.arange(
            1, u + 1, device=dev, dtype=torch.float32).unsqueeze(-1).expand(u, 2))
        # rules no unit of the scenario uses are skipped
        self.has_splash = any(t.splash_radius > 0 for t in kinds)
        self.has_beam = any(t.beam > 0 for t in kinds)
        self.has_cliff_walker = any(t.walks_cliffs for t in kinds)
        self.all_walkers = all(not t.air and not t.walks_cliffs for t in kinds)
        # the unit slots that may deal area damage: on a fixed map, those of the types that
        # do; on a generated one, any
        slot_types = ([kinds[i] for i in m.slot_kinds] if isinstance(m, SMACMap)
                      else None)
        self.splash_slots, self.beam_slots = (
            torch.tensor([i for i in range(u) if slot_types is None or test(slot_types[i])],
                         dtype=torch.long, device=dev)
            for test in (lambda t: t.splash_radius > 0, lambda t: t.beam > 0))
        self.has_healer = any(t.healer for t in kinds)
        self.has_shields = any(t.shield > 0 for t in kinds)
        self.has_regen = any(t.health_regen > 0 for t in kinds)
        self.ally_shield, self.enemy_shield = bool(m.ally_shield), bool(m.enemy_shield)
        if isinstance(m, SMACMap):  # the map file's ground
            x0, y0, x1, y1 = m.data.playable
            self.set_terrain(m.data.walkable, (x1 - x0, y1 - y0))
        else:  # SMACv2's open field
            cells = int(MAP_SIZE)
            self.set_terrain(torch.ones(cells, cells, dtype=torch.bool), (MAP_SIZE, MAP_SIZE))
        # every 0.5 game seconds, enemies without a target are ordered onto the closest ally:
        # all of them (SMACv2's map script; maps whose script sends the enemies at the
        # allies' units), or those standing idle at their order's point (SMAC's enemy is a
        # computer player, whose AI sends its idle army after the enemy)
        self.chase_idle = not isinstance(m, SMACMap) or m.data.order == "units"
        # the other allies each agent sees, in id order (SMAC skips the agent itself)
        others = torch.arange(n, device=dev).expand(n, n)
        self.others = others[~torch.eye(n, dtype=torch.bool, device=dev)].reshape(n, n - 1)
        self.moves = torch.tensor([[0.0, 1.0], [0.0, -1.0], [1.0, 0.0], [-1.0, 0.0]], device=dev)
        # tasks: the canonical tokens [B, L] the copies play (None: SMACv2's random draws),
        # whether copy i's pooled battle is still of its task and unused, which copies finished
        self._task_space = SMACv2TaskSpace(m) if isinstance(m, GeneratedScenario) else None
        self._tasks: torch.Tensor | None = None
        self._task_ready = torch.zeros(num_envs, dtype=torch.bool, device=dev)
        self._finished = torch.zeros(num_envs, dtype=torch.bool, device=dev)

    def set_terrain(self, walkable: torch.Tensor, playable: tuple[float, float]) -> None:
        """The map: its pathing grid ``walkable [X, Y]`` (bool, one cell per unit of
        distance; the map's bounds are its size) and the size of its playable area, which
        the global state divides positions by (measured from the map's centre), as SMAC."""
        dev = self.device
        self.terrain = Terrain(walkable, dev)
        self.walkable = self.terrain.walkable
        self.bounds = self.terrain.bounds
        self._bounds = PointConstant(self.bounds)
        self.centre = self.bounds / 2
        self.playable = torch.tensor(playable, dtype=torch.float32, device=dev)
        self.has_walls = not self.terrain.open_everywhere

    def observe(self, state: SMACState) -> Obs:
        """What the agents see in ``state`` (a simulated one, or one read off the game)."""
        return self._observe(state)

    def columns(self, s: SMACState) -> UnitColumns:
        """The statistics of every unit: ``[U]`` on a fixed map, ``[B, U]`` otherwise."""
        return self.fixed if self.scenario.fixed else self.table.take(s.kind)

    def targets(self, s: SMACState) -> torch.Tensor:
        """Whether unit ``i``'s weapon can target unit ``j`` (air/ground), ``[U, U]`` on a
        fixed map, ``[B, U, U]`` otherwise."""
        if self.scenario.fixed:
            return self.fixed_targets
        return self.kind_targets[s.kind.unsqueeze(-1), s.kind.unsqueeze(-2)]

    # --- tasks -----------------------------------------------------------------------------
    @property
    def task_space(self) -> SMACv2TaskSpace:
        """The tasks of a generated scenario (no attribute on a fixed map)."""
        if self._task_space is None:
            raise AttributeError(f"smac:{self.scenario.name} is a fixed map and has no task "
                                 "space; generated scenarios (smacv2:...) have one")
        return self._task_space

    def set_tasks(self, tokens: torch.Tensor | None) -> None:
        """Copy ``i`` plays the task ``tokens[i]`` (``[num_envs, length]``, any integers, read
        as ``task_space.decode`` reads them) from its next reset on, autoresets included;
        ``None``: SMACv2's random teams and starts again. Battles under way go on."""
        if self._task_space is None:
            raise ValueError(f"set_tasks: smac:{self.scenario.name} is a fixed map, its units "
                             "and starts are the map's; tasks are for generated scenarios "
                             "(smacv2:<race>_<n>_vs_<m>)")
        if tokens is not None:
            if not isinstance(tokens, torch.Tensor) or tokens.shape[:1] != (self.num_envs,):
                raise ValueError(f"set_tasks: tokens must be a tensor [num_envs={self.num_envs}, "
                                 f"length={self._task_space.length}], got "
                                 f"{list(getattr(tokens, 'shape', [type(tokens).__name__]))}")
            tokens = self._task_space.canonical(tokens.to(self.device))
        if self._tasks is None or tokens is None:
            self._pool = None  # its battles are of the other kind
        else:  # a copy whose task changed needs a new battle
            self._task_ready &= (tokens == self._tasks).all(-1)
        self._tasks = tokens

    # --- episodes --------------------------------------------------------------------------
    def _spawn(self, b: int) -> SMACState:
        """``b`` new battles: SMACv2's random draws, or with tasks set, battle ``j`` plays copy
        ``j``'s task (``b`` is ``num_envs``, or 1 for a state template)."""
        dev, u, n = self.device, self.n_units, self.n_agents
        if self._tasks is None:
            kind, pos = self.scenario.draw(b, self.rng, dev)
        else:
            tasks = self._tasks[torch.arange(b, device=dev) % self.num_envs]
            kind, centre = self.task_space.placement(tasks)
            pos = jittered(centre, self.rng)
        k = self.table.take(kind)
        zeros = torch.zeros(b, u, device=dev)
        dest = self._enemy_destinations(pos)
        return SMACState(
            pos=pos, health=k.max_health.clone(), shield=k.max_shield.clone(),
            cooldown=zeros.clone(), energy=k.start_energy.clone(), quiet=zeros.clone(),
            order=torch.zeros(b, u, dtype=torch.long, device=dev),
            target=torch.zeros(b, u, dtype=torch.long, device=dev),
            dest=dest,
            last_action=torch.full((b, n), -1, dtype=torch.long, device=dev),
            t=torch.zeros(b, dtype=torch.long, device=dev), kind=kind.contiguous())

    def _enemy_destinations(self, pos: torch.Tensor) -> torch.Tensor:
        """``[B, U, 2]``: the enemies' attack-move points for battles starting at ``pos``
        (zeros for the allies): the map's point, a point drawn between its two ends, or
        (sent at the allies' units, or nowhere) where each enemy stands; generated
        scenarios: the allies' centre."""
        n = self.n_agents
        dest = torch.zeros_like(pos)
        m = self.scenario
        if not isinstance(m, SMACMap):
            dest[:, n:] = pos[:, :n].mean(1, keepdim=True)
        elif m.data.order == "point":
            dest[:, n:] = torch.tensor(m.data.order_points[0], device=pos.device)
        elif m.data.order == "between":
            a, b = (torch.tensor(p, device=pos.device) for p in m.data.order_points)
            t = torch.rand(pos.shape[0], 1, generator=self.rng, device=pos.device)
            dest[:, n:] = (a + (b - a) * t).unsqueeze(1)
        else:
            dest[:, n:] = pos[:, n:]
        return dest

    def _step(self, s: SMACState, actions: torch.Tensor):
        n = self.n_agents
        before = s
        s = SMACState(**{f: v.clone() for f, v in vars(s).items()})
        k = self.columns(s)
        can = self.targets(s)
        self._give_orders(s, k, actions)
        dist = torch.cdist(s.pos, s.pos)
        context = self._enemy_context(s, k, can)
        touching = self._touching(k)
        for tick in range(STEP_LOOPS):
            self._enemy_ai(s, k, context, dist[:, n:], order_idle=tick == 0)
            dist = self._loop(s, k, can, touching)
        s.last_action = actions.clone()  # the caller keeps its tensor: autoreset writes here
        s.t += 1
        reward, terminated, truncated, info = self.outcome(before, s)
        self._finished = terminated | truncated  # the copies _fresh gives new battles
        return s, reward, terminated, truncated, info

    def _fresh(self, n: int) -> tuple[SMACState, Obs]:
        """New battles for the ``n`` copies that just finished (in copy order). With tasks set,
        each gets one of its own task: the pool then holds one battle per copy, of its task,
        and is spawned again, for every copy at once, when a finished copy has used its own
        or was given another task since (curricula give a copy a new task as it finishes)."""
        if self._tasks is None:
            return super()._fresh(n)
        ids = self._finished.nonzero().squeeze(1)
        if ids.numel() != n:
            raise RuntimeError(f"SMACEnv._fresh: asked for {n} battles, {ids.numel()} copies "
                               "finished in the last step")
        if self._pool is None or not bool(self._task_ready[ids].all()):
            pool = self._spawn(self.num_envs)
            self._pool = (pool, self._observe(pool))
            self._task_ready.fill_(True)
        self._task_ready[ids] = False
        state, obs = self._pool
        return (SMACState(**{f: v[ids] for f, v in vars(state).items()}),
                Obs(obs.obs[ids], obs.state[ids], obs.avail[ids]))

    def state_dict(self) -> dict[str, Any]:
        """:meth:`BatchedEnv.state_dict`, and the copies' tasks."""
        sd = super().state_dict()
        sd["tasks"] = None if self._tasks is None else self._tasks.clone()
        sd["task_ready"] = self._task_ready.clone()
        return sd

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict`, tasks included."""
        super().load_state_dict(sd)
        tasks = sd.get("tasks")
        self._tasks = None if tasks is None else tasks.to(self.device)
        if "task_ready" in sd:
            self._task_ready = sd["task_ready"].to(self.device)

    def outcome(self, before: SMACState, after: SMACState) -> tuple[
            torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """SMAC's reward for going from ``before`` to ``after`` (split evenly over the
        agents, ``[B, N]``), whether the battle ended, whether the time ran out, and info."""
        n, e = self.n_agents, self.n_enemies
        k = self.columns(after)
        enemy = slice(n, n + e)
        was_alive, alive = before.health > 0, after.health > 0
        damage = ((before.health + before.shield)[:, enemy]
                  - (after.health + after.shield)[:, enemy].clamp(min=0)).sum(-1)
        kills = (was_alive[:, enemy] & ~alive[:, enemy]).sum(-1)
        fighting = alive & ~k.healer  # a side left with only Medivacs has lost (SMAC)
        allies_left, enemies_left = fighting[:, :n].any(-1), fighting[:, enemy].any(-1)
        won = ~enemies_left & allies_left
        gain = damage + REWARD_KILL * kills  # negative only when shields regenerate
        # SMAC takes its absolute value, SMACv2 clips it at 0
        gain = gain.abs() if self.scenario.fixed else gain.clamp(min=0)
        reward = gain + REWARD_WIN * won
        # SMAC scales by the first episode's maximum; we by each battle's own (the same on a
        # fixed map), so that a perfect generated battle also returns 20
        max_reward = (REWARD_KILL * e + REWARD_WIN
                      + (k.max_health + k.max_shield)[..., enemy].sum(-1))
        reward = reward / (max_reward / 20.0)
        terminated = ~allies_left | ~enemies_left
        truncated = ~terminated & (after.t >= self.spec.episode_limit)
        info = {"won": won, "dead_allies": n - alive[:, :n].sum(-1),
                "dead_enemies": e - alive[:, enemy].sum(-1)}
        return (reward / n).unsqueeze(-1).expand(-1, n).contiguous(), terminated, truncated, \
            info

    def _give_orders(self, s: SMACState, k: UnitColumns, actions: torch.Tensor) -> None:
        n = self.n_agents
        alive = s.health[:, :n] > 0
        moving = (actions >= 2) & (actions < N_BASE_ACTIONS)
        attacking = actions >= N_BASE_ACTIONS
        step = self.moves[(actions - 2).clamp(0, 3)] * MOVE_AMOUNT
        order = torch.where(attacking, ATTACK, torch.where(moving, MOVE, STOP))
        s.order[:, :n] = torch.where(alive, order, NONE)
        s.dest[:, :n] = where_points(moving, s.pos[:, :n] + step, s.dest[:, :n])
        j = (actions - N_BASE_ACTIONS).clamp(min=0)
        # a Medivac's target j is ally j; everyone else's is enemy j
        s.target[:, :n] = torch.where(k.healer[..., :n], j, j + n)

    def _enemy_context(self, s: SMACState, k: UnitColumns, can: torch.Tensor) -> dict[
            str, torch.Tensor]:
        """What the enemy AI reads that stays the same through a step (the allies' orders
        change only between steps): ``[..., E, N]`` tensors."""
        n = self.n_agents
        lead = s.health.shape[:1] if k.radius.dim() > 1 else ()
        radius = k.radius.expand(*lead, self.n_units)
        # ally i can hurt enemy j, or is flagged as a threat (the Medivac)
        threat = can[..., :n, n:].transpose(-1, -2) | k.threatens[..., None, :n]
        aimed = (s.target[:, None, :n] == torch.arange(n, self.n_units, device=s.target.device)
                 [:, None]) & (s.order[:, None, :n] == ATTACK)
        weapon_range = k.range.expand(*lead, self.n_units)
        context = {"edge": radius[..., n:, None] + radius[..., None, :n],
                   "scan": k.scan.expand(*lead, self.n_units)[..., n:, None],
                   "hits": can[..., n:, :n], "reach": weapon_range[..., None, :n],
                   "tier": torch.where(threat, TIER, 2 * TIER)}
        # materialised at [B, E, N] ([B, E]), once for the step's 8 loops: an op on equal,
        # contiguous shapes takes torch's fast path, one that broadcasts a [E, 1] or [E, N]
        # operand a strided loop (``gap <= scan``: 8 against 38-80 µs at 1,024 copies of 3m)
        full = {key: value.expand(aimed.shape).contiguous() for key, value in context.items()}
        weapon = weapon_range[..., n:].expand(aimed.shape[:2]).contiguous()
        return full | {"aimed": aimed, "weapon": weapon}

    def _enemy_ai(self, s: SMACState, k: UnitColumns, c: dict[str, torch.Tensor],
                  dist: torch.Tensor, order_idle: bool) -> None:
        """Targets and orders of the enemies, from their distances to every unit ``[B, E, U]``
        (measured at the end of the previous game loop) and the step's :meth:`_enemy_context`
        ``c``: SC2's unit behaviour under the map's attack-move (docs/envs/smac.md, "The
        enemy"). An enemy keeps a target it acquired while it stays targetable and within its
        weapon's range (edge to edge), and one it was ordered to attack while it lives. Else
        it acquires, among the allies it can target, one that attacks it (retaliation, at any
        distance), else one within its scan range that can hurt it or is flagged as a threat
        (the Medivac), else any within its scan range, the closest in each tier; with none it
        attack-moves on to its destination.
        ``order_idle`` (every 0.5 game seconds): enemies left without a target — on SMAC's
        maps, those standing at their order's point — are ordered to attack the closest ally
        they can target, wherever it is (``chase_idle``)."""
        n = self.n_agents
        alive = s.health > 0
        to_ally = dist[..., :n]
        gap = to_ally - c["edge"]  # edge to edge [B, E, N]
        foes = alive[:, None, :n] & c["hits"]  # targetable allies [B, E, N]
        order, target = s.order[:, n:], s.target[:, n:]
        # the current target, if it still holds
        slot = target.clamp(max=n - 1).unsqueeze(-1)
        held = foes.gather(-1, slot).squeeze(-1) & (target < n)
        in_scan = gap <= c["scan"]
        in_reach = gap.gather(-1, slot).squeeze(-1) <= c["weapon"]
        keep = held & ((order == CHASE) | ((order == ATTACK) & in_reach))
        # allies attacking each enemy: their attack order is on it and it is within their range
        attacker = c["aimed"] & (gap <= c["reach"])
        score = torch.where(attacker, 0.0, c["tier"]) + to_ally
        best, pick = score.masked_fill(~(foes & (in_scan | attacker)), math.inf).min(-1)
        found = best < math.inf
        new_order = torch.where(keep, order, torch.where(found, ATTACK, MOVE))
        new_target = torch.where(keep, target, torch.where(found, pick, target))
        if order_idle:
            near, closest = to_ally.masked_fill(~foes, math.inf).min(-1)
            idle = (new_order == MOVE) & (near < math.inf)
            if not self.chase_idle:  # only those that stand at their point (and can walk)
                there = length(s.pos[:, n:] - s.dest[:, n:]) < ARRIVED
                idle = idle & there & (k.speed.expand_as(s.health)[:, n:] > 0)
            new_order = torch.where(idle, CHASE, new_order)
            new_target = torch.where(idle, closest, new_target)
        if self.has_healer:  # an enemy healer heals the most injured friend in sight, or
            # else keeps with the closest friend
            friends = alive[:, None, :] & (self.team == 1) & ~k.healer.unsqueeze(-2)
            hurt = (k.max_health - s.health)[:, None, :].masked_fill(
                ~friends | (dist >= k.sight[..., n:, None]), 0.0)
            closest = dist.masked_fill(~friends, math.inf).argmin(-1)
            patient = torch.where(hurt.max(-1).values > 0, hurt.argmax(-1), closest)
            healer = k.healer[..., n:].expand_as(new_order)
            new_target = torch.where(healer, patient, new_target)
            new_order = torch.where(healer, torch.where(friends.any(-1), ATTACK, NONE),
                                    new_order)
        s.target[:, n:] = new_target
        s.order[:, n:] = torch.where(alive[:, n:], new_order, NONE)

    def _loop(self, s: SMACState, k: UnitColumns, can: torch.Tensor,
              touching: torch.Tensor) -> torch.Tensor:
        """One game loop: move, fire, land hits, heal, regenerate, push apart (``touching``:
        :meth:`_touching`). Returns the distances between units ``[B, U, U]`` before the push
        (those of the dead are not their real ones)."""
        alive = s.health > 0
        can_hit = can.expand(alive.shape[0], -1, -1)
        target_pos = gather_points(s.pos, s.target)
        target_alive = alive.gather(1, s.target)
        # a weapon only fires at what it can target (a healer's target is an ally to heal)
        valid = k.healer | can_hit.gather(2, s.target.unsqueeze(-1)).squeeze(-1)
        ordered = s.order >= ATTACK
        attacking = ordered & target_alive & alive & valid
        reach = k.radius + _at(k.radius, s.target)  # centre distance of touching edges
        gap = length(target_pos - s.pos) - reach
        # movement: towards the target until a little inside range, or to the destination
        goal = where_points(ordered, target_pos, s.dest)
        want = torch.where(attacking & (gap > k.range), gap - k.range + APPROACH, 0.0)
        to_dest = length(s.dest - s.pos)
        want = torch.where((s.order == MOVE) & alive, to_dest, want)
        if self.has_walls and not self.terrain.convex:  # round walls, up ramps
            routed = self.terrain.waypoint(s.pos, goal)
            goal = routed if self.all_walkers else where_points(k.walker, routed, goal)
        delta = goal - s.pos
        stride = torch.minimum(want, k.speed) / length(delta).clamp(min=1e-6)
        moved = s.pos + delta * stride.unsqueeze(-1)
        s.pos = self._slide(s.pos, moved, k.walker) if self.has_walls else moved
        # weapons (healers heal continuously instead); cooldowns run in whole game loops. Range
        # is taken after the move: a unit that walks into range fires in the same loop (else a
        # melee unit in a crowd, pushed back out after every step in, never would)
        target_pos = gather_points(s.pos, s.target)
        in_range = attacking & (length(target_pos - s.pos) - reach <= k.range)
        s.cooldown = (s.cooldown - 1).clamp(min=0)
        fire = in_range & (s.cooldown <= 0) & ~k.healer
        delay = torch.rand(fire.shape, generator=self.rng, device=fire.device)
        delay = WEAPON_DELAY[0] + (WEAPON_DELAY[1] - WEAPON_DELAY[0]) * delay
        s.cooldown = torch.where(fire, k.cooldown_loops + delay, s.cooldown)
        shots = fire.float() * k.attacks
        if self.has_splash:
            bombs = fire & k.splash
            shots = shots * ~bombs
        if self.scenario.fixed:  # [B, U]
            per_hit = self.fixed_hits.take(s.target + self.hit_rows)
        else:
            per_hit = self.kind_hits[s.kind, s.kind.gather(1, s.target)]
        raw = torch.zeros_like(s.health).scatter_add_(1, s.target, shots * per_hit)
        hits = torch.zeros_like(s.health).scatter_add_(1, s.target, shots)
        if self.has_splash:  # Banelings: splash on every opponent whose edge is within
            # the splash radius, then they die
            raw, hits = self._blast(s, k, bombs, alive, can_hit, raw, hits)
            s.health = torch.where(bombs, torch.zeros_like(s.health), s.health)
        if self.has_beam:  # Colossi: their shots also hit every other opponent touching
            # the line across the target
            raw, hits = self._beam(s, k, fire, target_pos, alive, can_hit, raw, hits)
        if self.has_shields:
            health, shield = land_hits(s.health, s.shield, k.armour, raw, hits)
        else:
            health = land_unshielded_hits(s.health, k.armour, raw, hits)
        alive = health > 0  # decided before healing and regeneration: they revive no one
        if self.has_healer:  # Medivacs heal their target while it is hurt and energy lasts
            hurt = s.health.gather(1, s.target) < _at(k.max_health, s.target)
            heals = in_range & k.healer & hurt & (s.energy > 0)
            amount = torch.minimum(k.heal.expand_as(s.energy), s.energy * 3) * heals
            health = health + torch.zeros_like(health).scatter_add_(1, s.target, amount)
            s.energy = torch.minimum(s.energy - amount / 3 + k.energy_regen, k.max_energy)
        if self.has_regen:
            health = health + k.health_regen
        s.health = torch.where(alive, torch.minimum(health, k.max_health), 0.0)
        if self.has_shields:
            s.quiet = torch.where(hits > 0, 0.0, s.quiet + 1)
            shield = shield + torch.where(s.quiet >= SHIELD_DELAY, SHIELD_REGEN, 0.0)
            s.shield = torch.where(alive, torch.minimum(shield.clamp(min=0), k.max_shield),
                                   0.0)
        pushed, dist = self._push_apart(s.pos, alive, touching)
        s.pos = self._slide(s.pos, pushed, k.walker) if self.has_walls else pushed
        return dist

    def _area(self, s: SMACState, k: UnitColumns, slots: torch.Tensor, alive: torch.Tensor,
              can_hit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For the units in ``slots`` (those that may deal area damage), the damage per hit
        on every unit ``[B, S, U]`` (0 for friends and what their weapon cannot target),
        whether each unit can be hit (alive, damaged by it), and every unit's radius
        ``[B, 1, U]``."""
        pair = self.kind_hits[s.kind[:, slots].unsqueeze(-1), s.kind.unsqueeze(-2)] * (
            self.opponents[slots] & can_hit[:, slots])
        radius = k.radius.expand(alive.shape).unsqueeze(1)
        return pair, alive.unsqueeze(1) & (pair > 0), radius

    def _blast(self, s: SMACState, k: UnitColumns, bombs: torch.Tensor, alive: torch.Tensor,
               can_hit: torch.Tensor, raw: torch.Tensor,
               hits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``raw`` damage and ``hits`` with the splash of the Banelings exploding now: every
        opponent whose edge is within the splash radius takes a hit."""
        slots = self.splash_slots
        pair, victims, radius = self._area(s, k, slots, alive, can_hit)
        reach = k.splash_radius.expand(alive.shape)[:, slots].unsqueeze(-1)
        near = torch.cdist(s.pos[:, slots], s.pos) - radius <= reach  # [B, bomber, victim]
        blast = bombs[:, slots].unsqueeze(-1) & near & victims
        return raw + (blast * pair).sum(1), hits + blast.float().sum(1)

    def _beam(self, s: SMACState, k: UnitColumns, fire: torch.Tensor, target_pos: torch.Tensor,
              alive: torch.Tensor, can_hit: torch.Tensor, raw: torch.Tensor,
              hits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``raw`` damage and ``hits`` with the line splash of the Colossi firing now: a line
        ``beam`` long and ``beam_width`` wide, centred on the target and perpendicular to
        the shot, hits every other opponent it touches with the shot's hits."""
        slots = self.beam_slots
        beams = fire[:, slots] & (k.beam.expand(fire.shape)[:, slots] > 0)
        if not bool(beams.any()):
            return raw, hits
        pair, victims, radius = self._area(s, k, slots, alive, can_hit)
        shooter, aim = s.pos[:, slots], target_pos[:, slots]
        shot = aim - shooter
        shot = shot / length(shot).clamp(min=1e-6).unsqueeze(-1)
        across = torch.stack([-shot[..., 1], shot[..., 0]], -1)  # along the line
        rel = s.pos.unsqueeze(1) - aim.unsqueeze(2)  # [B, shooter, victim, 2]
        half = (k.beam / 2).expand(fire.shape)[:, slots].unsqueeze(-1)
        half_width = (k.beam_width / 2).expand(fire.shape)[:, slots].unsqueeze(-1)
        touched = (((rel * across.unsqueeze(2)).sum(-1).abs() <= half + radius)
                   & ((rel * shot.unsqueeze(2)).sum(-1).abs() <= half_width + radius))
        others = torch.arange(fire.shape[1], device=fire.device) != s.target[:, slots, None]
        struck = beams.unsqueeze(-1) & touched & victims & others
        count = struck * k.attacks.expand(fire.shape)[:, slots].unsqueeze(-1)
        return raw + (count * pair).sum(1), hits + count.sum(1)

    def _touching(self, k: UnitColumns) -> torch.Tensor:
        """The centre distance at which two units collide, 0 for pairs that never do (a unit
        and itself, air units, a Colossus and a unit it steps over): ``[U, U]`` on a fixed
        map, ``[B, U, U]`` otherwise. Fixed through a step: only deaths change who collides."""
        touching = (k.radius.unsqueeze(-1) + k.radius.unsqueeze(-2)) * self.not_self
        ground = k.ground.unsqueeze(-1) & k.ground.unsqueeze(-2)
        if self.has_cliff_walker:
            ground = ground & (k.walker.unsqueeze(-1) == k.walker.unsqueeze(-2))
        return touching * ground

    def _push_apart(self, pos: torch.Tensor, alive: torch.Tensor,
                    touching: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Overlapping living ground units each move away by half the overlap (a Colossus
        steps over the others and collides only with Colossi); returns the new positions and
        the distances before the push.

        The dead are moved far apart from everyone for the sum (no mask over the pairs): unit i
        moves by ``sum_j w_ij (p_i - p_j) / 2`` with ``w_ij = overlap / distance``, a batched
        matrix product without the ``[B, U, U, 2]`` differences."""
        at = where_points(alive, pos, self.far_away.like(pos))
        dist = torch.cdist(at, at)  # [B, U, U]
        w = (touching - dist).clamp_(min=0).div_(dist.clamp(min=0.01))
        push = (at * w.sum(-1, keepdim=True) - torch.bmm(w, at)) * 0.5
        return torch.minimum((pos + push).clamp(min=0.0), self._bounds.like(pos)), dist

    def _open(self, pos: torch.Tensor) -> torch.Tensor:
        """Whether ground units may stand at ``pos [..., 2]`` (outside the map: no)."""
        return self.terrain.open(pos)

    def _slide(self, old: torch.Tensor, new: torch.Tensor,
               walker: torch.Tensor) -> torch.Tensor:
        """``new`` positions, those of the units bound to walkable ground (``walker``) kept
        on it (:meth:`~marl.envs.smac.terrain.Terrain.keep`)."""
        kept = self.terrain.keep(old, new)
        return kept if self.all_walkers else where_points(walker, kept, new)

    def reset_info(self) -> dict[str, torch.Tensor]:
        """``won``, ``dead_allies`` and ``dead_enemies`` of the current state (nothing has
        happened yet after a reset: False, 0, 0)."""
        return self.outcome(self.state, self.state)[3]

    def obs_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Every feature lies in [0, 1] except relative positions (dx, dy) in [-1, 1]."""
        m = self.scenario
        low = np.zeros(m.obs_size, np.float32)
        for start, count, width in ((4, m.n_enemies, m.enemy_feats),
                                    (4 + m.n_enemies * m.enemy_feats, m.n_agents - 1,
                                     m.ally_feats)):
            for i in range(count):
                low[start + i * width + 2: start + i * width + 4] = -1.0
        return low, np.ones(m.obs_size, np.float32)

    def state_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Features in [0, 1], positions in [-1, 1], except an ally's weapon cooldown over
        SMAC's normaliser, which exceeds 1 for the types whose cooldown (with the longest
        random delay) is longer than it (Hydralisk, Zergling, Marauder)."""
        m = self.scenario
        n, a, e = m.n_agents, m.ally_state_feats, m.enemy_state_feats
        allies = m.ally_units if isinstance(m, SMACMap) else m.kinds
        cooldown = max([1.0] + [(t.cooldown_loops + WEAPON_DELAY[1]) / t.max_cooldown
                                for t in allies
                                if not t.healer and t.splash_radius == 0])
        low, high = np.zeros(m.state_size, np.float32), np.ones(m.state_size, np.float32)
        for i in range(n):
            high[i * a + 1] = cooldown
            low[i * a + 2: i * a + 4] = -1.0
        for j in range(m.n_enemies):
            low[n * a + j * e + 1: n * a + j * e + 3] = -1.0
        return low, high

    def render(self, index: int = 0) -> np.ndarray:
        """An RGB picture ``[H, W, 3] uint8`` of copy ``index``."""
        from marl.envs.smac.render import LETTERS, render_smac

        s = self.state
        kinds = self.scenario.kinds
        units = [kinds[i] for i in s.kind[index].tolist()]
        k = self.table.take(s.kind[index])
        return render_smac(
            float(self.bounds.max()), s.pos[index].tolist(), k.radius.tolist(), self.team.tolist(),
            (s.health[index] / k.max_health).tolist(),
            (s.shield[index] / k.max_shield.clamp(min=1)).tolist(),
            [LETTERS[t.name] for t in units], [t.air for t in units],
            [tuple(c) for c in (~self.walkable).nonzero().tolist()])

    # --- what the agents see ---------------------------------------------------------------
    def _observe(self, s: SMACState) -> Obs:
        n, e = self.n_agents, self.n_enemies
        b = s.pos.shape[0]
        k = self.columns(s)
        alive = s.health > 0
        health = s.health / k.max_health
        shield = s.shield / k.max_shield.clamp(min=1)
        types = k.types.expand(b, -1, -1)  # [B, U, T]
        sight = k.sight[..., :n, None]  # each agent's own sight range
        me = s.pos[:, :n]
        avail = self._avail(s, k, alive)
        # enemies seen by each agent
        rel_e = s.pos[:, None, n:] - me[:, :, None]  # [B, N, E, 2]
        dist_e = length(rel_e)
        seen_e = (dist_e < sight) & alive[:, None, n:] & alive[:, :n, None]
        enemy = [avail[:, :, N_BASE_ACTIONS:].float(), dist_e / sight, rel_e[..., 0] / sight,
                 rel_e[..., 1] / sight, health[:, None, n:].expand(b, n, e)]
        if self.enemy_shield:
            enemy.append(shield[:, None, n:].expand(b, n, e))
        enemy_feats = torch.cat([f.unsqueeze(-1) for f in enemy]
                                + [types[:, None, n:].expand(b, n, e, -1)], dim=-1)
        enemy_feats = enemy_feats * seen_e.unsqueeze(-1)
        # the other allies, in id order
        others = self.others
        rel_a = s.pos[:, others] - me[:, :, None]  # [B, N, N-1, 2]
        dist_a = length(rel_a)
        seen_a = (dist_a < sight) & alive[:, others] & alive[:, :n, None]
        ally = [seen_a.float(), dist_a / sight, rel_a[..., 0] / sight, rel_a[..., 1] / sight,
                health[:, others]]
        if self.ally_shield:
            ally.append(shield[:, others])
        ally_feats = torch.cat([f.unsqueeze(-1) for f in ally] + [types[:, others]], dim=-1)
        ally_feats = ally_feats * seen_a.unsqueeze(-1)
        own = [health[:, :n, None]] + ([shield[:, :n, None]] if self.ally_shield else [])
        if self.scenario.own_pos:
            own.append(me / self.bounds)
        own_feats = torch.cat(own + [types[:, :n]], dim=-1)
        obs = torch.cat([avail[:, :, 2:N_BASE_ACTIONS].float(), enemy_feats.flatten(2),
                         ally_feats.flatten(2), own_feats], dim=-1)
        obs = obs * alive[:, :n, None]
        return Obs(obs, self._state_vector(s, k, alive, health, shield), avail)

    def _avail(self, s: SMACState, k: UnitColumns, alive: torch.Tensor) -> torch.Tensor:
        n = self.n_agents
        b = s.pos.shape[0]
        me = s.pos[:, :n]
        steps = me[:, :, None, :] + self.moves * (MOVE_AMOUNT / 2)  # SMAC's can_move probe
        inside = ((steps >= 0) & (steps <= self.bounds)).all(-1)  # [B, N, 4]
        if self.has_walls:
            inside = inside & self._open(torch.minimum(steps.clamp(min=0), self.bounds - 1e-3))
        # targets: enemies, or (for a Medivac) the other non-Medivac allies
        dist = torch.cdist(me, s.pos)  # [B, N, U]
        near = (dist <= k.shoot[..., :n, None]) & alive[:, None, :]
        targets = near[:, :, n:] & self.targets(s).expand(b, -1, -1)[:, :n, n:]
        if self.has_healer:
            healer = k.healer[..., :n]
            ally_t = near[:, :, :n] & ~healer.unsqueeze(-2)
            pad = self.n_enemies - n
            if pad > 0:
                ally_t = torch.cat([ally_t, ally_t.new_zeros(b, n, pad)], dim=-1)
            targets = torch.where(healer.unsqueeze(-1), ally_t[..., : self.n_enemies], targets)
        live = alive[:, :n, None]
        return torch.cat([~live, live, inside & live, targets & live], dim=-1)

    def _state_vector(self, s: SMACState, k: UnitColumns, alive: torch.Tensor,
                      health: torch.Tensor, shield: torch.Tensor) -> torch.Tensor:
        n = self.n_agents
        b = s.pos.shape[0]
        types = k.types.expand(b, -1, -1)
        rel = (s.pos - self.centre) / self.playable
        cooldown = torch.where(k.healer, s.energy / k.max_energy.clamp(min=1),
                               s.cooldown / k.max_cooldown)
        ally = [health[:, :n], cooldown[:, :n], rel[:, :n, 0], rel[:, :n, 1]]
        if self.ally_shield:
            ally.append(shield[:, :n])
        ally_rows = torch.cat([f.unsqueeze(-1) for f in ally] + [types[:, :n]], dim=-1)
        ally_rows = ally_rows * alive[:, :n, None]
        enemy = [health[:, n:], rel[:, n:, 0], rel[:, n:, 1]]
        if self.enemy_shield:
            enemy.append(shield[:, n:])
        enemy_rows = torch.cat([f.unsqueeze(-1) for f in enemy] + [types[:, n:]], dim=-1)
        enemy_rows = enemy_rows * alive[:, n:, None]
        last = torch.nn.functional.one_hot(s.last_action.clamp(min=0), self.spec.n_actions)
        last = last * (s.last_action >= 0).unsqueeze(-1)
        return torch.cat([ally_rows.flatten(1), enemy_rows.flatten(1),
                          last.flatten(1).float()], dim=-1)
