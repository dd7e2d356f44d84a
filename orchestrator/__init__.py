"""tiktok-orchestrator: batch uploads to TikTok's Content Posting API, exactly once.

``__version__`` is the installed package's version (pyproject.toml ``version``, the one place
it is written); the CLI's ``--version`` and the HTTP User-Agent both show it.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tiktok-orchestrator")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
