"""Train MANSA: `marl train --algo mansa` with the algorithm fixed.

    python scripts/train_mansa.py --env lbf:8x8-2p-3f --steps 2000000 --seed 1 [key=value ...]
"""

import sys

from marl.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "--algo", "mansa", *sys.argv[1:]]))
