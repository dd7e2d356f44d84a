from tests.support.media_factory import *  # noqa: F403  (moved to tests/support/media_factory.py)
