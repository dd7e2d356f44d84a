"""tiktok-orchestrator: batch uploads to TikTok's Content Posting API, exactly once."""

__version__ = "0.1.0"
