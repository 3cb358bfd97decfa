"""``python -m rnnlm``: the same as the ``rnnlm`` command."""

import sys

from rnnlm.cli.app import main

if __name__ == "__main__":
    sys.exit(main())
