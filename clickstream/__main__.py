"""``python -m clickstream``: the ``clickstream`` command.

Run as a script, never imported, so the core does not depend on the entry layer it hands
over to (the one exemption of tests/test_architecture.py, see ARCHITECTURE.md).
"""

import sys

from launch.cli.main import main

sys.exit(main())
