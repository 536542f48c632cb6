"""``python -m emotune``: the ``emotune`` command."""

import sys

from emotune.cli import main

sys.exit(main())
