"""Environments: the registry, the PettingZoo face and adapters, and the environments.

``make(env_id, num_envs, device, **kwargs)`` builds a batched environment (``VecEnv``);
``parallel_env(env_id, **kwargs)`` one copy as a PettingZoo ``ParallelEnv``. Importing this
package also registers gymnasium ids without colons (``marl/Foraging-8x8-2p-3f-v1``, …) for
EPyMARL-style consumers (:mod:`marl.envs.gymnasium_ids`).
"""

from marl.envs import crafter, lbf, lbforaging_ref, smac  # noqa: F401  (registers families)
from marl.envs.gymnasium_ids import register_ids
from marl.envs.registry import (
    EnvFamily,
    UnknownEnvId,
    all_ids,
    env_version,
    families,
    make,
    parallel_env,
    register_family,
)

register_ids()

__all__ = [
    "EnvFamily",
    "UnknownEnvId",
    "all_ids",
    "env_version",
    "families",
    "make",
    "parallel_env",
    "register_family",
]
