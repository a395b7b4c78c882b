"""Built-in planes. Each is a plugin registered through the ``shipyard.plugins``
entry point exactly like a third-party one; the engine has no special case for them."""
