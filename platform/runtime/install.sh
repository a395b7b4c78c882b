#!/bin/sh
# The platform runtime image's install steps, in one place: the Dockerfile's builder stage runs
# them, and tests/test_runtime_image.py runs the same script into a fresh folder (offline, from
# the machine's uv cache), so what the image installs is tested without a container build.
#
#   install.sh deps      the locked third-party environment (needs pyproject.toml and uv.lock only)
#   install.sh project   Shipyard itself, as a wheel (not editable), into the same environment
#
# Run in the project folder. The environment is UV_PROJECT_ENVIRONMENT (the image: /opt/venv).
# What goes in: the `features` and `pipelines` extras (Feast, Great Expectations, pandas, pyarrow,
# KFP, MLflow, scikit-learn): what the components import at run time. Never the dev group.
set -eu
: "${UV_PROJECT_ENVIRONMENT:?set UV_PROJECT_ENVIRONMENT to the environment to install into}"
set -- "${1:?usage: install.sh deps|project}"
common="--locked --no-dev --no-editable --extra features --extra pipelines"
case "$1" in
  deps) exec uv sync $common --no-install-project ;;
  project) exec uv sync $common ;;
  *) echo "install.sh: unknown step '$1' (expected deps or project)" >&2; exit 2 ;;
esac
