"""``python -m fcnseg``: the same as the ``fcnseg`` command."""

import sys

from fcnseg.cli.main import main

sys.exit(main())
