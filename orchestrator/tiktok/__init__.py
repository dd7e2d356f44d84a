"""TikTok's API as the orchestrator speaks it: OAuth, the posting endpoints, the chunk plan."""
