"""One model version served by KServe's ``ModelServer`` on a socket the parent bound to 127.0.0.1.

Run as ``python -m shipyard.planes.models.serving.server --name N --model-uri URI --fd FD``.
The parent binds the loopback socket and hands it over (``--fd``), so the port is known
before the server starts and nothing can take it in between. KServe's REST server
would bind 0.0.0.0 itself; given a socket, uvicorn serves on that one only. gRPC stays off.

Every runtime is served locally through MLflow's pyfunc flavour: the registry holds
MLflow models, and pyfunc loads sklearn, xgboost and custom ones alike.
"""

from __future__ import annotations

import argparse
import logging
import socket
import uuid
import warnings
from typing import Any

# Telemetry is off in this process's environment (sdk.processes.TELEMETRY_OFF), given by spawn.
import kserve
import numpy as np
import pandas as pd
from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
from kserve.protocol.rest.server import RESTServer


class RegisteredModel(kserve.Model):  # type: ignore[misc]  # kserve ships no type hints
    """An MLflow model version answering KServe V1 (``instances``) and V2 (tensors) requests."""

    def __init__(self, name: str, model_uri: str) -> None:
        super().__init__(name)
        self.model_uri = model_uri
        self.columns: list[str] | None = None
        self.floats: dict[str, Any] = {}

    def load(self) -> bool:
        import mlflow.pyfunc

        self.model = mlflow.pyfunc.load_model(self.model_uri)
        schema = self.model.metadata.get_input_schema()
        self.columns = schema.input_names() if schema is not None and schema.has_input_names() else None
        # Floating-point columns by the signature: JSON says 14 where the model wants 14.0.
        self.floats = {
            name: kind.to_numpy()
            for name, kind in zip(self.columns or [], schema.input_types() if self.columns else [], strict=True)
            if hasattr(kind, "to_numpy") and kind.to_numpy().kind == "f"
        }
        self.ready = True
        return True

    def predict(self, payload: Any, headers: Any = None, response_headers: Any = None) -> Any:
        if isinstance(payload, InferRequest):
            result = self._predict(payload.as_dataframe())
            output = InferOutput("predictions", list(result.shape), "FP64")
            output.set_data_from_numpy(result, binary_data=False)
            # A V2 request may leave out its id; the response must still carry one.
            return InferResponse(payload.id or str(uuid.uuid4()), self.name, [output])
        instances = payload.get("instances") if isinstance(payload, dict) else None
        if not isinstance(instances, list) or not instances:
            raise InvalidInput('a V1 request is {"instances": [...]} with at least one instance')
        try:  # rows as objects ({column: value}) or as lists in the signature's column order
            named = isinstance(instances[0], dict)
            frame = pd.DataFrame(instances) if named else pd.DataFrame(instances, columns=self.columns)
        except ValueError as error:
            raise InvalidInput(f"the instances do not match the model's columns {self.columns}: {error}") from error
        return {"predictions": self._predict(frame).tolist()}

    def _predict(self, frame: pd.DataFrame) -> np.ndarray:
        from mlflow.exceptions import MlflowException

        # Integers where the signature has floats are widened, as MLflow's own scoring server does
        # when it parses JSON; its schema check refuses int64 → float64 otherwise.
        widened = {c: t for c, t in self.floats.items() if c in frame and frame[c].dtype.kind in "iub"}
        frame = frame.astype(widened) if widened else frame

        try:
            return np.asarray(self.model.predict(frame), dtype=np.float64)
        except MlflowException as error:  # the signature check: the caller's input is wrong (400)
            raise InvalidInput(f"the model cannot score this input: {error.message}") from error
        # Anything else the model raises is the server's fault: KServe answers 500.


def serve(name: str, model_uri: str, listening: socket.socket) -> None:
    # KServe 0.21's app still uses ORJSONResponse, which FastAPI deprecates on every response.
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")
    model = RegisteredModel(name, model_uri)
    model.load()
    server = kserve.ModelServer(http_port=listening.getsockname()[1], enable_grpc=False, enable_latency_logging=False)
    server.register_model(model)
    # A log line per request (access log, timings) would grow the log without bound; set after
    # ModelServer, which configures KServe's logging.
    for chatty in ("uvicorn.access", "kserve.trace"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    rest = RESTServer(FASTAPI_APP_IMPORT_STRING, server.dataplane, server.model_repository_extension, 0)
    rest.run(sockets=[listening])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="the model name in request paths (/v1/models/NAME:predict)")
    parser.add_argument("--model-uri", required=True, help="where the MLflow model's files are")
    parser.add_argument("--fd", type=int, required=True, help="a listening socket bound to 127.0.0.1")
    args, _ = parser.parse_known_args()
    serve(args.name, args.model_uri, socket.socket(fileno=args.fd))


if __name__ == "__main__":
    main()
