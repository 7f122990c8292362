"""Train QMIX: `marl train --algo qmix` with the algorithm fixed.

    python scripts/train_qmix.py --env lbf:8x8-2p-3f --steps 2000000 --seed 1 [key=value ...]
"""

import sys

from marl.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "--algo", "qmix", *sys.argv[1:]]))
