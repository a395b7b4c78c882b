"""Local serving: latency and throughput on loopback, against bare KServe, and time from apply to a new version serving.

Run with `make bench`; the figures go into the README. One model (a gradient-boosted
classifier over the fraud model's six features, logged to MLflow as the training pipeline
logs it: a pyfunc model from code returning ``predict_proba(...)[:, 1]``) is measured:

- in this process: the estimator's ``predict_proba`` on an array, and MLflow pyfunc's ``predict``
  on a one-row table (the floors);
- over HTTP, side by side in one run, at concurrency 1 and 8 (``--concurrency``): KServe's bare
  ``ModelServer`` with a minimal ``kserve.Model`` calling the estimator on an array (the
  baseline), Shipyard's model server called directly, and the same through the deployment's
  router (what users call). The three take turns in rounds, so a neighbour's load on this
  shared machine falls on all three alike; they run with the same OpenMP/BLAS thread counts
  (set here, inherited by every server) and the same logging (access and trace logs off).

Then, unless ``--serving-only``, the models plane's own path: ``shipyard apply`` after a new
version is registered, until the new version serves all traffic, with and without the
example's canary.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
# The same threads for every server: each inherits this environment (the model server gets
# OMP_NUM_THREADS from it through the models plane too). One thread: the servers, the router
# and this client share two cores, and an OpenMP pool spinning in one starves the others.
THREADS = dict.fromkeys(("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"), "1")
os.environ.update(THREADS)
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
FEATURES = ["txn_count_7d", "amount_mean_7d", "amount", "hour", "merchant_risk", "account_age_days"]
REQUESTS = 2000
ROUNDS = 40  # short turns: a neighbour's burst of load falls on all three paths alike
WARM_UP = 50
BARE = "KServe bare ModelServer"
DIRECT = "Shipyard model server, direct"
ROUTED = "Shipyard router → model server"
TARGETS = {"p50": 1.2, "p99": 1.2, "rps": 0.8}  # against bare KServe: at most, at most, at least

#: The fraud pipeline's model (pipelines/fraud/train/pipeline.py, ``register``): MLflow models from code.
SCORER = """\
import pickle

from mlflow.models import set_model
from mlflow.pyfunc import PythonModel


class FraudProbability(PythonModel):
    def load_context(self, context):
        with open(context.artifacts["estimator"], "rb") as handle:
            self.estimator = pickle.load(handle)

    def predict(self, context, model_input, params=None):
        return self.estimator.predict_proba(model_input)[:, 1]


set_model(FraudProbability())
"""


def quiet_access_logs() -> None:
    """What every KServe server here logs: no line per request (Shipyard's model server does the same)."""
    import logging

    for chatty in ("uvicorn.access", "kserve.trace"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


def bare_server(model_path: str, fd: int) -> None:
    """KServe's ModelServer with the least model there is: the estimator, called directly on an array."""
    import pickle

    import kserve
    import numpy as np
    from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING
    from kserve.protocol.rest.server import RESTServer

    class Bare(kserve.Model):  # type: ignore[misc]
        def load(self) -> bool:
            with open(model_path, "rb") as handle:
                self.estimator = pickle.load(handle)
            self.ready = True
            return True

        def predict(self, payload, headers=None, response_headers=None):  # type: ignore[no-untyped-def]
            rows = np.asarray([[row[f] for f in FEATURES] for row in payload["instances"]], dtype=np.float64)
            return {"predictions": self.estimator.predict_proba(rows)[:, 1].tolist()}

    import warnings

    # Fitted on a table, given an array: scikit-learn would say so on every call.
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    model = Bare("scorer")
    model.load()
    server = kserve.ModelServer(enable_grpc=False, enable_latency_logging=False)
    server.register_model(model)
    quiet_access_logs()
    RESTServer(FASTAPI_APP_IMPORT_STRING, server.dataplane, server.model_repository_extension, 0).run(
        sockets=[socket.socket(fileno=fd)]
    )


def figures(latencies: list[float], seconds: float) -> dict[str, float]:
    latencies = sorted(latencies)
    return {
        "p50": statistics.median(latencies),
        "p99": latencies[max(0, int(0.99 * len(latencies)) - 1)],
        "rps": len(latencies) / seconds,
    }


def in_process(call: Any, count: int) -> dict[str, float]:
    for _ in range(WARM_UP):
        call()
    latencies = []
    start = time.perf_counter()
    for _ in range(count):
        began = time.perf_counter()
        call()
        latencies.append((time.perf_counter() - began) * 1000)
    return figures(latencies, time.perf_counter() - start)


async def over_http(
    urls: dict[str, str], body: bytes, count: int, concurrency: int, rounds: int
) -> dict[str, dict[str, float]]:
    """``count`` POSTs of ``body`` to each URL from ``concurrency`` workers, each on its own kept-alive connection.

    The URLs take turns: ``rounds`` rounds of ``count / rounds`` requests each, the order
    rotating every round, so slow spells of the machine are shared out.
    """
    import aiohttp

    latencies: dict[str, list[float]] = {label: [] for label in urls}
    seconds = dict.fromkeys(urls, 0.0)
    headers = {"Content-Type": "application/json"}
    sessions = {
        label: aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency, force_close=False))
        for label in urls
    }

    async def burst(label: str, requests: int, kept: list[float] | None) -> float:
        session, url = sessions[label], urls[label]
        left = [requests]

        async def worker() -> None:
            while left[0] > 0:
                left[0] -= 1
                began = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as answer:
                    await answer.read()
                    if answer.status != 200:
                        raise RuntimeError(f"{label}: {answer.status} {await answer.text()}")
                if kept is not None:
                    kept.append((time.perf_counter() - began) * 1000)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start

    try:
        for label in urls:  # warm-up: connections opened, lazy imports and first calls done
            await burst(label, max(WARM_UP, 4 * concurrency), None)
        order = list(urls)
        for turn in range(rounds):
            for label in order[turn % len(order) :] + order[: turn % len(order)]:
                seconds[label] += await burst(label, count // rounds, latencies[label])
    finally:
        for session in sessions.values():
            await session.close()
    return {label: figures(latencies[label], seconds[label]) for label in urls}


def table(results: dict[int, dict[str, dict[str, float]]], requests: int) -> str:
    lines = [
        f"{requests} single-row V1 requests per path and concurrency, in {ROUNDS} interleaved rounds, "
        f"{os.cpu_count()} CPUs, {', '.join(f'{k}={v}' for k, v in THREADS.items())}",
        "",
        "| path | concurrency | p50 ms | p99 ms | requests/s | p50 / bare | p99 / bare | requests/s / bare |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    missed = []
    for concurrency, paths in results.items():
        bare = paths[BARE]
        for label, got in paths.items():
            ratios = {key: got[key] / bare[key] for key in TARGETS}
            lines.append(
                f"| {label} | {concurrency} | {got['p50']:.2f} | {got['p99']:.2f} | {got['rps']:.0f} | "
                f"{ratios['p50']:.2f} | {ratios['p99']:.2f} | {ratios['rps']:.2f} |"
            )
            if label == ROUTED:
                over = [
                    f"{key} {ratios[key]:.2f}x (target {'≥' if key == 'rps' else '≤'} {limit}x)"
                    for key, limit in TARGETS.items()
                    if (ratios[key] < limit if key == "rps" else ratios[key] > limit)
                ]
                missed += [f"concurrency {concurrency}: {item}" for item in over]
    lines.append("")
    lines.append("router against bare KServe: " + ("every target met" if not missed else "missed " + "; ".join(missed)))
    return "\n".join(lines)


def main(requests: int, concurrencies: list[int], serving_only: bool) -> None:
    import pickle

    import mlflow
    import mlflow.data
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.ensemble import HistGradientBoostingClassifier

    from conftest import example_repo
    from shipyard.cli import main as shipyard
    from shipyard.planes.models.serving.local import deployments
    from shipyard.sdk import processes, provenance
    from shipyard.sdk.planes import local_state_dir

    work = Path(tempfile.mkdtemp(prefix="shipyard-bench-serving-"))
    root = example_repo(work)
    # The local target's own registry file (no MLflow server runs here): the models plane finds it there.
    (local_state_dir(root) / "mlflow").mkdir(parents=True)
    uri = f"sqlite:///{local_state_dir(root) / 'mlflow' / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri  # this benchmark's own MLflow client
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.normal(size=(5000, len(FEATURES))), columns=FEATURES)
    labels = (frame["amount"] + frame["merchant_risk"] > 1.5).astype(int)
    estimator = HistGradientBoostingClassifier(max_iter=200, max_depth=6).fit(frame, labels)
    with open(work / "estimator.pkl", "wb") as handle:
        pickle.dump(estimator, handle)
    (work / "fraud_probability.py").write_text(SCORER, encoding="utf-8")

    # With a SQLite store, artifacts default to ./mlruns in the working directory; keep them in the temp dir.
    if mlflow.get_experiment_by_name("fraud") is None:
        mlflow.create_experiment("fraud", artifact_location=(work / "artifacts").as_uri())

    def register() -> int:
        mlflow.set_experiment("fraud")
        example = frame.head(1)
        with mlflow.start_run():
            mlflow.log_metrics({"roc_auc": 0.9, "pr_auc": 0.5, "log_loss": 0.2})
            mlflow.set_tag("shipyard.data_checks", "fraud/transactions,fraud/user-stats")
            # What a pipeline run Shipyard applied would carry: locally, only such versions are served.
            mlflow.set_tags(dict.fromkeys(provenance.REQUIRED, "bench-serving"))
            mlflow.log_input(mlflow.data.from_pandas(frame.head(10), name="fraud-holdout"), context="evaluation")
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(work / "fraud_probability.py"),
                artifacts={"estimator": str(work / "estimator.pkl")},
                registered_model_name="fraud-scorer",
                signature=infer_signature(example, estimator.predict_proba(example)[:, 1]),
                pip_requirements=["scikit-learn"],
            )
        return int(info.registered_model_version)

    row = frame.head(1)
    import json

    body = json.dumps({"instances": row.to_dict("records")}).encode()
    floors: dict[str, dict[str, float]] = {}
    results: dict[int, dict[str, dict[str, float]]] = {}
    timings: dict[str, float] = {}
    try:
        register()
        started = time.perf_counter()
        assert shipyard(["--repo", str(root), "apply", "--plane", "models"]) == 0
        timings["first version (router + model server start)"] = time.perf_counter() - started
        [served] = deployments(local_state_dir(root))
        running = served.serving()
        assert running is not None
        assert served.url is not None

        pyfunc = mlflow.pyfunc.load_model("models:/fraud-scorer/1")
        array = row.to_numpy()
        import warnings

        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        floors["estimator predict_proba on an array, in process"] = in_process(
            lambda: estimator.predict_proba(array), requests
        )
        floors["MLflow pyfunc predict on a table, in process"] = in_process(lambda: pyfunc.predict(row), requests)

        bare = processes.spawn(
            "bench_serving",
            ["--bare", str(work / "estimator.pkl")],
            processes.listen(),
            state_dir=work,
            name="kserve bare model server",
            health="/v2/models/scorer/ready",
            env={"PYTHONPATH": str(Path(__file__).parent)},
        )
        try:
            processes.wait_ready(bare)
            urls = {
                BARE: f"{bare.url}/v1/models/scorer:predict",
                DIRECT: f"{running.process.url}/v1/models/fraud-scorer:predict",
                ROUTED: f"{served.url}/v1/models/fraud-scorer:predict",
            }
            for concurrency in concurrencies:
                results[concurrency] = asyncio.run(over_http(urls, body, requests, concurrency, ROUNDS))
        finally:
            processes.stop(bare)

        if not serving_only:
            register()
            started = time.perf_counter()
            assert shipyard(["--repo", str(root), "apply", "--plane", "models"]) == 0
            canary = time.perf_counter() - started
            spec = root / "models/fraud/fraud-scorer.yaml"
            text = spec.read_text()
            spec.write_text(text[: text.index("  canary:")] + text[text.index("  gates:") :])
            register()
            started = time.perf_counter()
            assert shipyard(["--repo", str(root), "apply", "--plane", "models"]) == 0
            timings["new version, rolling replacement"] = time.perf_counter() - started
            timings["new version, 10% canary + analysis (1,000 probes)"] = canary
    finally:
        for deployment in deployments(local_state_dir(root)):
            deployment.stop()
        shutil.rmtree(work, ignore_errors=True)

    print("\n| in process | p50 ms | p99 ms | calls/s |")
    print("|---|--:|--:|--:|")
    for label, got in floors.items():
        print(f"| {label} | {got['p50']:.2f} | {got['p99']:.2f} | {got['rps']:.0f} |")
    print()
    print(table(results, requests))
    if timings:
        print("\n| apply → version serving | seconds |")
        print("|---|--:|")
        for label, seconds in timings.items():
            print(f"| {label} | {seconds:.1f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=REQUESTS, help="requests per path and concurrency")
    parser.add_argument(
        "--concurrency", default="1,8", help="comma-separated numbers of requests in flight at once (default 1,8)"
    )
    parser.add_argument("--serving-only", action="store_true", help="skip the apply → version serving timings")
    parser.add_argument("--bare", help=argparse.SUPPRESS)  # run KServe's bare model server on this pickled estimator
    parser.add_argument("--fd", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        bare_server(args.bare, args.fd)
    else:
        main(args.requests, [int(n) for n in args.concurrency.split(",")], args.serving_only)
