"""Language-model agents in StarCraft battles and in multi-agent Crafter.

An LLM-PySC2-style text bridge. Text environments (``llm-smac:<map>`` on the built-in
simulator, ``llm-sc2:<map>`` on the real game, ``llm-crafter:<N>p`` on multi-agent Crafter) give
each LLM agent an observation text and read its reply: :func:`make` builds many battles at
once, :func:`parallel_env` one battle as a PettingZoo ``ParallelEnv`` of strings. The grammar
and its parser are in :mod:`marl.llm.grammar`; backends that turn prompts into replies (any
OpenAI-compatible server, a local ``transformers`` model, a Python function, a recorded
transcript) in :mod:`marl.llm.backends`; the concurrent query loop (timeouts, retries, a cap on
requests in flight) in :mod:`marl.llm.query`; ``marl llm-eval`` in :mod:`marl.llm.evaluate`.
"""

from __future__ import annotations

import re
from typing import Any

from marl.llm.text_env import TextBattles, TextParallelEnv

PREFIXES = ("llm-smac", "llm-sc2", "llm-crafter")
TEXT_KEYS = ("teams", "decision_seconds", "max_actions", "task")


def make(env_id: str, battles: int = 1, **kwargs: Any) -> TextBattles:
    """``battles`` battles of the text environment ``env_id``. Keywords: ``teams``,
    ``decision_seconds``, ``max_actions``, ``task`` for StarCraft (others go to the battle
    environment, e.g. ``seed``, ``device``, ``difficulty`` for ``llm-sc2``);
    ``decision_steps``, ``max_actions``, ``task``, ``seed`` and the ``crafter:`` keywords for
    Crafter."""
    prefix, _, name = env_id.partition(":") if isinstance(env_id, str) else ("", "", "")
    if not isinstance(battles, int) or isinstance(battles, bool) or battles < 1:
        raise ValueError(f"battles={battles!r}: a positive integer")
    if prefix in ("llm-smac", "llm-sc2"):
        from marl.envs import make as make_env
        from marl.envs.smac import MAPS
        from marl.llm.smac_text import SMACTextBattles

        if name not in MAPS:
            raise ValueError(f"{env_id!r}: {prefix} ids are {prefix}:<SMAC map>, e.g. "
                             f"{prefix}:3m (maps: {', '.join(MAPS)})")
        text = {k: kwargs.pop(k) for k in TEXT_KEYS if k in kwargs}
        env = make_env(f"{prefix[4:]}:{name}", num_envs=battles, **kwargs)
        return SMACTextBattles(env, name, **text)
    if prefix == "llm-crafter":
        from marl.llm.crafter_text import CrafterTextWorlds

        if re.fullmatch(r"(mac-)?[1-8]p", name) is None:
            raise ValueError(f"{env_id!r}: llm-crafter ids are llm-crafter:<N>p and "
                             "llm-crafter:mac-<N>p with N from 1 to 8")
        return CrafterTextWorlds(name, battles, **kwargs)
    raise ValueError(f"unknown text environment {env_id!r}: ids start with "
                     f"{', '.join(p + ':' for p in PREFIXES)} (e.g. llm-smac:3m, llm-crafter:2p)")


def parallel_env(env_id: str, **kwargs: Any) -> TextParallelEnv:
    """One battle of ``env_id`` as a PettingZoo ``ParallelEnv`` whose observations and actions
    are strings."""
    return TextParallelEnv(make(env_id, 1, **kwargs))
