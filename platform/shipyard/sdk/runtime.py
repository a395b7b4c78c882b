"""The platform runtime image a team's pipeline components run in, per environment.

Team code never writes a registry: it asks for the image of the environment being compiled::

    from kfp import dsl
    from shipyard.sdk.runtime import runtime_image

    @dsl.component(base_image=runtime_image(), install_kfp_package=False)
    def train(...): ...

The image of each environment is one setting, ``platform/runtime/images.yaml`` (``IMAGES``):
``local`` may be a tag (the local target runs components with KFP's SubprocessRunner, which
ignores the image); every cloud environment names an image by digest, which the image workflow
writes after it pushes the build (platform/runtime/Dockerfile). The pipelines plane reads the
file once per environment and compiles the team's code inside ``compiling(image)``: a value
scoped to that compile (a context variable), not process state, so every pipeline of an
environment moves with that environment's entry, and nothing else does.

Outside a compile (``python pipeline.py``, a team's unit test of a component), ``runtime_image()``
answers the ``local`` entry of the nearest ``platform/runtime/images.yaml`` above the working
directory, else ``DEFAULT``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

#: The setting: environment name → image reference, under the top-level key ``images``.
IMAGES = "platform/runtime/images.yaml"
#: The entry used outside a compile.
LOCAL = "local"
#: What ``runtime_image()`` answers with neither a compile nor a readable setting, and the local
#: environment's image in a repository without the setting (what pipelines named before it existed).
DEFAULT = "ghcr.io/shipyard-dev/runtime:0.1.0"

_IMAGE: ContextVar[str | None] = ContextVar("shipyard_runtime_image", default=None)


def runtime_image() -> str:
    """The runtime image of the environment being compiled (outside a compile: the ``local`` entry)."""
    compiling_now = _IMAGE.get()
    if compiling_now is not None:
        return compiling_now
    for folder in (Path.cwd(), *Path.cwd().parents):
        found = local_image(folder / IMAGES)
        if found is not None:
            return found
    return DEFAULT


def local_image(path: Path) -> str | None:
    """The ``local`` entry of the setting at ``path`` (None: no such file or entry). Reads, never caches."""
    import yaml  # here: every plan imports the SDK, few read this file

    try:
        loaded: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    images = loaded.get("images") if isinstance(loaded, dict) else None
    value = images.get(LOCAL) if isinstance(images, dict) else None
    return value if isinstance(value, str) and value else None


@contextmanager
def compiling(image: str) -> Iterator[None]:
    """The pipelines plane's side: ``runtime_image()`` answers ``image`` inside this block."""
    token = _IMAGE.set(image)
    try:
        yield
    finally:
        _IMAGE.reset(token)
