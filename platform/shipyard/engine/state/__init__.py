"""Where an environment's apply state lives: its lock, its journal and what was last applied.

One small interface (``store.ObjectStore``: named objects with compare-and-swap) and two
homes for it: files under ``.shipyard/`` for the local target, and the environment's state
bucket for a cloud one (``s3.S3Store``), so that ephemeral CI runners share one lock and one
journal. The lock (``lease``), the journal (``journal``) and the last-applied record
(``applied``) are written once, over the interface.
"""
