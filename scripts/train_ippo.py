"""Train IPPO: `marl train --algo ippo` with the algorithm fixed.

    python scripts/train_ippo.py --env lbf:8x8-2p-3f --steps 20000000 --seed 1 [key=value ...]
"""

import sys

from marl.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "--algo", "ippo", *sys.argv[1:]]))
