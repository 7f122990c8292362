"""marl: fast multi-agent reinforcement learning on batched torch environments.

The core: the batched environment protocol (:mod:`marl.spec`), the environment base class
(:mod:`marl.batched_env`), rendering helpers and the ``marl`` command line. Environments live
in :mod:`marl.envs`, learners in :mod:`marl.algos`.
"""

from marl.batched_env import BatchedEnv
from marl.spec import EnvSpec, Obs, Step, VecEnv

__version__ = "0.1.0"
__all__ = ["BatchedEnv", "EnvSpec", "Obs", "Step", "VecEnv", "__version__"]
