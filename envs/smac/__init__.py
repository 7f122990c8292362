"""StarCraft Multi-Agent Challenge (SMAC) scenarios: unit statistics, maps, damage rules.

``marl.envs.smac.units`` holds the StarCraft II unit statistics the SMAC maps use,
``marl.envs.smac.maps`` the maps themselves (unit lists, episode limits, and the observation,
state and action sizes they give under SMAC's default flags), and ``marl.envs.smac.combat``
SC2's damage rules (bonuses, shields before armour) as tensor code.
"""
