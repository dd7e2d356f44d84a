from tests.support.sandbox_api import *  # noqa: F403  (moved to tests/support/sandbox_api.py)
