from tests.support.run_support import *  # noqa: F403  (moved to tests/support/run_support.py)
