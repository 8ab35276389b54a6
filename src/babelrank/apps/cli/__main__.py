"""``python -m babelrank.apps.cli``: the ``babelrank`` command."""

import sys

from babelrank.apps.cli.entry import main

sys.exit(main())
