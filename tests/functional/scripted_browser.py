"""A scripted "browser" for login tests: ``scripted_browser.py URL``.

It answers the sandbox's consent page with :mod:`orchestrator.sandbox.consent` (the first user,
or ``SCRIPTED_BROWSER_USER``; every scope ticked; Authorize, or Deny when
``SCRIPTED_BROWSER_ACTION=deny``) and follows the redirect to the orchestrator's loopback
callback, as a person's browser would. ``SCRIPTED_BROWSER_ACTION=ignore`` does nothing (a
browser the user closed). Exit code 0 when the callback answered, whatever its status.
"""

from __future__ import annotations

import os
import sys

from orchestrator.sandbox.consent import authorize, consent

__all__ = ["authorize"]


def main(argv: list[str]) -> int:
    action = os.environ.get("SCRIPTED_BROWSER_ACTION", "authorize")
    if action == "ignore":
        return 0
    consent(argv[1], action=action, user=os.environ.get("SCRIPTED_BROWSER_USER"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
