"""Unsupervised environment design: teachers that choose the tasks a team trains on.

:mod:`marl.algos.ued.scores` holds the level scores (positive value loss, MaxMC, PAIRED's
regret), :mod:`marl.algos.ued.teachers` the teachers (DR, PLR⊥, ACCEL) behind one interface.
Tasks are token rows of an environment's :class:`~marl.tasks.TaskSpace`.
"""
