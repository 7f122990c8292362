"""Train VDN: `marl train --algo vdn` with the algorithm fixed.

    python scripts/train_vdn.py --env lbf:8x8-2p-3f --steps 2000000 --seed 1 [key=value ...]
"""

import sys

from marl.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "--algo", "vdn", *sys.argv[1:]]))
