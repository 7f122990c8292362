"""Learners (IQL, VDN, QMIX, IPPO, MAPPO, MANSA, curricula) live here as they land.

Each learner is one module implementing ``act``, ``update``, ``state_dict`` and
``load_state_dict``; algorithms never import a concrete environment.
"""
