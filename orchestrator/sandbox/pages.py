"""The HTML the sandbox's authorize endpoint shows in a browser.

The consent page is a plain form: pick a sandbox user, keep or untick scopes, press Authorize
(or Deny). Every OAuth parameter of the GET travels back in hidden fields, so the POST can be
validated exactly like the GET. Everything interpolated is escaped. No state, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from orchestrator.sandbox.config import SandboxUser

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 34rem; margin: 3rem auto; color: #161823; }
h1 { font-size: 1.4rem; } .app { color: #fe2c55; }
fieldset { border: 1px solid #ddd; border-radius: 8px; margin: 1rem 0; }
label { display: block; margin: .3rem 0; }
button { font-size: 1rem; padding: .5rem 1.4rem; border-radius: 4px; border: 1px solid #ccc; }
button.authorize { background: #fe2c55; color: white; border-color: #fe2c55; }
.note { color: #666; font-size: .85rem; }
"""


def authorize_page(
    *,
    client_key: str,
    users: Sequence[SandboxUser],
    scopes: Sequence[str],
    hidden: Mapping[str, str],
    action: str,
    approve_label: str = "Authorize",
) -> str:
    """The consent form: a user picker, one checked box per requested scope, two buttons
    (``approve_label``, "Approve" for a Web app, and Deny)."""
    options = "\n".join(
        f'      <option value="{escape(user.open_id)}">{escape(user.display_name)} '
        f"(@{escape(user.username)}, {'private' if user.private else 'public'})</option>"
        for user in users
    )
    boxes = "\n".join(
        f'    <label><input type="checkbox" name="granted_scope" value="{escape(scope)}" checked> '
        f"{escape(scope)}</label>"
        for scope in scopes
    )
    approve = escape(approve_label)
    fields = "\n".join(
        f'  <input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in hidden.items()
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Authorize - TikTok sandbox</title><style>{_STYLE}</style></head>
<body>
<h1><span class="app">{escape(client_key)}</span> wants to access your TikTok account</h1>
<p class="note">This is the tiktok-orchestrator sandbox, not TikTok. No real account is used.</p>
<form method="post" action="{escape(action)}">
{fields}
  <fieldset>
    <legend>Log in as</legend>
    <select name="open_id" id="open_id">
{options}
    </select>
  </fieldset>
  <fieldset>
    <legend>Allow this app to</legend>
{boxes}
  </fieldset>
  <button type="submit" name="action" value="authorize" class="authorize">{approve}</button>
  <button type="submit" name="action" value="deny" class="deny">Deny</button>
</form>
</body>
</html>
"""


def error_page(title: str, detail: str) -> str:
    """Shown instead of a redirect when the redirect target itself cannot be trusted."""
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{escape(title)} - TikTok sandbox</title>
<style>{_STYLE}</style></head>
<body>
<h1>{escape(title)}</h1>
<p>{escape(detail)}</p>
<p class="note">tiktok-orchestrator sandbox</p>
</body>
</html>
"""
