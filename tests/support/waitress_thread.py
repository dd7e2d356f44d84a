"""A waitress server run on a thread for the length of a ``with`` block, then shut down."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

LOOP_TIMEOUT = 0.05
"""Seconds waitress's socket loop waits between looks at its channels (its default, 1 s, is
how long every shutdown would wait for the loop to notice it has nothing left to serve)."""


@contextlib.contextmanager
def serving(server: Any) -> Iterator[None]:
    """Serve ``server`` (``waitress.create_server(...)``) on a thread until the block ends."""
    stopping = threading.Event()

    def loop() -> None:
        try:
            server.run()
        except (OSError, ValueError):
            if not stopping.is_set():
                raise  # only the channels closed under it at the end are expected

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopping.set()
        # As webtest's StopableWSGIServer: close every channel so the loop's map empties and
        # its thread ends, then the request threads.
        while server._map:
            for channel in list(server._map.values()):
                channel.handle_close()
        thread.join(10)
        server.task_dispatcher.shutdown()
