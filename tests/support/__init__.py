"""What the test tiers share, loaded as pytest plugins by ``tests/conftest.py``.

- :mod:`tests.support.tiers`: the fast default run and ``--all`` (markers, deselection).
- :mod:`tests.support.logs`: every test leaves the ``orchestrator`` logger as it found it.
- :mod:`tests.support.sandbox_api`: a sandbox and a raw HTTP session to it (fixtures ``clock``,
  ``config``, ``sandbox``, ``api``), for testing the sandbox itself.
- :mod:`tests.support.run_support`: real clips, manifests, a run rig and a served sandbox
  (fixtures ``rig``, ``served``), for the `run` tests.
- :mod:`tests.support.media_factory`: tiny MP4/MOV/WebM files built in memory.
"""
