"""Local serving: latency and throughput on loopback, against the floor, and time from apply to a new version serving.

Run with `make bench`; the figures go into the README. One model (a gradient-boosted
classifier over the fraud model's six features, logged to MLflow like the training
pipeline logs it) is measured four ways, each over the same single-row request:

1. the model's own ``predict`` in this process (the physical floor);
2. KServe's bare ``ModelServer`` with a minimal ``kserve.Model`` calling the estimator directly;
3. Shipyard's model server (the same ModelServer, through MLflow pyfunc) called directly;
4. the same through the deployment's router (what users call).

Then the models plane's own path: ``shipyard apply`` after a new version is registered,
until the new version serves all traffic, with and without the example's canary.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
FEATURES = ["txn_count_7d", "amount_mean_7d", "amount", "hour", "merchant_risk", "account_age_days"]
REQUESTS = 2000


def bare_server(model_path: str, fd: int) -> None:
    """KServe's ModelServer with the least model there is: the estimator, called directly."""
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
            return {"predictions": self.estimator.predict(rows).tolist()}

    model = Bare("scorer")
    model.load()
    server = kserve.ModelServer(enable_grpc=False, enable_latency_logging=False)
    server.register_model(model)
    import logging

    for chatty in ("uvicorn.access", "kserve.trace"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    RESTServer(FASTAPI_APP_IMPORT_STRING, server.dataplane, server.model_repository_extension, 0).run(
        sockets=[socket.socket(fileno=fd)]
    )


def measure(call: Callable[[], object], count: int = REQUESTS) -> dict[str, float]:
    for _ in range(50):  # warm-up
        call()
    latencies = []
    start = time.perf_counter()
    for _ in range(count):
        began = time.perf_counter()
        call()
        latencies.append((time.perf_counter() - began) * 1000)
    wall = time.perf_counter() - start
    latencies.sort()
    return {
        "p50": statistics.median(latencies),
        "p99": latencies[int(0.99 * len(latencies)) - 1],
        "rps": count / wall,
    }


def main() -> None:
    import httpx
    import mlflow
    import mlflow.data
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier

    from conftest import example_repo
    from shipyard.cli import main as shipyard
    from shipyard.planes.models.serving.local import deployments
    from shipyard.sdk import processes
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
        import pickle

        pickle.dump(estimator, handle)

    # With a SQLite store, artifacts default to ./mlruns in the working directory; keep them in the temp dir.
    if mlflow.get_experiment_by_name("fraud") is None:
        mlflow.create_experiment("fraud", artifact_location=(work / "artifacts").as_uri())

    def register() -> int:
        mlflow.set_experiment("fraud")
        with mlflow.start_run():
            mlflow.log_metrics({"roc_auc": 0.9, "log_loss": 0.2})
            mlflow.set_tag("shipyard.data_checks", "fraud/transactions,fraud/user-stats")
            mlflow.log_input(mlflow.data.from_pandas(frame.head(10), name="fraud-holdout"), context="evaluation")
            info = mlflow.sklearn.log_model(
                estimator,
                name="model",
                registered_model_name="fraud-scorer",
                input_example=frame.head(1),
                serialization_format="cloudpickle",
                pip_requirements=["scikit-learn"],
            )
        return int(info.registered_model_version)

    row = frame.head(1)
    body = {"instances": row.to_dict("records")}
    results: dict[str, dict[str, float]] = {}
    try:
        register()
        started = time.perf_counter()
        assert shipyard(["--repo", str(root), "apply", "--plane", "models"]) == 0
        first_apply = time.perf_counter() - started
        [served] = deployments(local_state_dir(root))
        running = served.serving()
        assert running is not None
        assert served.url is not None

        pyfunc = mlflow.pyfunc.load_model("models:/fraud-scorer/1")
        results["model.predict in process (floor)"] = measure(lambda: pyfunc.predict(row))
        results["sklearn predict in process"] = measure(lambda: estimator.predict(row.to_numpy()))

        bare = processes.spawn(
            "bench_serving",
            ["--bare", str(work / "estimator.pkl")],
            processes.listen(),
            state_dir=work,
            name="kserve bare model server",
            health="/v2/models/scorer/ready",
            env={"PYTHONPATH": str(Path(__file__).parent)},
        )
        processes.wait_ready(bare)
        for label, base, path in (
            ("KServe bare ModelServer", bare.url, "/v1/models/scorer:predict"),
            ("Shipyard model server, direct", running.process.url, "/v1/models/fraud-scorer:predict"),
            ("Shipyard router → model server", served.url, "/v1/models/fraud-scorer:predict"),
        ):
            with httpx.Client(base_url=base) as client:
                results[label] = measure(lambda c=client, p=path: c.post(p, json=body).raise_for_status())
        processes.stop(bare)

        register()
        started = time.perf_counter()
        assert shipyard(["--repo", str(root), "apply", "--plane", "models"]) == 0
        with_canary = time.perf_counter() - started
        spec = root / "models/fraud/fraud-scorer.yaml"
        text = spec.read_text()
        spec.write_text(text[: text.index("  canary:")] + text[text.index("  gates:") :])
        register()
        started = time.perf_counter()
        assert shipyard(["--repo", str(root), "apply", "--plane", "models"]) == 0
        rolling = time.perf_counter() - started
    finally:
        for deployment in deployments(local_state_dir(root)):
            deployment.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nLocal serving, {REQUESTS} sequential single-row requests over one kept-alive loopback connection")
    print(f"({os.cpu_count()} CPUs)\n")
    print("| path | p50 ms | p99 ms | requests/s |")
    print("|---|---:|---:|---:|")
    for label, figures in results.items():
        print(f"| {label} | {figures['p50']:.2f} | {figures['p99']:.2f} | {figures['rps']:.0f} |")
    print("\n| apply → version serving | seconds |")
    print("|---|---:|")
    print(f"| first version (router + model server start) | {first_apply:.1f} |")
    print(f"| new version, rolling replacement | {rolling:.1f} |")
    print(f"| new version, 10% canary + analysis (1,000 probes) | {with_canary:.1f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--bare", help="run KServe's bare model server on this pickled estimator")
    parser.add_argument("--fd", type=int)
    args = parser.parse_args()
    if args.bare:
        bare_server(args.bare, args.fd)
    else:
        main()
