"""The built-in TikTok simulator (see ``tiktok-api.md``)."""
