"""The upload package names what it offers, and its leaf stays a leaf."""

from __future__ import annotations

import orchestrator.upload as upload
from tests.support.imports import loaded_by_import


def test_every_advertised_name_imports_from_the_package() -> None:
    """`from orchestrator.upload import X` works for every name in __all__, and nothing else
    is advertised (a moved name is re-exported or dropped on purpose)."""
    for name in upload.__all__:
        assert getattr(upload, name) is not None, name
    assert upload.Uploader.__module__ == "orchestrator.upload.driver"
    assert upload.UploadMachine.__module__ == "orchestrator.upload.machine"
    assert upload.Initialised.__module__ == "orchestrator.upload.events"


def test_importing_the_events_does_not_load_the_engine() -> None:
    """upload.events is a leaf: importing it loads neither the driver nor the HTTP stack."""
    heavier = [
        "orchestrator.upload.driver",
        "orchestrator.upload.machine",
        "orchestrator.tiktok.client",
        "requests",
    ]
    assert loaded_by_import("orchestrator.upload.events", heavier) == []
