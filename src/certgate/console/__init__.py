"""certgate's web console: the seed page's screens, server-rendered, over the same use cases and
permission checks as the API.

Mount ``create_console(ctx, secret_key=..., secure_cookies=...)`` at ``/console``. Pages are
Jinja2 templates with a little hand-written JavaScript (``static/console.js``); nothing is fetched
from another origin. The console never stores a generated private key: it exists only in the one
response that shows it.
"""

from certgate.console.app import create_console
from certgate.console.secret import load_or_create_secret

__all__ = ["create_console", "load_or_create_secret"]
