"""``python -m ptt_client.radio``: the same as ``ptt-radio``."""

import sys

from ptt_client.radio.cli import main

if __name__ == "__main__":
    sys.exit(main())
