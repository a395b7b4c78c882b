"""The features worker: everything that imports Feast or runs a team's feature definitions.

Runs in its own process (``shipyard.sdk.worker``); the plane sends it plain JSON. The tasks
that run team code for a plan (``task_desired``) and check local data are asked of a worker
with a scrubbed environment (no credentials); registry reads and writes, of one with the engine's.
Objects travel as Feast's own protos turned into dicts, minus the timestamps
Feast stamps on them, so desired and observed compare field by field.

Feast is imported by the first task that needs it, not with this module: it takes seconds,
and a plan whose desired state is cached asks the team worker only for ``task_newest``
(pyarrow); ``task_check`` needs pandas and Great Expectations, and imports GX only when an
expectation runs. The worker that reads and writes registries imports Feast without
typeguard's checks (``_registry_worker``).
"""

from __future__ import annotations

import contextlib
import re
import sys
import tempfile
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.planes.features import checks
from shipyard.sdk.errors import UserError
from shipyard.sdk.featurerepo import reading
from shipyard.sdk.worker import team_code

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.repo_contents import RepoContents

#: Feast's registry proto fields → our Resource kinds.
REGISTRY_KINDS = {
    "entities": "Entity",
    "data_sources": "DataSource",
    "feature_views": "FeatureView",
    "on_demand_feature_views": "OnDemandFeatureView",
    "stream_feature_views": "StreamFeatureView",
    "feature_services": "FeatureService",
}
DUMMY_ENTITY = "__dummy"  # Feast's stand-in for entity-less views; not something a team declares


def _clean(value: Any) -> Any:
    """Drop Feast's bookkeeping (``meta``: created/updated timestamps) at every level."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if k != "meta"}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def registry_objects(registry_proto: Any, project: str) -> list[dict[str, Any]]:
    """``{kind, name, body}`` for every object of ``project`` in a Feast registry proto."""
    from google.protobuf.json_format import MessageToDict

    data = MessageToDict(registry_proto, preserving_proto_field_name=True)
    objects = []
    for field, kind in REGISTRY_KINDS.items():
        for item in data.get(field, []):
            body = _clean(item.get("spec", item))
            if body.get("project", project) != project or body.get("name") == DUMMY_ENTITY:
                continue
            body.pop("project", None)
            objects.append({"kind": kind, "name": body["name"], "body": body})
    return objects


def infra_objects(infra_proto: Any) -> list[dict[str, Any]]:
    """Online store tables Feast plans for the views; the table name is what identifies them."""
    from google.protobuf.json_format import MessageToDict

    data = MessageToDict(infra_proto, preserving_proto_field_name=True)
    objects = []
    for item in data.get("infra_objects", []):
        kind = item["infra_object_class_type"].rsplit(".", 1)[-1]
        table = next(v for k, v in item.items() if k != "infra_object_class_type")
        objects.append({"kind": "OnlineTable", "name": table["name"], "body": {"type": kind, "name": table["name"]}})
    return objects


@contextlib.contextmanager
def _team_repo(root: Path, team: str, offline: str) -> Iterator[RepoContents]:
    """Parse ``features/<team>/`` the way ``feast apply`` does, with ``offline_uri()`` answering ``offline``."""
    from feast.repo_operations import parse_repo

    repo = root / "features" / team
    # Feast names each file's module relative to the working directory; naming it relative to
    # the repo (which team_code puts on sys.path) gives the same modules, and the directory stays put.
    with team_code(repo), reading(offline), _modules_named_from(repo):
        try:
            contents = parse_repo(repo) if repo.is_dir() else _empty()
        except UserError:
            raise
        except Exception as error:  # team code: whatever it raises (typeguard's TypeCheckError too) is theirs to fix
            where = _team_line(root, repo, error) or f"features/{team}"
            raise UserError(
                f"{where}: the Feast definitions failed to load: {type(error).__name__}: {str(error).strip()}",
                hint=f"fix {where}; `python -c 'import features'` in features/{team} shows the full error",
            ) from error
        yield contents


def _team_line(root: Path, repo: Path, error: BaseException) -> str:
    """``features/<team>/<file>.py:<line>``: where in the team's files ``error`` was raised, innermost first.

    A call spread over lines is reported at the argument a type check names (``argument "ttl"``), if it can be found.
    """
    places = [(f.filename, f.lineno, f.end_lineno) for f in traceback.extract_tb(error.__traceback__)]
    if isinstance(error, SyntaxError) and error.filename:  # raised while compiling: no frame of its own
        places.append((error.filename, error.lineno, error.lineno))
    for filename, line, end in reversed(places):
        path = Path(filename).resolve()
        if not path.is_relative_to(repo.resolve()):
            continue
        where = str(path.relative_to(root.resolve()))
        if not line:
            return where
        named = re.match(r'argument "(\w+)"', str(error))
        if named and end and end > line:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()[line - 1 : end]
            at = next((n for n, text in enumerate(lines) if re.search(rf"\b{named[1]}\s*=", text)), 0)
            line += at
        return f"{where}:{line}"
    return ""


@contextlib.contextmanager
def _modules_named_from(repo: Path) -> Iterator[None]:
    from feast import repo_operations

    def module_of(path: Path) -> str:
        return ".".join(path.resolve().relative_to(repo.resolve()).with_suffix("").parts)

    original = repo_operations.py_path_to_module
    repo_operations.py_path_to_module = module_of
    try:
        yield
    finally:
        repo_operations.py_path_to_module = original


def _empty() -> RepoContents:
    from feast.repo_contents import RepoContents

    return RepoContents(
        projects=[],
        data_sources=[],
        entities=[],
        feature_views=[],
        feature_services=[],
        on_demand_feature_views=[],
        stream_feature_views=[],
        label_views=[],
        permissions=[],
    )


def _store(config: dict[str, Any]) -> FeatureStore:
    from feast import FeatureStore, RepoConfig

    return FeatureStore(config=RepoConfig(**config), repo_path=config["repo_path"])


def _registry_worker() -> None:
    """Called first by the registry tasks (observe, apply, materialize, online): Feast without typeguard's checks.

    Feast decorates its classes with typeguard's ``@typechecked``, which recompiles each of their
    methods as Feast is imported: over half of its import (2.5 s of 4 s of CPU on 2 cores), paid
    by every plan's ``observe``. The checks name the argument when a team's definitions give
    Feast a wrong type, so the worker that parses them for a plan (``task_desired``) keeps them.
    The registry worker builds objects from Feast's own protos, and ``task_apply`` parses the
    same files that plan's parse checked moments before. A worker runs the tasks of one kind
    (``FeaturesPlane``: ``team_worker`` or ``worker``), so this holds for its whole life.
    """
    if "feast" in sys.modules:
        return  # imported already: instrumented or not, it stays as it is
    import typeguard

    typeguard.typechecked = _unchecked


def _unchecked(target: Any = None, **_: Any) -> Any:
    """``typeguard.typechecked`` as it is under ``python -O``: the class or function, unchanged."""
    return target if target is not None else _unchecked


def _plan_error(team: str, error: Exception) -> UserError:
    return UserError(
        f"features/{team}: Feast refused the definitions: {error}", hint="fix the feature repo and plan again"
    )


def task_desired(root: str, teams: dict[str, dict[str, Any]], infra: bool) -> dict[str, Any]:
    """Each team's objects, as ``FeatureStore.plan`` sees them against an empty registry.

    ``teams`` maps a team to its store config and offline URI. Planning against a scratch
    registry runs Feast's own validation and inference without touching any target.
    """
    from feast import FileSource

    out: dict[str, Any] = {}
    for team, settings in teams.items():
        with tempfile.TemporaryDirectory(prefix="shipyard-feast-") as scratch:
            config = dict(settings["config"])
            config["registry"] = {"registry_type": "file", "path": f"{scratch}/registry.db", "cache_ttl_seconds": 0}
            config["online_store"] = {"type": "sqlite", "path": f"{scratch}/online.db"}
            config["provider"] = "local"
            with _team_repo(Path(root), team, settings["offline"]) as contents:
                try:
                    _, _, new_infra = _store(config).plan(contents)
                except (ValueError, TypeError) as error:
                    raise _plan_error(team, error) from error
                objects = registry_objects(contents.to_registry_proto(), config["project"])
                if infra:
                    objects += infra_objects(new_infra.to_proto())
                sources = {ds.name: ds.path for ds in contents.data_sources if isinstance(ds, FileSource)}
                views = {fv.name: fv.batch_source.name for fv in contents.feature_views if fv.batch_source is not None}
        out[team] = {"objects": objects, "sources": sources, "views": views}
    return out


def task_observe(teams: dict[str, dict[str, Any]], infra: bool) -> dict[str, list[dict[str, Any]]]:
    """Each team's objects as registered in its environment's Feast registry (none before the first apply)."""
    _registry_worker()
    out: dict[str, list[dict[str, Any]]] = {}
    for team, config in teams.items():
        proto = _registry_proto(config)
        if proto is None:
            out[team] = []
            continue
        root = Path(config["repo_path"])
        objects = [o | {"body": _relative_sources(o["body"], root)} for o in registry_objects(proto, config["project"])]
        if infra:
            objects += infra_objects(_store(config).registry.get_infra(config["project"]).to_proto())
        out[team] = objects
    return out


def _relative_sources(value: Any, root: Path) -> Any:
    """File sources inside the checkout as the repository-relative paths the plane plans.

    The local registry holds them absolute (``feast`` run in a team's folder anchors relative paths
    there, so Shipyard's local apply writes them anchored, as ``feast apply`` there does); the plan's
    paths stay relative, the same in every checkout.
    """
    if isinstance(value, list):
        return [_relative_sources(v, root) for v in value]
    if not isinstance(value, dict):
        return value
    found = {k: _relative_sources(v, root) for k, v in value.items()}
    options = found.get("file_options")
    uri = options.get("uri") if isinstance(options, dict) else None
    if isinstance(options, dict) and isinstance(uri, str) and Path(uri).is_absolute():
        for anchor in (root, root.resolve()):
            if Path(uri).is_relative_to(anchor):
                found["file_options"] = options | {"uri": Path(uri).relative_to(anchor).as_posix()}
                break
    return found


def _registry_proto(config: dict[str, Any]) -> Any:
    """The registry as stored, or None when there is none yet.

    Read through Feast's registry store, not ``FeatureStore``: opening a store whose
    registry is missing writes an empty one, and observing must change nothing.
    """
    from feast.errors import S3RegistryBucketForbiddenAccess, S3RegistryBucketNotExist
    from feast.infra.registry.registry import get_registry_store_class_from_scheme
    from feast.repo_config import RegistryConfig

    registry = RegistryConfig(**config["registry"])
    store = get_registry_store_class_from_scheme(registry.path)(registry, config["repo_path"])
    try:
        return store.get_registry_proto()
    except FileNotFoundError:  # what Feast's file and S3 registry stores raise for a registry not yet written
        return None
    except (S3RegistryBucketNotExist, S3RegistryBucketForbiddenAccess) as error:
        raise UserError(
            f"cannot read the Feast registry at {registry.path}: {error}",
            hint="the registry bucket comes from the infra plane; check it exists and this role may read it",
        ) from error


def task_apply(root: str, team: str, config: dict[str, Any], offline: str) -> None:
    """Make the team's registry and online tables match its repo, exactly as ``feast apply`` does; idempotent."""
    _registry_worker()
    from feast.repo_operations import apply_total_with_repo_instance

    for path in (config["registry"]["path"], config["online_store"].get("path")):
        if path and "://" not in path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    store = _store(config)
    with _team_repo(Path(root), team, offline) as contents:
        try:
            # Feast's own apply: plan and diffs for the local SQLite store, the full apply
            # (which creates DynamoDB tables, for one) everywhere else. Data are checked by
            # the plane's DataChecks, not by Feast reading every source here.
            apply_total_with_repo_instance(store, config["project"], store.registry, contents, True)
        except (ValueError, TypeError) as error:
            raise _plan_error(team, error) from error


def task_newest(uris: dict[str, str], root: str) -> dict[str, str | None]:
    """The newest event time in each view's data (its materialization watermark), or None without data."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    newest: dict[str, str | None] = {}
    for view, uri in uris.items():
        path = Path(root) / uri if "://" not in uri else None
        if path is None or not path.exists():
            newest[view] = None
            continue
        column = pq.read_table(path, columns=["event_timestamp"]).column("event_timestamp")
        value = pc.max(column).as_py()
        newest[view] = None if value is None else value.isoformat()
    return newest


def task_materialize(team: str, config: dict[str, Any], views: list[str], start: str, end: str) -> None:
    """Load ``[start, end]`` of the views into the online store; repeating it writes the same rows."""
    _registry_worker()
    store = _store(config)
    store.materialize(datetime.fromisoformat(start), datetime.fromisoformat(end), feature_views=views)


def task_check(path: str, expectations: list[dict[str, Any]], sample_rows: int | None) -> dict[str, Any]:
    """Run one DataCheck on a parquet file: on a sample of ``sample_rows`` when given.

    Row counts are always taken on the whole file; a sample's size says nothing about it.
    """
    if not Path(path).exists():
        return {"missing": True, "failures": []}
    import pandas as pd

    frame = pd.read_parquet(path)
    if sample_rows is None or len(frame) <= sample_rows:
        return {"missing": False, "rows": len(frame), "failures": checks.validate(frame, expectations)}
    whole = [i for i, e in enumerate(expectations) if e["expect"] == "rowCount"]
    failures = [
        f for f in checks.validate(frame.sample(n=sample_rows, random_state=0), expectations) if f["index"] not in whole
    ]
    if whole:
        counted = checks.validate(frame, [expectations[i] for i in whole])
        failures += [dict(f, index=whole[f["index"]]) for f in counted]
    return {"missing": False, "rows": sample_rows, "failures": sorted(failures, key=lambda f: f["index"])}


def task_online(config: dict[str, Any], service: str, entity: dict[str, Any]) -> dict[str, Any]:
    """One entity's features from the online store: ``{"features": {...}, "as_of": newest event time or None}``.

    A feature the store has no fresh value for (never materialized, or older than its
    view's TTL) comes back as None; the caller decides what that means.
    """
    _registry_worker()
    from feast.errors import FeastObjectNotFoundException

    store = _store(config)
    try:
        feature_service = store.get_feature_service(service)
    except FeastObjectNotFoundException as error:
        raise UserError(
            f"no FeatureService '{service}' in Feast project '{config['project']}'",
            hint="name one the team's feature repo defines (spec.smoke.featureService)",
        ) from error
    found = store.get_online_features(features=feature_service, entity_rows=[entity]).to_dict(
        include_event_timestamps=True
    )
    features = {k: v[0] for k, v in found.items() if not k.endswith("__ts") and k not in entity}
    stamps = [v[0] for k, v in found.items() if k.endswith("__ts") and v[0] is not None]
    as_of = max(stamps) if stamps else None
    return {"features": features, "as_of": None if as_of is None else datetime.fromtimestamp(as_of, UTC).isoformat()}
