"""Probe requests for a model: its logged input example (else zeros shaped by its signature), as V1 or V2."""

from __future__ import annotations

import os
from typing import Any

from shipyard.sdk.errors import UserError

#: pandas dtype kind → KServe V2 tensor datatype
V2_TYPES = {"f": "FP64", "i": "INT64", "u": "UINT64", "b": "BOOL", "O": "BYTES"}


def sample_request(tracking_uri: str, storage_uri: str, protocol: str, name: str) -> tuple[str, dict[str, Any]]:
    """The path and JSON body of one inference request built from what the model version logged."""
    return inference_request(logged_example(tracking_uri, storage_uri, name), protocol, name)


def logged_example(tracking_uri: str, storage_uri: str, name: str) -> Any:
    """The version's logged input example as a DataFrame (else one row of zeros shaped by its signature)."""
    import mlflow.artifacts
    import pandas as pd
    from mlflow.models import Model

    def fetch(file: str) -> str:
        uri = f"{storage_uri.rstrip('/')}/{file}"
        return str(mlflow.artifacts.download_artifacts(artifact_uri=uri, tracking_uri=tracking_uri))

    meta = Model.load(fetch("MLmodel"))
    example = None
    if meta.saved_input_example_info:
        example = meta.load_input_example(os.path.dirname(fetch(meta.saved_input_example_info["artifact_path"])))
    if example is None and meta.signature is not None and meta.signature.inputs.has_input_names():
        example = pd.DataFrame([dict.fromkeys(meta.signature.inputs.input_names(), 0)])
    if not isinstance(example, pd.DataFrame):
        raise UserError(
            f"model {name} logged neither a tabular input example nor a signature with column names",
            hint="log the model with input_example=... so the canary analysis can send it requests",
        )
    return example


def inference_request(example: Any, protocol: str, name: str) -> tuple[str, dict[str, Any]]:
    """The path and JSON body that ask model ``name`` to score the rows of a DataFrame."""
    if protocol == "v1":
        return f"/v1/models/{name}:predict", {"instances": example.to_dict("records")}
    inputs = [
        {
            "name": str(column),
            "shape": [len(example)],
            "datatype": V2_TYPES.get(example[column].dtype.kind, "BYTES"),
            "data": example[column].tolist(),
        }
        for column in example.columns
    ]
    return f"/v2/models/{name}/infer", {"inputs": inputs}


def send(url: str, path: str, body: dict[str, Any], count: int) -> int:
    """POST ``body`` ``count`` times over one kept-alive connection; returns how many failed (5xx or no answer)."""
    import httpx

    failed = 0
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(count):
            try:
                failed += client.post(path, json=body).status_code >= 500
            except httpx.HTTPError:
                failed += 1
    return failed
