"""One model version served by KServe's ``ModelServer`` on a socket the parent bound to 127.0.0.1.

Run as ``python -m shipyard.planes.models.serving.server --name N --model-uri URI --fd FD``.
The parent binds the loopback socket and hands it over (``--fd``), so the port is known
before the server starts and nothing can take it in between. KServe's REST server
would bind 0.0.0.0 itself; given a socket, uvicorn serves on that one only. gRPC stays off.

Every runtime is served locally through MLflow's pyfunc flavour: the registry holds
MLflow models, and pyfunc loads sklearn, xgboost and custom ones alike.

A request is checked against the signature once (``inputs``), and the checked batch goes
straight to the flavour's own predict (``FastPath``) where that is the same as pyfunc's
``predict``: as one numeric array where the model gives the same answers for it as for the
table, else as the table. pyfunc's ``predict`` checks the signature again on every call and
a table costs a scikit-learn estimator more than an array: for a single row the two doubled
the server's latency against a bare KServe server (README "Local serving"). Models the fast
path cannot vouch for (a signature with strings or optional columns, params, type hints) are
scored by pyfunc's ``predict``.
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import sys
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Telemetry is off in this process's environment (sdk.processes.TELEMETRY_OFF), given by spawn.
import kserve
import numpy as np
from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
from kserve.protocol.rest.server import RESTServer

from shipyard.planes.models.serving.inputs import (
    NUMERIC,
    BadInput,
    Batch,
    Column,
    Tensor,
    columns_of,
    v1_batch,
    v2_batch,
)


class RegisteredModel(kserve.Model):  # type: ignore[misc]  # kserve ships no type hints
    """An MLflow model version answering KServe V1 (``instances``) and V2 (tensors) requests.

    A request is checked against the model's signature (``inputs``) before the model sees it:
    what the signature does not describe is a 400 naming the field, not a guess.
    """

    def __init__(self, name: str, model_uri: str) -> None:
        super().__init__(name)
        self.model_uri = model_uri
        self.columns: list[Column] | None = None
        self.fast: FastPath | None = None

    def load(self) -> bool:
        import mlflow.pyfunc

        self.model = mlflow.pyfunc.load_model(self.model_uri)
        self.columns = columns_of(self.model.metadata.get_input_schema())
        self.fast = FastPath.of(self.model, self.columns)
        # Said once in the server's log: which way requests are scored is the first thing to know of its latency.
        way = "pyfunc predict" if self.fast is None else "the flavour's predict on " + self.fast.given
        print(f"model {self.name}: requests are scored through {way}", file=sys.stderr, flush=True)
        self.ready = True
        return True

    def predict(self, payload: Any, headers: Any = None, response_headers: Any = None) -> Any:
        try:
            if isinstance(payload, InferRequest):
                tensors = [Tensor(i.name, i.shape, i.datatype, i.data) for i in payload.inputs]
                result = self._predict(v2_batch(self.columns, tensors))
                output = InferOutput("predictions", list(result.shape), "FP64")
                output.set_data_from_numpy(result, binary_data=False)
                # A V2 request may leave out its id; the response must still carry one.
                return InferResponse(payload.id or str(uuid.uuid4()), self.name, [output])
            if not isinstance(payload, dict):  # JsonBodies lets only JSON through; a JSON array, say
                raise BadInput(f'a V1 request is {{"instances": [...]}}; this one is a JSON {type(payload).__name__}')
            return {"predictions": self._predict(v1_batch(self.columns, payload.get("instances"))).tolist()}
        except BadInput as error:
            raise InvalidInput(str(error)) from error

    def _predict(self, batch: Batch) -> np.ndarray:
        from mlflow.exceptions import MlflowException

        try:
            if self.fast is None:
                return np.asarray(self.model.predict(batch.frame()), dtype=np.float64)
            data = batch.array() if self.fast.arrays else None
            return np.asarray(self.fast.predict(batch.frame() if data is None else data), dtype=np.float64)
        except MlflowException as error:  # the signature check: the caller's input is wrong (400)
            raise InvalidInput(f"the model cannot score this input: {error.message}") from error
        # Anything else the model raises is the server's fault: KServe answers 500.


#: Signature types whose checked table is already what pyfunc's schema enforcement would hand the model.
FAST_TYPES = (*NUMERIC, "boolean")
#: What scikit-learn says on every call when an estimator fitted on a table is given an array.
NO_NAMES = "X does not have valid feature names"
PROBE_ROWS = 3
#: How close the fast path's answers must be to pyfunc's on the probe (relative): the same but for rounding.
SAME_RTOL = 1e-9


@dataclass(frozen=True)
class FastPath:
    """The flavour's own predict, given the batch ``inputs`` checked, skipping pyfunc's second check.

    ``predict`` is what ``PyFuncModel.predict`` itself ends in (``_predict_fn``: the sklearn
    wrapper's predict, or the one calling a ``PythonModel``'s, for models from code too), so the
    model runs as logged. ``arrays``: it takes the rows as one array, which scikit-learn
    converts for much less than a table.
    """

    predict: Callable[[Any], Any]
    arrays: bool

    @property
    def given(self) -> str:
        return "arrays" if self.arrays else "tables"

    @staticmethod
    def of(model: Any, columns: list[Column] | None) -> FastPath | None:
        """The fast path for ``model``, or None where only pyfunc's ``predict`` scores it as logged.

        It is taken only where pyfunc's schema enforcement can change nothing the checks let
        through: named columns, each a required number or boolean (the checked table has the
        signature's dtypes, which enforcement would keep), no params schema (its defaults would
        be filled in), no signature from type hints (their conversion would run). Then one probe
        decides: rows scored by pyfunc's ``predict``, by ``predict`` on the table and on the array
        must give the same answers (but for rounding in the last bits). A model whose code reads
        columns by name fails the array probe and is given the table.
        """
        metadata = model.metadata
        if columns is None or any(c.type not in FAST_TYPES or not c.required for c in columns):
            return None
        if metadata.get_params_schema() is not None:
            return None
        hinted = (getattr(metadata, n, None) for n in ("_is_signature_from_type_hint", "_is_type_hint_from_example"))
        if any(check is None or check() for check in hinted):  # an MLflow without them: assume hints
            return None
        predict = getattr(model, "_predict_fn", None)  # what PyFuncModel.predict calls after its checks
        if predict is None:
            return None
        probe = _probe_batch(columns)
        try:
            wanted = np.asarray(model.predict(probe.frame()), dtype=np.float64)
        except Exception:  # a model that cannot score the probe: pyfunc's way, as before
            return None
        if not _same(wanted, lambda: predict(probe.frame())):
            return None
        array, fitted = probe.array(), _names_of(model)
        in_order = fitted is None or fitted == [c.name for c in columns]
        if array is None or not in_order or not _same(wanted, lambda: predict(array)):
            return FastPath(predict, arrays=False)
        # Checked above: the columns are in the order the estimator was fitted on, and it answers
        # the same; scikit-learn would still warn on every call that the array has no names.
        warnings.filterwarnings("ignore", message=NO_NAMES, category=UserWarning)
        return FastPath(predict, arrays=True)


def _probe_batch(columns: list[Column]) -> Batch:
    """A few rows of distinct values (each column its own, each row its own): swapped columns would show."""
    values: dict[str, list[Any]] = {}
    for at, column in enumerate(columns):
        if column.type == "boolean":
            values[column.name] = [(row + at) % 2 == 0 for row in range(PROBE_ROWS)]
        else:
            values[column.name] = [(at + 1) * (row + 1) + row for row in range(PROBE_ROWS)]
    return Batch(columns, values, PROBE_ROWS)


def _names_of(model: Any) -> list[str] | None:
    """The column names the model's raw estimator was fitted on (scikit-learn's ``feature_names_in_``), if known."""
    try:
        raw = model.get_raw_model()
    except Exception:  # flavours without a raw model (NotImplementedError, among others)
        return None
    names = getattr(raw, "feature_names_in_", None)
    return None if names is None else [str(n) for n in names]


def _same(wanted: np.ndarray, score: Callable[[], Any]) -> bool:
    """Whether ``score()`` gives ``wanted``; a raise is a no (the model cannot take that input)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the probe's own warnings (no feature names) say nothing here
            got = np.asarray(score(), dtype=np.float64)
    except Exception:  # any failure: not this way
        return False
    # Equal to the last few bits only: a table of mixed dtypes reaches the estimator in another
    # memory layout than the array, and a float sum's last bit depends on the order it adds in.
    return got.shape == wanted.shape and bool(np.allclose(got, wanted, rtol=SAME_RTOL, atol=0.0, equal_nan=True))


#: Content types KServe decodes as JSON (its dataplane's JSON_HEADERS), compared without parameters.
JSON_TYPES = (b"application/json", b"application/cloudevents+json", b"application/ld+json")


class JsonBodies:
    """ASGI middleware: a request body is JSON, said so by its content type, or the answer is a 400 saying that.

    KServe hands a body of any other content type to the model as raw bytes (V1) or reads it
    as V2's binary tensor format, and answers with a message about something else. It also
    compares the whole header, so ``application/json; charset=utf-8`` counted as not JSON:
    the parameters are dropped here before KServe looks. A binary V2 request (its
    ``inference-header-content-length`` header) passes as it is.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT"):
            headers = [(key.lower(), value) for key, value in scope["headers"]]
            given = next((value for key, value in headers if key == b"content-type"), None)
            binary = any(key == b"inference-header-content-length" for key, _ in headers)
            if given is not None and not binary:
                media = given.split(b";")[0].strip().lower()
                if media not in JSON_TYPES:
                    await _refuse(send, given.decode("latin-1"))
                    return
                kept = [(k, v) for k, v in headers if k != b"content-type"]
                scope = dict(scope, headers=[*kept, (b"content-type", media)])
        await self.app(scope, receive, send)


class InferenceOnly:
    """ASGI middleware: KServe's model repository calls (``/v2/repository/models/<name>/load|unload``) are refused.

    This server serves the one version it was started with, and nothing of Shipyard's loads or
    unloads models; left open, any local process could unload the model and fail every request.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and str(scope["path"]).startswith("/v2/repository/"):
            message = "this model server serves the one version it was started with; it does not load or unload models"
            await _answer(send, 403, message)
            return
        await self.app(scope, receive, send)


async def _refuse(send: Any, content_type: str) -> None:
    message = f"the request's content type is {content_type!r}; its body is JSON, sent as application/json"
    await _answer(send, 400, message)


async def _answer(send: Any, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


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
    from kserve.model_server import app  # the app RESTServer serves (FASTAPI_APP_IMPORT_STRING)

    app.add_middleware(JsonBodies)
    app.add_middleware(InferenceOnly)
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
