"""``python -m rnnlm``: the same as the ``rnnlm`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
