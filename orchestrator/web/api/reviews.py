"""``POST /api/v1/reviews``: a review link for a creator's posts awaiting review (the review pages
themselves are ``web/review.py``). The link's token is in this answer only."""

from __future__ import annotations

from flask import Response

from orchestrator.web.api.base import blueprint, require_api_key


@blueprint.post("/reviews")
@require_api_key
def create_review() -> tuple[Response, int]:
    """A review link for ``{"user_id": ...}``: 201 with ``review_url``; 409 when nothing of
    theirs awaits review."""
    from orchestrator.web.review import api_create_link

    return api_create_link()
