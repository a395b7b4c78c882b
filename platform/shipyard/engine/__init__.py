"""The engine: discovers plugins, computes plans against targets, applies them.

Unlike ``shipyard.core`` it does I/O: reading git revisions, observing targets,
holding locks, writing journals.
"""
