"""The manifest: load JSON or YAML, validate it, and turn it into immutable entries (SPEC §3).

Validation runs in three passes and collects every problem of every pass before giving up:

1. parse (:mod:`.documents`) — JSON or YAML (``yaml.safe_load`` semantics: plain data only,
   object-building tags refused), with line and column for syntax errors, duplicate keys reported
   rather than silently overwritten, and the line of any value found when a problem needs placing
   (a valid YAML manifest is built from libyaml's events; the node tree with its lines is
   composed only for a document with a problem);
2. schema (:mod:`.schema`) — the shipped JSON Schema (draft 2020-12,
   ``schemas/manifest.schema.json``), each error turned into
   ``location: what is wrong (line N); fix: how to fix it``;
3. semantics (:mod:`.checks`) — what a schema cannot say: exactly one media source, the file
   exists and is a regular MP4/MOV/WebM file within TikTok's limits (probed once per distinct
   file), caption lengths in UTF-16 units, a timezone on ``publish_at``, two entries that would
   be the same post.

:mod:`.validation` runs the passes in that order; :mod:`.model` holds the values they produce.
Data flows one way: model ← documents ← schema ← checks ← validation.

:func:`load_manifest` is the use case behind ``validate`` (and the first step of ``run``).
:func:`entry_identity` is the journal's key for an entry (SPEC §5).

What this package must not do: touch the network or the token store, print, or read more of a
video than orchestrator.media allows (a few KB to probe it, 2 MiB to fingerprint it).
"""

from orchestrator.manifest.checks import (
    BUILT_IN_DEFAULTS,
    CAPTION_MAX_UNITS,
    PHOTO_DESCRIPTION_MAX_UNITS,
    PHOTO_TITLE_MAX_UNITS,
    build_caption,
    utf16_units,
)
from orchestrator.manifest.documents import (
    MAX_DOCUMENT_DEPTH,
    MAX_DOCUMENT_VALUES,
    MAX_MANIFEST_BYTES,
)
from orchestrator.manifest.model import (
    DocPath,
    Entry,
    Manifest,
    ManifestCheck,
    ManifestForm,
    Mode,
    PrivacyLevel,
    Problem,
    content_identity,
    entry_identity,
)
from orchestrator.manifest.schema import manifest_schema
from orchestrator.manifest.sources import PostedCheck
from orchestrator.manifest.validation import check_manifest, load_manifest

__all__ = [
    "BUILT_IN_DEFAULTS",
    "CAPTION_MAX_UNITS",
    "MAX_DOCUMENT_DEPTH",
    "MAX_DOCUMENT_VALUES",
    "MAX_MANIFEST_BYTES",
    "PHOTO_DESCRIPTION_MAX_UNITS",
    "PHOTO_TITLE_MAX_UNITS",
    "DocPath",
    "Entry",
    "Manifest",
    "ManifestCheck",
    "ManifestForm",
    "Mode",
    "PostedCheck",
    "PrivacyLevel",
    "Problem",
    "build_caption",
    "check_manifest",
    "content_identity",
    "entry_identity",
    "load_manifest",
    "manifest_schema",
    "utf16_units",
]
