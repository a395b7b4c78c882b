"""The {{ cookiecutter.display_name }} team's training pipeline: data gate → training set from Feast → train and evaluate → MLflow.

Parameters named ``feature_store``, ``offline_uri``, ``data_checks``, ``mlflow_tracking_uri``,
``mlflow_artifact_root``, ``experiment`` and ``registered_model`` are filled in by the
platform for the target being applied; the others come from ``pipeline.yaml``.

Components run in the platform runtime image, which carries Shipyard and the whole
stack, so nothing is installed when a step starts (``install_kfp_package=False``). Which
image is the platform's setting per environment (``platform/runtime/images.yaml``):
``runtime_image()`` answers the one of the environment being compiled.
"""

from kfp import dsl

from shipyard.sdk.runtime import runtime_image


@dsl.component(base_image=runtime_image(), install_kfp_package=False)
def check_data(data_checks: str) -> str:
    """The Great Expectations gate: every check on all of its data, before anything trains on it.

    Returns the names of the checks passed; the model version records them for promotion gates.
    """
    import json

    import pandas as pd

    from shipyard.planes.features.checks import describe, validate

    problems = []
    for check in json.loads(data_checks):
        failures = validate(pd.read_parquet(check["path"]), check["expectations"])
        problems += [f"{check['name']}: {describe(f)}" for f in failures]
    if problems:
        raise RuntimeError("data checks failed:\n" + "\n".join(problems))
    return ",".join(check["name"] for check in json.loads(data_checks))


@dsl.component(base_image=runtime_image(), install_kfp_package=False)
def training_set(feature_store: str, offline_uri: str, gate: str, examples: dsl.Output[dsl.Dataset]):
    """Label each transaction and join the user's features as they were at that moment (point in time)."""
    import json

    import pandas as pd
    from feast import FeatureStore, RepoConfig

    config = json.loads(feature_store)
    store = FeatureStore(config=RepoConfig(**config), repo_path=config["repo_path"])
    events = pd.read_parquet(f"{offline_uri}/transactions.parquet")
    entity_df = events[["user_id", "event_timestamp", "amount", "is_foreign", "{{ cookiecutter.__label }}"]]
    frame = store.get_historical_features(
        entity_df=entity_df, features=store.get_feature_service("{{ cookiecutter.__id }}_scorer")
    ).to_df()
    frame["hour"] = frame["event_timestamp"].dt.hour
    frame.sort_values(["event_timestamp", "user_id"], kind="stable").to_parquet(examples.path, index=False)


@dsl.component(base_image=runtime_image(), install_kfp_package=False)
def train(
    examples: dsl.Input[dsl.Dataset],
    max_iter: int,
    learning_rate: float,
    max_depth: int,
    test_fraction: float,
    model: dsl.Output[dsl.Model],
    metrics: dsl.Output[dsl.Metrics],
    holdout: dsl.Output[dsl.Dataset],
):
    """Gradient-boosted trees; XGBoost on a GPU when one is visible, scikit-learn on the CPU otherwise."""
    import json
    import pickle
    import shutil
    import time

    import pandas as pd
    {%- if cookiecutter.model_kind == "tabular-classifier" %}
    from sklearn.metrics import average_precision_score, log_loss, roc_auc_score
    {%- else %}
    from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error
    {%- endif %}

    features = ["amount", "is_foreign", "hour", "txn_count_7d", "amount_mean_7d", "amount_max_7d", "foreign_ratio_7d"]
    frame = pd.read_parquet(examples.path).dropna(subset=features)
    cut = int(len(frame) * (1 - test_fraction))  # the newest events are held out, as in production
    train_set, test_set = frame.iloc[:cut], frame.iloc[cut:]
    test_set[[*features, "{{ cookiecutter.__label }}"]].to_parquet(holdout.path, index=False)

    device = "cpu"
    try:
        import xgboost

        if shutil.which("nvidia-smi"):
            device = "cuda"
    except ImportError:
        xgboost = None
    started = time.perf_counter()
    if device == "cuda":
        estimator = xgboost.XGB{{ cookiecutter.__estimator }}(
            n_estimators=max_iter, learning_rate=learning_rate, max_depth=max_depth, device="cuda"
        )
    else:
        from sklearn.ensemble import HistGradientBoosting{{ cookiecutter.__estimator }}

        estimator = HistGradientBoosting{{ cookiecutter.__estimator }}(
            max_iter=max_iter, learning_rate=learning_rate, max_depth=max_depth, random_state=0
        )
    estimator.fit(train_set[features], train_set["{{ cookiecutter.__label }}"])
    seconds = time.perf_counter() - started
    truth = test_set["{{ cookiecutter.__label }}"]
    {%- if cookiecutter.model_kind == "tabular-classifier" %}
    scores = estimator.predict_proba(test_set[features])[:, 1]
    results = {
        "roc_auc": roc_auc_score(truth, scores),
        "pr_auc": average_precision_score(truth, scores),
        "log_loss": log_loss(truth, scores),
    {%- else %}
    predicted = estimator.predict(test_set[features])
    results = {
        "r2": r2_score(truth, predicted),
        "mae": mean_absolute_error(truth, predicted),
        "rmse": root_mean_squared_error(truth, predicted),
    {%- endif %}
        "train_rows": float(len(train_set)),
        "test_rows": float(len(test_set)),
        "train_seconds": seconds,
    }
    for name, value in results.items():
        metrics.log_metric(name, float(value))
    metrics.metadata["device"] = device
    with open(model.path, "wb") as handle:
        pickle.dump({"estimator": estimator, "features": features, "device": device}, handle)
    model.metadata["features"] = json.dumps(features)


@dsl.component(base_image=runtime_image(), install_kfp_package=False)
def register(
    model: dsl.Input[dsl.Model],
    metrics: dsl.Input[dsl.Metrics],
    holdout: dsl.Input[dsl.Dataset],
    checks_passed: str,
    mlflow_tracking_uri: str,
    mlflow_artifact_root: str,
    experiment: str,
    registered_model: str,
    max_iter: int,
    learning_rate: float,
    max_depth: int,
) -> str:
    """Log the run (parameters, metrics, model) to MLflow and register it as a new model version.
    {%- if cookiecutter.model_kind == "tabular-classifier" %}

    The version serves the probability that a transaction is {{ cookiecutter.__id }}, one number per row: an MLflow
    pyfunc model (models from code) around the classifier's ``predict_proba``. Logging the
    classifier itself would serve its ``predict``, a 0/1 class at a 0.5 threshold that flags
    almost nothing at a 5 % base rate.
    {%- else %}

    The version serves the predicted {{ cookiecutter.__label }}, one number per row: an MLflow pyfunc model
    (models from code) around the regressor's ``predict``.
    {%- endif %}
    """
    import os
    import pickle
    import tempfile
    from pathlib import Path

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow
    import mlflow.data
    import mlflow.pyfunc
    import sklearn
    from mlflow.models import infer_signature

    mlflow.set_tracking_uri(mlflow_tracking_uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(experiment, artifact_location=mlflow_artifact_root or None)
    mlflow.set_experiment(experiment)
    with open(model.path, "rb") as handle:
        trained = pickle.load(handle)
    estimator, features = trained["estimator"], trained["features"]
    import pandas as pd

    example = pd.DataFrame([[0.0] * len(features)], columns=features)
    folder = Path(tempfile.mkdtemp())
    with open(folder / "estimator.pkl", "wb") as handle:
        pickle.dump(estimator, handle)
    # The model's code, stored with the version (MLflow models from code): nothing imports this pipeline to serve.
    scorer = folder / "{{ cookiecutter.__id }}_{% if cookiecutter.model_kind == 'tabular-classifier' %}probability{% else %}score{% endif %}.py"
    scorer.write_text(
        "import pickle\n\n"
        "from mlflow.models import set_model\n"
        "from mlflow.pyfunc import PythonModel\n\n\n"
        "class {{ cookiecutter.__pyfunc }}(PythonModel):\n"
        "    def load_context(self, context):\n"
        "        with open(context.artifacts['estimator'], 'rb') as handle:\n"
        "            self.estimator = pickle.load(handle)\n\n"
        "    def predict(self, context, model_input, params=None):\n"
        "        return self.estimator.{{ cookiecutter.__output.format("model_input") }}\n\n\n"
        "set_model({{ cookiecutter.__pyfunc }}())\n",
        encoding="utf-8",
    )
    requirements = [f"scikit-learn=={sklearn.__version__}", f"pandas=={pd.__version__}"]
    if trained["device"] == "cuda":
        import xgboost

        requirements.append(f"xgboost=={xgboost.__version__}")
    with mlflow.start_run() as run:
        mlflow.log_params({"max_iter": max_iter, "learning_rate": learning_rate, "max_depth": max_depth})
        mlflow.log_metrics({k: float(v) for k, v in metrics.metadata.items() if isinstance(v, int | float)})
        mlflow.set_tags(
            {"device": trained["device"], "features": ",".join(features), "shipyard.data_checks": checks_passed}
        )
        evaluation = mlflow.data.from_pandas(
            pd.read_parquet(holdout.path), name="{{ cookiecutter.team }}-holdout", targets="{{ cookiecutter.__label }}"
        )
        mlflow.log_input(evaluation, context="evaluation")
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(scorer),
            artifacts={"estimator": str(folder / "estimator.pkl")},
            registered_model_name=registered_model,
            signature=infer_signature(example, estimator.{{ cookiecutter.__output.format("example") }}),
            # explicit requirements: inference of them costs seconds (STACK-NOTES)
            pip_requirements=requirements,
        )
    return f"{registered_model} version {info.registered_model_version} (run {run.info.run_id})"


def sized(task: dsl.PipelineTask, *, cpu: str, memory: str) -> dsl.PipelineTask:
    """Requests equal to limits: the task is scheduled for what it may use, and never starves its node."""
    return task.set_cpu_request(cpu).set_cpu_limit(cpu).set_memory_request(memory).set_memory_limit(memory)


@dsl.pipeline(name="{{ cookiecutter.team }}-train", description="Train the {{ cookiecutter.display_name }} scorer from the user_stats features.")
def {{ cookiecutter.__id }}_train(
    feature_store: str,
    offline_uri: str,
    data_checks: str,
    mlflow_tracking_uri: str,
    mlflow_artifact_root: str = "",
    experiment: str = "{{ cookiecutter.team }}",
    registered_model: str = "{{ cookiecutter.team }}-scorer",
    max_iter: int = 200,
    learning_rate: float = 0.1,
    max_depth: int = 6,
    test_fraction: float = 0.2,
):
    gate = sized(check_data(data_checks=data_checks), cpu="1", memory="2Gi")
    examples = sized(
        training_set(feature_store=feature_store, offline_uri=offline_uri, gate=gate.output), cpu="2", memory="8Gi"
    )
    trained = train(
        examples=examples.outputs["examples"],
        max_iter=max_iter,
        learning_rate=learning_rate,
        max_depth=max_depth,
        test_fraction=test_fraction,
    )
    sized(trained, cpu="4", memory="16Gi")
    sized(
        register(
            model=trained.outputs["model"],
            metrics=trained.outputs["metrics"],
            holdout=trained.outputs["holdout"],
            checks_passed=gate.output,
            mlflow_tracking_uri=mlflow_tracking_uri,
            mlflow_artifact_root=mlflow_artifact_root,
            experiment=experiment,
            registered_model=registered_model,
            max_iter=max_iter,
            learning_rate=learning_rate,
            max_depth=max_depth,
        ),
        cpu="1",
        memory="2Gi",
    )
