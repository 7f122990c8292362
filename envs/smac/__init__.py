"""StarCraft Multi-Agent Challenge (SMAC) scenarios: unit statistics and maps.

``marl.envs.smac.units`` holds the StarCraft II unit statistics the SMAC maps use and
``marl.envs.smac.maps`` the maps themselves (unit lists, episode limits, and the observation,
state and action sizes they give under SMAC's default flags).
"""
