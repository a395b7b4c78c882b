"""The platform runtime image (platform/runtime/) and the image setting of each environment.

No container build tool runs here (and nothing may reach a registry), so the Dockerfile is held to
its shape (multi-stage, every base pinned by digest, a non-root user, only the environment in the
final stage) and its install steps are run for real: the builder stage's ``COPY`` lines are copied
into a fresh folder and its ``RUN shipyard-install`` steps run there, with the same script
(platform/runtime/install.sh) and this machine's uv, offline from its cache. What lands there must
import everything the team template's components import (in its bake, pipelines/fraud/), and no dev tool.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import REPO_ROOT, Result, commit, edit, example_repo
from shipyard.planes.pipelines import images
from shipyard.sdk import SpecError
from shipyard.sdk.runtime import DEFAULT, IMAGES, compiling, runtime_image

RUNTIME = REPO_ROOT / "platform/runtime"
DOCKERFILE = RUNTIME / "Dockerfile"
UV = REPO_ROOT / ".tools/bin/uv"
#: A bake of the team template's pipeline (the template itself is Jinja, not Python).
TEAM_PIPELINE = REPO_ROOT / "pipelines/fraud/train/pipeline.py"
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, instruction: str) -> list[str]:
        return [args for name, args in self.instructions if name == instruction]


def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    """The global ARG defaults and the stages, ARGs of the base resolved; continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    arguments: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        instruction, _, args = line.partition(" ")
        instruction, args = instruction.upper(), args.strip()
        if instruction == "FROM":
            words = args.split()
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: arguments[m.group(1) or m.group(2)], words[0])
            stages.append(Stage(base, words[2] if len(words) > 2 and words[1].upper() == "AS" else ""))
        elif stages:
            stages[-1].instructions.append((instruction, args))
        elif instruction == "ARG":
            name, _, default = args.partition("=")
            arguments[name] = default
    return arguments, stages


def env_of(stage: Stage) -> dict[str, str]:
    found: dict[str, str] = {}
    for args in stage.all("ENV"):
        for word in shlex.split(args):
            name, _, value = word.partition("=")
            found[name] = value
    return found


# -- the Dockerfile's shape ---------------------------------------------------------------------------


def test_every_base_is_pinned_by_digest_and_the_build_is_multi_stage() -> None:
    _, stages = dockerfile()
    assert len(stages) >= 2, "a builder stage and a final stage"
    for stage in stages:
        assert DIGEST.search(stage.base), f"FROM {stage.base} is not pinned by digest"
    assert stages[0].base == stages[-1].base, "the final stage runs on the base the environment was built on"


def test_the_final_stage_runs_as_a_non_root_user_and_holds_only_the_environment() -> None:
    _, stages = dockerfile()
    builder, final = stages[0], stages[-1]
    [user] = final.all("USER")
    uid = user.split(":")[0]
    assert uid.isdigit(), "a numeric uid, so Kubernetes' runAsNonRoot can check it"
    assert int(uid) >= 10000
    assert final.all("COPY") == [f"--from={builder.name} /opt/venv /opt/venv"]
    assert "/opt/venv/bin" in env_of(final)["PATH"].split(":")[0]
    run = " ".join(final.all("RUN"))
    assert not re.search(r"apt-get install|gcc|build-essential|uv |pip install", run)
    assert not any(re.search(r"SECRET|TOKEN|PASSWORD|KEY", k) for k in env_of(final) | env_of(builder))


def test_the_builder_installs_with_the_makefiles_uv_and_keeps_no_cache() -> None:
    _, stages = dockerfile()
    builder = stages[0]
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    [pinned] = re.findall(r"^UV_VERSION := (\S+)$", makefile, flags=re.MULTILINE)
    assert f"UV_VERSION={pinned}" in builder.all("ARG")
    env = env_of(builder)
    assert env["UV_NO_CACHE"] == "1"
    assert env["UV_COMPILE_BYTECODE"] == "1"
    assert env["UV_PROJECT_ENVIRONMENT"] == "/opt/venv"
    assert env["UV_PYTHON_DOWNLOADS"] == "never"
    assert [r for r in builder.all("RUN") if "shipyard-install" in r] == [
        "shipyard-install deps",
        "shipyard-install project",
    ]


def test_the_build_context_leaves_local_state_out() -> None:
    ignored = (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".git", ".venv", ".tools", ".shipyard"} <= set(ignored)


# -- the install steps, run for real ------------------------------------------------------------------


def component_imports(path: Path) -> set[str]:
    """Top-level modules the pipeline module and its components import, but optional ones (in a try)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    optional = {id(node) for t in ast.walk(tree) if isinstance(t, ast.Try) for b in t.body for node in ast.walk(b)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The builder stage's install steps, run into a fresh folder; returns the environment."""
    assert UV.is_file(), "make install puts uv in .tools/bin"
    _, stages = dockerfile()
    builder = stages[0]
    version = subprocess.run([str(UV), "--version"], capture_output=True, text=True, check=True).stdout.split()[1]
    assert f"UV_VERSION={version}" in builder.all("ARG"), "the test runs the uv the image installs"
    where = tmp_path_factory.mktemp("runtime")
    source, venv = where / "src", where / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV", "PYTHON"))}
    env |= env_of(builder)
    # Only what this machine needs to differ: the cache is where offline packages come from (the image
    # keeps none), bytecode is not compiled (seconds here, nothing to check), the machine's interpreter.
    del env["UV_NO_CACHE"]
    env |= {
        "UV_OFFLINE": "1",
        "UV_COMPILE_BYTECODE": "0",
        "UV_LINK_MODE": "hardlink",
        "UV_PYTHON": os.path.realpath(sys.executable),
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "PATH": f"{UV.parent}{os.pathsep}{env['PATH']}",
    }
    script = None
    for instruction, args in builder.instructions:
        if instruction == "COPY":
            *sources, destination = args.split()
            for item in sources:
                if item == "platform/runtime/install.sh":
                    script = REPO_ROOT / item
                    continue
                target = source / destination if destination not in ("./", ".") else source / Path(item).name
                target.parent.mkdir(parents=True, exist_ok=True)
                if (REPO_ROOT / item).is_dir():
                    shutil.copytree(REPO_ROOT / item, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                else:
                    shutil.copy(REPO_ROOT / item, target)
        elif instruction == "RUN" and args.startswith("shipyard-install "):
            assert script is not None, "the script is copied before it runs"
            step = args.split()[1]
            done = subprocess.run(
                ["sh", str(script), step], cwd=source, env=env, capture_output=True, text=True, check=False
            )
            assert done.returncode == 0, f"install.sh {step}:\n{done.stderr}"
    return venv


def venv_python(venv: Path, code: str) -> str:
    done = subprocess.run(
        [str(venv / "bin/python"), "-c", code],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"},
        cwd=venv,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_environment_imports_what_the_components_import(installed: Path) -> None:
    modules = component_imports(TEAM_PIPELINE)
    assert {"kfp", "pandas", "feast", "mlflow", "sklearn", "shipyard.sdk.runtime"} <= modules
    # Optional: `train` imports it in a try and falls back to scikit-learn; `register` only after a CUDA run.
    modules -= {"xgboost"}
    venv_python(installed, "\n".join(f"import {m}" for m in sorted(modules | {"kfp.kubernetes"})))


def test_the_environment_holds_shipyard_as_a_wheel_and_no_dev_tool(installed: Path) -> None:
    shown = venv_python(
        installed,
        "import importlib.metadata as m, importlib.util as u, json, shipyard\n"
        "names = ['pytest', 'ruff', 'hypothesis', 'moto', 'zizmor', 'shipyard_example_vectordb', 'pulumi', 'kserve']\n"
        "print(json.dumps({'shipyard': shipyard.__file__, 'present': [n for n in names if u.find_spec(n)],\n"
        "                  'dists': sorted(d.metadata['Name'].lower() for d in m.distributions())}))",
    )
    found = json.loads(shown)
    assert found["present"] == []
    assert Path(found["shipyard"]).is_relative_to(installed), "installed, not linked to the source tree"
    assert "shipyard" in found["dists"]
    assert "cookiecutter" not in found["dists"]


# -- the setting: one image per environment -----------------------------------------------------------


def write_images(root: Path, text: str) -> None:
    (root / IMAGES).parent.mkdir(parents=True, exist_ok=True)
    (root / IMAGES).write_text(text, encoding="utf-8")


PINNED = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shipyard-dev-runtime@sha256:" + "ab" * 32


def test_the_committed_setting_names_every_environment_and_pins_the_cloud_ones() -> None:
    environments = sorted(p.stem for p in (REPO_ROOT / "platform/environments").glob("*.yaml"))
    for environment in ("local", *environments):
        assert images.runtime_image(REPO_ROOT, environment)
    for environment in environments:
        assert DIGEST.search(images.runtime_image(REPO_ROOT, environment))


def test_a_cloud_image_by_tag_or_a_missing_environment_is_an_error_at_its_line(tmp_path: Path) -> None:
    write_images(tmp_path, f"images:\n  local: runtime:dev\n  dev: {PINNED}\n  staging: registry.example/runtime:1.2\n")
    with pytest.raises(SpecError) as raised:
        images.runtime_image(tmp_path, "dev")
    [problem] = raised.value.diagnostics
    assert problem.position is not None
    assert (problem.position.line, problem.position.column) == (4, 12)
    assert "pinned by digest" in problem.message
    write_images(tmp_path, f"images:\n  local: runtime:dev\n  dev: {PINNED}\n")
    assert images.runtime_image(tmp_path, "dev") == PINNED
    assert images.runtime_image(tmp_path, "local") == "runtime:dev"
    with pytest.raises(SpecError) as raised:
        images.runtime_image(tmp_path, "prod")
    assert "no entry for 'prod'" in raised.value.diagnostics[0].message


def test_without_the_setting_local_has_a_default_and_a_cloud_environment_an_error(tmp_path: Path) -> None:
    assert images.runtime_image(tmp_path, "local") == DEFAULT
    with pytest.raises(SpecError) as raised:
        images.runtime_image(tmp_path, "dev")
    assert "no platform/runtime/images.yaml" in raised.value.diagnostics[0].message


def test_runtime_image_answers_the_compile_and_outside_it_the_local_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_images(tmp_path, f"images:\n  local: runtime:mine\n  dev: {PINNED}\n")
    (tmp_path / "pipelines/team").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "pipelines/team")
    assert runtime_image() == "runtime:mine"
    with compiling(PINNED):
        assert runtime_image() == PINNED
    assert runtime_image() == "runtime:mine"
    monkeypatch.chdir(tmp_path.parent)
    assert runtime_image() == DEFAULT


def test_an_image_change_is_a_change_to_every_pipeline_of_that_environment_only(
    shipyard: Callable[..., Result], tmp_path: Path
) -> None:
    root = example_repo(tmp_path)
    # A second pipeline, so that "every" means more than one.
    shutil.copytree(root / "pipelines/fraud/train", root / "pipelines/fraud/retrain")
    edit(root, "pipelines/fraud/retrain/pipeline.yaml", "name: train", "name: retrain")
    edit(
        root,
        "pipelines/fraud/retrain/pipeline.yaml",
        "registeredModel: fraud-scorer",
        "registeredModel: fraud-rescorer",
    )
    commit(root, "a second pipeline")
    old = images.runtime_image(root, "dev")
    new = old.split("@")[0] + "@sha256:" + "12" * 32
    edit(root, IMAGES, old, new)
    commit(root, "a new runtime image for dev")

    def changes(environment: str) -> dict[str, dict]:
        result = shipyard("plan", "--target", "base:HEAD~1", "--env", environment, "--format", "json", repo=root)
        assert result.code in (0, 2), result.err
        return {c["key"]: c for c in json.loads(result.out)["plan"]["changes"] if c["action"] != "noop"}

    dev = changes("dev")
    assert sorted(dev) == ["pipelines/fraud/Pipeline/retrain", "pipelines/fraud/Pipeline/train"]
    for change in dev.values():
        assert change["action"] == "update"
        moved = {"/".join(map(str, d["path"])): (d.get("before"), d.get("after")) for d in change["diffs"]}
        images_moved = {k: v for k, v in moved.items() if k.endswith("/image")}
        assert len(images_moved) == 4, moved  # each of the four components
        assert set(images_moved.values()) == {(old, new)}
        assert set(moved) - set(images_moved) <= {"ir"}
    assert changes("staging") == {}
    assert changes("local") == {}


def test_committed_ir_is_the_local_environments_and_is_not_stale_for_a_cloud_one(
    shipyard: Callable[..., Result], tmp_path: Path
) -> None:
    root = example_repo(tmp_path)
    edit(root, "pipelines/fraud/train/pipeline.yaml", "source: pipeline.py", "source: pipeline.py\n  compiled: ir.yaml")
    assert shipyard("compile", repo=root).code == 0
    assert images.runtime_image(root, "local") in (root / "pipelines/fraud/train/ir.yaml").read_text()
    commit(root, "the IR, committed")
    for environment in ("local", "dev"):
        result = shipyard("plan", "--target", "base:HEAD", "--env", environment, repo=root)
        assert result.code == 0, result.err
