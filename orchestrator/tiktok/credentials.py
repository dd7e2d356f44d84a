"""The seam between the API client and the token store.

The client asks an :class:`AccessTokenSource` for a user's current access token before every
request, and tells it when TikTok rejected one (401 ``access_token_invalid``) so that it
refreshes once. The store's token provider implements it; tests may pass a fake.
"""

from __future__ import annotations

from typing import Protocol

from orchestrator.secret import Secret


class AccessTokenSource(Protocol):
    """Current access tokens per user, refreshed when stale."""

    def access_token(self, open_id: str) -> Secret:
        """A usable access token for ``open_id`` (refreshed first if it is stale or expired).

        Raises ``NeedsLoginError`` when the user must log in again.
        """
        ...

    def refresh_after_rejection(self, open_id: str, rejected: Secret) -> Secret:
        """TikTok answered 401 ``access_token_invalid`` to ``rejected``: refresh and return the
        new token. If another thread already replaced ``rejected``, return the newer token
        without refreshing again. Raises ``NeedsLoginError`` when refresh is impossible.
        """
        ...
