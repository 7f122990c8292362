"""What a sweep runs: algorithms × environments × seeds, fixed overrides and a search space.

A sweep file is YAML with the keys of :class:`SweepSpec`; ``marl sweep`` builds the same from
flags. For example::

    algos: [qmix, vdn]
    envs: ["lbf:8x8-2p-3f"]
    seeds: [1, 2, 3]
    steps: 500000
    num_envs: 16
    configs: ["configs/tuned/{algo}_lbf-8x8-2p-3f.yaml"]   # optional: config files
    overrides: [test_interval=50000]
    search:
      lr: {loguniform: [0.0001, 0.001]}
      target_update_interval: {grid: [100, 200]}
    searcher: random        # grid | random | optuna
    samples: 4              # random/optuna: configurations drawn
    metric: test_return_mean
    retries: 1

``configs`` are YAML config files given to every run (``marl train --config``), paths from
the folder ``marl sweep`` runs in, where ``{algo}`` stands for the run's algorithm (so one
sweep gives each algorithm its own tuned file); the fixed overrides and the search go over
them. A run folder is only read back for the same files with the same content.

A search key is any config key a ``key=value`` override takes (``lr``, ``learner.lr``,
``env_args.penalty``); its space is one of ``grid: [values]`` (every value; crossed with the
rest), ``choice: [values]``, ``uniform: [low, high]``, ``loguniform: [low, high]`` or
``randint: [low, high]`` (high excluded). ``grid`` crosses the grid keys only; ``random``
draws ``samples`` configurations of the other keys (seeded by ``search_seed``, so a rerun
draws the same ones) for every grid point; ``optuna`` lets Optuna's TPE propose ``samples``
configurations one after another from the results so far (Ray only), each scored by the mean
of ``metric`` over the seeds. A configuration's run folders are named after the algorithm,
the environment, a digest of its overrides and the seed, so a rerun finds them.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from marl.config import ConfigError, load_config, require
from marl.sweep import Job

ALGO = "{algo}"  # in a config file's path: the run's algorithm
SPACES = ("grid", "choice", "uniform", "loguniform", "randint")
SEARCHERS = ("grid", "random", "optuna")


@dataclass
class SweepSpec:
    """A sweep (see the module card)."""

    algos: list[str]
    envs: list[str]
    seeds: list[int] = field(default_factory=lambda: [1])
    steps: int = 100_000
    num_envs: int = 16
    configs: list[str] = field(default_factory=list)  # config files; "{algo}": the run's
    overrides: list[str] = field(default_factory=list)
    search: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    searcher: str = "grid"
    samples: int = 1
    search_seed: int = 0
    metric: str = "test_return_mean"  # a key of the runs' summaries
    mode: str = "max"
    cpus: float = 1.0  # per trial
    gpus: float = 0.0
    threads: int = 1  # torch threads per trial
    retries: int = 1  # extra attempts of a failing trial
    concurrent: int = 0  # trials at once (0: as many as the CPUs allow)

    def __post_init__(self) -> None:
        def need(ok: bool, key: str, allowed: str) -> None:
            require(ok, key, getattr(self, key), allowed)

        def integer(x: Any) -> bool:
            return isinstance(x, int) and not isinstance(x, bool)

        for key, kind in (("algos", str), ("envs", str), ("configs", str), ("overrides", str)):
            value = getattr(self, key)
            need(isinstance(value, list) and all(isinstance(v, kind) for v in value), key,
                 "a list of strings")
        need(bool(self.algos), "algos", "at least one algorithm")
        need(bool(self.envs), "envs", "at least one environment id")
        need(isinstance(self.seeds, list) and bool(self.seeds)
             and all(integer(s) for s in self.seeds)
             and len(set(self.seeds)) == len(self.seeds), "seeds",
             "a list of distinct integer seeds, at least one")
        for key in ("steps", "num_envs", "samples", "threads"):
            need(integer(getattr(self, key)) and getattr(self, key) >= 1, key,
                 "an integer ≥ 1")
        for key in ("retries", "concurrent", "search_seed"):
            need(integer(getattr(self, key)) and getattr(self, key) >= 0, key,
                 "an integer ≥ 0")
        for key, low in (("cpus", 0.0), ("gpus", 0.0)):
            value = getattr(self, key)
            need(isinstance(value, (int, float)) and not isinstance(value, bool)
                 and (value > low if key == "cpus" else value >= low), key,
                 "a number > 0" if key == "cpus" else "a number ≥ 0")
        need(self.searcher in SEARCHERS, "searcher", " | ".join(SEARCHERS))
        need(self.mode in ("max", "min"), "mode", "max or min")
        need(isinstance(self.metric, str) and bool(self.metric), "metric",
             "a key of the runs' summaries, e.g. test_return_mean")
        for path in self.configs:
            if {"{", "}"} & set(path.replace(ALGO, "")):
                raise ConfigError(f"sweep: configs: {path!r}: the one placeholder a path may "
                                  f"hold is {ALGO}", "configs")
            for filled in dict.fromkeys(path.replace(ALGO, algo) for algo in self.algos):
                if not Path(filled).is_file():
                    raise ConfigError(f"sweep: configs: {filled!r} is not a file (a path from "
                                      "the folder marl sweep runs in)", "configs")
        # absolute from here on: a trial on Ray builds its jobs in a folder of its own
        self.configs = [str(Path(path).resolve()) for path in self.configs]
        for override in self.overrides:
            if "=" not in override:
                raise ConfigError(f"sweep: override {override!r}: expected key=value")
        need(isinstance(self.search, dict), "search", "a mapping of config keys to spaces")
        for key, space in self.search.items():
            _check_space(key, space, self.searcher)

    # --- the jobs ---------------------------------------------------------------------------
    def configurations(self) -> list[tuple[str, ...]]:
        """The overrides of every configuration a ``grid`` or ``random`` sweep runs."""
        if self.searcher == "optuna":
            raise ConfigError("sweep: an optuna search proposes its configurations while it "
                              "runs; run it on Ray (--backend ray)")
        grid = {k: s["grid"] for k, s in self.search.items() if "grid" in s}
        drawn = {k: s for k, s in self.search.items() if "grid" not in s}
        rng = random.Random(self.search_seed)
        samples = [{k: draw(s, rng) for k, s in drawn.items()}
                   for _ in range(self.samples if drawn else 1)]
        out = []
        for point in itertools.product(*grid.values()):
            for sample in samples:
                values = {**dict(zip(grid, point, strict=True)), **sample}
                out.append(tuple(f"{k}={v}" for k, v in values.items()))
        return out

    def jobs(self, configuration: tuple[str, ...] = ()) -> list[Job]:
        """The runs of one configuration (its search overrides), or of every configuration
        of a ``grid``/``random`` sweep when none is given."""
        configurations = [configuration] if configuration else self.configurations()
        return [Job(run_name(algo, env, seed, config), algo, env, seed, self.steps,
                    self.num_envs, (*self.overrides, *config), self.threads,
                    self.config_files(algo))
                for config in configurations for algo in self.algos for env in self.envs
                for seed in self.seeds]

    def config_files(self, algo: str) -> tuple[str, ...]:
        """The config files of ``algo``'s runs (``{algo}`` filled in)."""
        return tuple(path.replace(ALGO, algo) for path in self.configs)

    def check(self) -> None:
        """Load every algorithm × environment config with the fixed overrides and one value
        of every search key, so that a misspelt key or a wrong value fails now, naming it,
        and not in every trial."""
        sample = tuple(f"{k}={draw(s, random.Random(0))}" for k, s in self.search.items())
        for algo, env in itertools.product(self.algos, self.envs):
            load_config(algo, env, files=self.config_files(algo),
                        overrides=(*self.overrides, *sample))


def draw(space: dict[str, list[Any]], rng: random.Random) -> Any:
    """One value of a search space (a grid's first)."""
    (kind, args), = space.items()
    if kind in ("grid", "choice"):
        return args[0] if kind == "grid" else rng.choice(args)
    low, high = args
    if kind == "uniform":
        return rng.uniform(low, high)
    if kind == "loguniform":
        return math.exp(rng.uniform(math.log(low), math.log(high)))
    return rng.randrange(low, high)


def _check_space(key: str, space: Any, searcher: str) -> None:
    where = f"sweep: search.{key}"
    if not isinstance(space, dict) or len(space) != 1 or next(iter(space)) not in SPACES:
        raise ConfigError(f"{where}={space!r}: expected one of {', '.join(SPACES)} with its "
                          "values, e.g. {loguniform: [0.0001, 0.001]}", key)
    (kind, args), = space.items()
    if not isinstance(args, list) or not args:
        raise ConfigError(f"{where}.{kind}={args!r}: expected a list of values", key)
    if kind in ("uniform", "loguniform", "randint"):
        ok = (len(args) == 2 and all(isinstance(a, (int, float)) for a in args)
              and args[0] < args[1] and (kind != "loguniform" or args[0] > 0)
              and (kind != "randint" or all(isinstance(a, int) for a in args)))
        if not ok:
            raise ConfigError(f"{where}.{kind}={args!r}: expected [low, high] with low < high"
                              f"{' (both > 0)' if kind == 'loguniform' else ''}"
                              f"{' (integers)' if kind == 'randint' else ''}", key)
    if searcher == "grid" and kind != "grid":
        raise ConfigError(f"{where}: a {kind} space needs searcher random or optuna "
                          "(searcher grid crosses grid spaces only)", key)


def config_digest(config: tuple[str, ...]) -> str:
    """``c<8 hex digits>``: a configuration's name, whatever the order of its keys."""
    return "c" + hashlib.sha1("\n".join(sorted(config)).encode()).hexdigest()[:8]


def run_name(algo: str, env: str, seed: int, config: tuple[str, ...] = ()) -> str:
    """``<algo>_<env>[_<config_digest>]_seed<seed>``."""
    digest = f"_{config_digest(config)}" if config else ""
    return f"{algo}_{env.replace(':', '-')}{digest}_seed{seed}"


def load_sweep(path: str | Path, **flags: Any) -> SweepSpec:
    """A sweep file, with ``flags`` (non-``None`` values) over its keys, except that
    ``overrides`` are added after the file's own (a later one of a key wins); errors name the
    file and the key."""
    source = str(path)
    try:
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception as e:  # the YAML parser's own message says where the syntax breaks
        raise ConfigError(f"{source}: cannot read YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sweep keys at the top level")
    known = {f.name for f in fields(SweepSpec)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}; valid keys: "
                          f"{', '.join(sorted(known))}")
    values = {str(k): v for k, v in data.items()}
    extra = flags.pop("overrides", None)
    values.update({k: v for k, v in flags.items() if v is not None})
    if extra:
        values["overrides"] = [*(values.get("overrides") or []), *extra]
    try:
        return SweepSpec(**values)
    except TypeError as e:
        raise ConfigError(f"{source}: {e}") from None
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}", e.key) from None
