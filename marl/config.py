"""Run configuration: typed dataclasses are the schema, YAML files hold the values.

A run's config is built in layers, each overriding the one before, and checked at every layer
by OmegaConf against the schema (unknown keys and values of the wrong type fail at once):

1. the schema defaults (:class:`TrainConfig`, and the algorithm's learner config class);
2. ``configs/algos/<algo>.yaml`` (the algorithm's published defaults);
3. ``configs/envs/<family>.yaml`` for the env id's family (``lbf`` for ``lbf:8x8-2p-3f``);
4. files given with ``--config``;
5. command-line flags (``--steps``, ``--seed``, ...);
6. dotted overrides ``key=value`` (``learner.lr=0.001``, ``env_args.penalty=0.1``; a key of
   the ``learner`` or ``replay`` section may be given bare: ``lr=0.001``, ``batch_size=16``).

Every error is a :class:`ConfigError` naming where the value came from, the key, the value and
what is allowed (with the closest valid key for a misspelt one). Values are literal: OmegaConf's
``${...}`` interpolation is refused in every layer, so a shared file cannot read environment
variables or other keys; numbers must be finite.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from marl.algorithms import Algorithm, UnknownAlgorithm, algorithms, get_algorithm
from marl.devices import ALLOWED, parse_device

VALIDATE = ("always", "first", "never")  # when the training envs check the learner's actions
SEED_MAX = 2**32 - 1  # seeds of derived streams (tests, replay sampling) stay within int64


class ConfigError(ValueError):
    """A config value or key that cannot be used; the message says where and how to fix it."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


def require(ok: bool, key: str, value: Any, allowed: str) -> None:
    """Raise :class:`ConfigError` for ``key=value`` unless ``ok``; ``allowed`` says what is."""
    if not ok:
        raise ConfigError(f"{key}={value!r} is not allowed: expected {allowed}", key)


def require_device(key: str, value: str, *, optional: bool = False) -> None:
    """A device name (``""`` too when ``optional``); whether this machine has it is checked
    when the run starts, so a config written here can name a GPU of another machine."""
    if optional and value == "":
        return
    try:
        parse_device(value)
    except ValueError:
        raise ConfigError(f"{key}={value!r} is not allowed: expected {ALLOWED}"
                          + (', or "" for the training device' if optional else ""),
                          key) from None


def is_run_name(name: str) -> bool:
    """A run name is one folder name: no separators, not ``.`` or ``..``, not absolute."""
    return (name not in ("", ".", "..") and "/" not in name and "\\" not in name
            and "\0" not in name and Path(name).name == name)


@dataclass
class ReplayConfig:
    """The trainer's data settings for replay learners (EPyMARL's schedule): one update on a
    batch of ``batch_size`` replayed episodes per finished episode (``updates_per_episode``)."""

    batch_size: int = 32  # episodes per update
    buffer_size: int = 5000  # episodes kept in the replay
    updates_per_episode: float = 1.0  # updates per collected episode (EPyMARL: 1)
    device: str = ""  # where the replay lives; "" = the training device

    def __post_init__(self) -> None:
        for key in ("batch_size", "buffer_size"):
            require(getattr(self, key) >= 1, key, getattr(self, key), "an integer >= 1")
        require(self.buffer_size >= self.batch_size, "buffer_size", self.buffer_size,
                f"at least batch_size ({self.batch_size})")
        require(self.updates_per_episode >= 0, "updates_per_episode", self.updates_per_episode,
                "a number >= 0")
        require_device("device", self.device, optional=True)


TEACHERS = ("", "dr", "plr", "accel", "paired", "clutr")  # curricula (marl.curriculum)
SCORES = ("max_mc", "positive_value_loss")  # their level scores


@dataclass
class TeacherConfig:
    """The curriculum's teacher (``name`` "" = none: the environment's own random tasks)."""

    name: str = ""  # dr | plr | accel | paired | clutr
    score: str = "max_mc"  # level score: max_mc | positive_value_loss
    buffer_size: int = 4000  # PLR's level buffer (minimax's maze defaults below)
    replay_prob: float = 0.5
    staleness: float = 0.3
    temperature: float = 0.3
    min_fill: float = 0.5
    robust: bool = True  # PLR⊥: no student gradient on new levels
    mutations: int = 4  # ACCEL: token edits per mutated level
    vae: str = ""  # CLUTR: a task VAE file ("": the one shipped for the environment)
    vae_joint: bool = False  # CLUTR ablation: train the VAE from scratch alongside
    clutr_score: str = "regret"  # CLUTR's reward: regret (PAIRED's) | max_mc (an ablation)
    heldout_repeats: int = 4  # greedy episodes of each held-out task at every test
    render_tasks: int = 4  # tasks drawn to <run>/tasks/ at every test

    def __post_init__(self) -> None:
        require(self.name in TEACHERS, "teacher.name", self.name,
                "one of dr, plr, accel, paired, clutr (or '' for none)")
        require(self.clutr_score in ("regret", "max_mc"), "teacher.clutr_score",
                self.clutr_score, "regret or max_mc")
        require(self.score in SCORES, "teacher.score", self.score, f"one of {', '.join(SCORES)}")
        for key, ok in (("buffer_size", self.buffer_size >= 1),
                        ("replay_prob", 0 <= self.replay_prob <= 1),
                        ("staleness", 0 <= self.staleness <= 1),
                        ("temperature", self.temperature > 0),
                        ("min_fill", 0 <= self.min_fill <= 1),
                        ("mutations", self.mutations >= 1),
                        ("heldout_repeats", self.heldout_repeats >= 1),
                        ("render_tasks", self.render_tasks >= 0)):
            require(ok, f"teacher.{key}", getattr(self, key), "a value in range")


@dataclass
class TrainConfig:
    """A training run: environment, budget, schedule of tests/logs/checkpoints, and learner."""

    algo: str = ""  # algorithm name (marl.algos registry)
    env: str = ""  # environment id (marl.envs registry), e.g. lbf:8x8-2p-3f
    env_args: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the env
    env_version: str = ""  # recorded by the trainer (e.g. lbf-v1); a resume must match it
    steps: int = 2_050_000  # environment steps to train for (each copy's step counts)
    seed: int = 1
    num_envs: int = 1  # environment copies stepped together
    device: str = "cpu"  # training device (environments and networks): cpu, cuda, cuda:1, ...
    threads: int = 0  # torch intra-op threads; 0: one on CPU, torch's default beside a GPU
    test_interval: int = 50_000  # greedy test every this many env steps (0: only at the end)
    test_episodes: int = 100  # episodes per greedy test
    log_interval: int = 10_000  # training statistics every this many env steps
    save_interval: int = 0  # checkpoint every this many env steps (0: only at the end)
    keep_checkpoints: int = 3  # periodic checkpoints kept (the newest ones)
    save_replay: bool = True  # put the replay in checkpoints (needed for an exact resume)
    runs_dir: str = "runs"  # runs are written to <runs_dir>/<name>/
    name: str = ""  # run name; "" = <algo>_<env>_seed<seed>_<time>
    progress: bool = True  # progress bar on the terminal
    tensorboard: bool = True  # TensorBoard event files in the run folder
    compile_env: bool = False  # torch.compile the environment's step (BatchedEnv.compile)
    validate_actions: str = "first"  # always | first (the first episode limit of steps) | never
    replay: ReplayConfig = field(default_factory=ReplayConfig)  # replay learners' data
    teacher: TeacherConfig = field(default_factory=TeacherConfig)  # a curriculum's teacher
    learner: Any = None  # the algorithm's config dataclass

    def __post_init__(self) -> None:
        for key in ("steps", "num_envs", "test_episodes", "log_interval", "keep_checkpoints"):
            require(getattr(self, key) >= 1, key, getattr(self, key), "an integer >= 1")
        for key in ("threads", "test_interval", "save_interval"):
            require(getattr(self, key) >= 0, key, getattr(self, key), "an integer >= 0")
        require_device("device", self.device)
        require(self.validate_actions in VALIDATE, "validate_actions", self.validate_actions,
                f"one of {', '.join(VALIDATE)}")
        require(0 <= self.seed <= SEED_MAX, "seed", self.seed, f"an integer in [0, {SEED_MAX}]")
        require(self.name == "" or is_run_name(self.name), "name", self.name,
                "a folder name without '/' or '\\' (not '.' or '..'); runs go under runs_dir")


def config_file(kind: str, name: str) -> Path | None:
    """The shipped ``configs/<kind>/<name>.yaml``, or ``None`` when there is none."""
    path = resources.files("marl.configs").joinpath(kind).joinpath(f"{name}.yaml")
    return Path(str(path)) if path.is_file() else None


BARE = ("learner", "replay")  # sections whose keys may be given bare (lr=..., batch_size=...)


def _valid_keys(node: Any) -> list[str]:
    keys = [str(k) for k in node.keys()] if isinstance(node, DictConfig) else []
    for name in BARE:
        section = node.get(name) if isinstance(node, DictConfig) else None
        if isinstance(section, DictConfig):
            keys += [str(k) for k in section.keys()]
    return keys


Origins = dict[str, str]  # dotted key -> the layer that set it last


def _leaves(layer: Any, prefix: str = "") -> list[str]:
    if isinstance(layer, DictConfig):
        layer = OmegaConf.to_container(layer)
    if not isinstance(layer, dict) or not layer:
        return [prefix.rstrip(".")] if prefix else []
    return [leaf for k, v in layer.items() for leaf in _leaves(v, f"{prefix}{k}.")]


def _merge(base: DictConfig, layer: Any, source: str, origins: Origins) -> DictConfig:
    """``base`` overridden by ``layer``; keys and types are checked here, values at the end
    (a value rule may depend on a key that a later layer sets)."""
    _refuse_interpolation(layer, source)
    try:
        merged = OmegaConf.merge(base, layer)
    except ConfigKeyError as e:
        key = str(e.full_key or e.key)
        parent = OmegaConf.select(base, key.rpartition(".")[0]) if "." in key else base
        valid = _valid_keys(parent)
        near = difflib.get_close_matches(key.rpartition(".")[2], valid, n=1)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        raise ConfigError(f"{source}: unknown key {key!r}.{hint} "
                          f"Valid keys here: {', '.join(valid)}") from None
    except OmegaConfBaseException as e:
        key = str(getattr(e, "full_key", "") or "")
        msg = str(getattr(e, "msg", e)).splitlines()[0]
        raise ConfigError(f"{source}: key {key!r}: {msg}") from None
    origins.update(dict.fromkeys(_leaves(layer), source))
    return merged  # type: ignore[return-value]


def _refuse_interpolation(layer: Any, source: str, prefix: str = "") -> None:
    """Values are literal: ``${...}`` would let a shared file read the environment
    (``${oc.env:HOME}``) or other keys, so no layer may hold one."""
    if isinstance(layer, DictConfig):
        layer = OmegaConf.to_container(layer, resolve=False)
    if isinstance(layer, dict):
        for k, v in layer.items():
            _refuse_interpolation(v, source, f"{prefix}{k}.")
    elif isinstance(layer, list):
        for i, v in enumerate(layer):
            _refuse_interpolation(v, source, f"{prefix}{i}.")
    elif isinstance(layer, str) and "${" in layer:
        raise ConfigError(f"{source}: {prefix.rstrip('.')}={layer!r} is not allowed: config "
                          "values are taken literally, and '${...}' interpolation is switched "
                          "off (write the value itself)", prefix.rstrip("."))


def _validate(cfg: DictConfig, origins: Origins) -> TrainConfig:
    """The config as dataclasses, running their value rules; errors name the layer."""
    try:
        result = OmegaConf.to_object(cfg)
        _require_finite(result)
        return result  # type: ignore[return-value]
    except (ConfigError, OmegaConfBaseException) as e:
        error = e if isinstance(e, ConfigError) else e.__cause__
        if not isinstance(error, ConfigError):
            raise ConfigError(str(e)) from None
        source = (origins.get(f"learner.{error.key}") or origins.get(f"replay.{error.key}")
                  or origins.get(str(error.key)) or "defaults")
        raise ConfigError(f"{source}: {error}", error.key) from None


def _require_finite(value: Any, key: str = "") -> None:
    """No number in a config may be infinite or NaN (``lr=inf`` would train on NaN)."""
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            _require_finite(getattr(value, f.name), f.name if not key else f"{key}.{f.name}")
    elif isinstance(value, dict):
        for k, v in value.items():
            _require_finite(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}={value!r} is not allowed: expected a finite number", key)


def _load_yaml(path: Path, source: str) -> DictConfig:
    try:
        data = OmegaConf.load(path)
    except Exception as e:  # the YAML parser's own message says where the syntax breaks
        raise ConfigError(f"{source}: cannot read YAML: {e}") from None
    if not isinstance(data, DictConfig):
        raise ConfigError(f"{source}: expected a mapping of keys to values at the top level")
    return data


def _dotted(override: str, schema: DictConfig) -> DictConfig:
    if "=" not in override:
        raise ConfigError(f"override {override!r}: expected key=value, e.g. learner.lr=0.001")
    key, _, _ = override.partition("=")
    top = key.split(".")[0]
    if top not in schema:
        for name in BARE:
            section = schema.get(name)
            if isinstance(section, DictConfig) and top in section:
                override = f"{name}.{override}"
                break
    try:
        return OmegaConf.from_dotlist([override])
    except OmegaConfBaseException as e:
        raise ConfigError(f"override {override!r}: {e}") from None


def load_config(
    algo: str,
    env: str,
    *,
    files: tuple[str | Path, ...] = (),
    flags: dict[str, Any] | None = None,
    overrides: tuple[str, ...] = (),
) -> TrainConfig:
    """The resolved, validated config of a run (see the module docstring for the layers)."""
    algorithm = _algorithm(algo)
    cfg = OmegaConf.structured(TrainConfig(algo=algo, env=env, learner=algorithm.config()))
    origins: Origins = {}
    family = env.partition(":")[0]
    layers = [(config_file("algos", algo), f"configs/algos/{algo}.yaml"),
              (config_file("envs", family), f"configs/envs/{family}.yaml")]
    for f in files:
        if not Path(f).is_file():
            raise ConfigError(f"--config {f}: no such file")
        layers.append((Path(f), str(f)))
    for path, source in layers:
        if path is not None:
            cfg = _merge(cfg, _load_yaml(path, source), source, origins)
    cfg = _command_line(cfg, flags, overrides, origins)
    for key in ("algo", "env"):
        fixed = {"algo": algo, "env": env}[key]
        require(cfg[key] == fixed, key, cfg[key], f"{fixed!r} (set it with --{key})")
    result = _validate(cfg, origins)
    _check_defining_keys(algorithm, result.learner, origins)
    return result


def _algorithm(name: str) -> Algorithm:
    try:
        return get_algorithm(name)
    except UnknownAlgorithm as e:
        raise ConfigError(str(e), "algo") from None


def _check_defining_keys(algorithm: Algorithm, learner: Any, origins: Origins) -> None:
    """Refuse a change of a key that defines the algorithm, naming the algorithm that has it."""
    defaults = algorithm.config()
    for key in algorithm.defines:
        value, default = getattr(learner, key), getattr(defaults, key)
        if value != default:
            others = [a.name for a in algorithms().values() if key in a.defines
                      and getattr(a.config(), key) == value]
            instead = f"; use --algo {others[0]}" if others else ""
            source = origins.get(f"learner.{key}", "defaults")
            raise ConfigError(f"{source}: {key}={value!r} is not allowed with --algo "
                              f"{algorithm.name}: {key}={default!r} is what makes it "
                              f"{algorithm.name}{instead}", key)


def learner_defaults(algo: str) -> Any:
    """The registered defaults of ``algo``'s learner: its config dataclass with the learner
    section of ``configs/algos/<algo>.yaml`` on top (how MANSA builds its IQL and QMIX)."""
    algorithm = _algorithm(algo)
    node = OmegaConf.structured(algorithm.config())
    path = config_file("algos", algo)
    if path is not None:
        section = _load_yaml(path, f"configs/algos/{algo}.yaml").get("learner")
        if section is not None:
            node = _merge(node, section, f"configs/algos/{algo}.yaml", {})
    return OmegaConf.to_object(node)


def _command_line(cfg: DictConfig, flags: dict[str, Any] | None,
                  overrides: tuple[str, ...], origins: Origins) -> DictConfig:
    if flags:
        cfg = _merge(cfg, {k: v for k, v in flags.items() if v is not None}, "command line",
                     origins)
    for o in overrides:
        cfg = _merge(cfg, _dotted(o, cfg), f"override {o!r}", origins)
    return cfg


def with_overrides(cfg: TrainConfig, *, flags: dict[str, Any] | None = None,
                   overrides: tuple[str, ...] = ()) -> TrainConfig:
    """``cfg`` with command-line flags and ``key=value`` overrides on top (e.g. on resume)."""
    origins: Origins = {}
    return _validate(_command_line(OmegaConf.structured(cfg), flags, overrides, origins),
                     origins)


def overrides_yaml(algo: str, env: str, overrides: tuple[str, ...]) -> str:
    """``key=value`` overrides as a YAML file for ``--config`` (bare learner and replay keys
    under their sections); checked first, so a file written here always loads."""
    load_config(algo, env, overrides=overrides)
    schema = OmegaConf.structured(TrainConfig(algo=algo, env=env,
                                              learner=_algorithm(algo).config()))
    layer = OmegaConf.merge(OmegaConf.create(), *(_dotted(o, schema) for o in overrides))
    return OmegaConf.to_yaml(layer)


def to_yaml(cfg: TrainConfig) -> str:
    """The resolved config as YAML (what a run records and ``--config`` reads back)."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def from_dict(data: dict[str, Any]) -> TrainConfig:
    """A :class:`TrainConfig` from its plain-dict form (as stored in a checkpoint)."""
    algorithm = _algorithm(data["algo"])
    cfg = OmegaConf.structured(TrainConfig(algo=data["algo"], env=data["env"],
                                           learner=algorithm.config()))
    origins: Origins = {}
    return _validate(_merge(cfg, data, "checkpoint config", origins), origins)


def to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """Plain-dict form of a config (YAML-safe values only)."""
    return OmegaConf.to_container(OmegaConf.structured(cfg))  # type: ignore[return-value]
