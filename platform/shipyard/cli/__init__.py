"""The ``shipyard`` command, as a small package: the group and its session (``app``), output
helpers (``output``), and the built-in verbs by concern (``specs``, ``plans``, ``local``).
Planes add their own verbs through the ``shipyard_commands`` hook.

Start-up stays light: only click is imported at first; the engine, pydantic and rich load
inside the command that needs them.

Exit codes: 0 ok · 1 user error · 2 changes present (plan --detailed-exitcode) · 3 internal
error or failed apply.
"""

from shipyard.cli.app import cli, main

__all__ = ["cli", "main"]
