"""The ``marl`` command line."""

from __future__ import annotations

import argparse
import sys

from marl import __version__


def _envs(args: argparse.Namespace) -> int:
    from marl.envs import all_ids, families

    if args.all:
        for env_id in all_ids():
            print(env_id)
        return 0
    print("Environment families (any id matching a pattern works; `marl envs --all` lists them):")
    for prefix, family in families().items():
        names = list(family.catalogue())
        examples = ", ".join(f"{prefix}:{n}" for n in names[:2]) or "(not installed)"
        print(f"  {family.pattern:<40} {family.summary}")
        print(f"  {'':<40} {len(names)} catalogued ids, e.g. {examples}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``marl`` console script."""
    parser = argparse.ArgumentParser(prog="marl", description="Multi-agent RL suite")
    parser.add_argument("--version", action="version", version=f"marl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    envs = sub.add_parser("envs", help="list the registered environments")
    envs.add_argument("--all", action="store_true", help="print every catalogued id")
    envs.set_defaults(run=_envs)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
