"""The Bearer-token endpoints: user_info, creator_info, the three inits, status fetch.

Each handler runs the same prologue (authenticate → scope → rate window, ``endpoint``), then
validates the body the way ``tiktok-api.md`` §3 to §8 describes, answering TikTok's error code
in the posting envelope. Beyond what TikTok refuses, it records what its integration rules
forbid (no creator_info before a direct post, a disabled interaction switched on) as
violations. One module per endpoint family:

- ``creator``: user_info, creator_info;
- ``video_init``: the direct video init and the inbox init;
- ``photo_init``: the photo init (content_init);
- ``init_checks``: what the inits share (who posts, fields, sources, caps, the new publish);
- ``status``: the status fetch and the publish progress it drives.

Must not: do I/O, or stream bodies (``upload.py`` takes the chunk PUTs).
"""

from __future__ import annotations

from orchestrator.sandbox.creator import CreatorEndpoints
from orchestrator.sandbox.photo_init import PhotoInit
from orchestrator.sandbox.state import SandboxState
from orchestrator.sandbox.status import StatusEndpoint
from orchestrator.sandbox.video_init import VideoInits


class PostingEndpoints:
    """user_info, creator_info, video/inbox/content init, status fetch: the handlers the
    server routes to, each from its family's module, sharing one sandbox state."""

    def __init__(self, state: SandboxState) -> None:
        creator = CreatorEndpoints(state)
        videos = VideoInits(state)
        self.user_info = creator.user_info
        self.creator_info = creator.creator_info
        self.video_init = videos.video_init
        self.inbox_init = videos.inbox_init
        self.content_init = PhotoInit(state).content_init
        self.status = StatusEndpoint(state).status
