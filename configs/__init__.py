"""Shipped YAML configs: ``algos/<name>.yaml`` and ``envs/<family>.yaml`` (package data)."""
