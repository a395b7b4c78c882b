"""The runtime image setting (``platform/runtime/images.yaml``), read and checked for one environment.

Every problem is reported at its line: an entry that is not a string, a cloud environment's image
that is not pinned by digest, an environment with no entry. ``local`` may name a tag (the local
target ignores the image); a file that is absent leaves ``local`` on ``sdk.runtime.DEFAULT`` and
every cloud environment without an image, which is an error: a cluster would pull whatever a tag
points at by then.
"""

from __future__ import annotations

import re
from pathlib import Path

from shipyard.core.yamlsource import YamlDocument, read_yaml
from shipyard.sdk import Diagnostic, SourcePosition, SpecError
from shipyard.sdk.files import linked
from shipyard.sdk.runtime import DEFAULT, IMAGES, LOCAL

#: ``<registry>/<repository>@sha256:<64 hex>``: what a cluster pulls is exactly what was reviewed.
PINNED = re.compile(r"^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+@sha256:[0-9a-f]{64}$")
HINT = "the image workflow writes it after each push (.github/workflows/image.yml); see platform/runtime/"


def runtime_image(root: Path, environment: str) -> str:
    """The image ``environment``'s pipeline components run in; SpecError at the file's line otherwise."""
    path = root / IMAGES
    if not path.is_file() and not path.is_symlink():
        if environment == LOCAL:
            return DEFAULT
        raise SpecError([_problem(SourcePosition(IMAGES), f"no {IMAGES}", f"an image for '{environment}'")])
    link = linked(root, path)
    if link is not None:
        raise SpecError([link])
    documents, problems = read_yaml(path, IMAGES)
    if problems:
        raise SpecError(problems)
    doc = documents[0] if documents else None
    images = doc.data.get("images") if doc is not None and isinstance(doc.data, dict) else None
    if doc is None or not isinstance(images, dict):
        start = doc.start if doc is not None else SourcePosition(IMAGES)
        raise SpecError([_problem(start, "no 'images' mapping", "images: {<environment>: <image>}")])
    found = [d for name, value in images.items() if (d := _entry_problem(doc, name, value)) is not None]
    if found:
        raise SpecError(found)
    if environment not in images:
        raise SpecError(
            [_problem(doc.position(("images",), at_key=True), f"no entry for '{environment}'", "one per environment")]
        )
    image: str = images[environment]
    return image


def _entry_problem(doc: YamlDocument, name: object, value: object) -> Diagnostic | None:
    position = doc.position(("images", name))  # type: ignore[arg-type]
    if not isinstance(value, str) or not value.strip() or value != value.strip():
        return _problem(position, f"{value!r}", "an image reference", key=f"images.{name}")
    if name != LOCAL and not PINNED.match(value):
        return _problem(
            position,
            f"'{value}'",
            "an image pinned by digest: <registry>/<repository>@sha256:<64 hex digits>",
            key=f"images.{name}",
        )
    return None


def _problem(position: SourcePosition, got: str, expected: str, key: str = "images") -> Diagnostic:
    return Diagnostic.mismatch(
        "pipelines/runtime-image", got=got, expected=expected, position=position, key_path=key, hint=HINT
    )
