"""Train MAPPO: `marl train --algo mappo` with the algorithm fixed.

    python scripts/train_mappo.py --env lbf:8x8-2p-3f --steps 20000000 --seed 1 [key=value ...]
"""

import sys

from marl.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "--algo", "mappo", *sys.argv[1:]]))
