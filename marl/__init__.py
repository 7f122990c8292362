"""marl: fast multi-agent reinforcement learning on batched torch environments.

The core: the batched environment protocol (:mod:`marl.spec`), the environment base class
(:mod:`marl.batched_env`), episode replay (:mod:`marl.replay`), the runner
(:mod:`marl.runner`), agent networks (:mod:`marl.nets`), returns, statistics and schedules,
the run config (:mod:`marl.config`), the training loop (:mod:`marl.train`), logging,
checkpoints, rendering and the ``marl`` command line. Environments live in :mod:`marl.envs`,
learners in :mod:`marl.algos`.
"""

from marl.batched_env import BatchedEnv
from marl.spec import EnvSpec, Obs, Step, VecEnv

__version__ = "0.1.0"
__all__ = ["BatchedEnv", "EnvSpec", "Obs", "Step", "VecEnv", "__version__"]
