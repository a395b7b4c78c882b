"""A model server refuses what its model's signature does not describe, with a 400 that says why.

The audit (issue 16, finding 7) found the local model server lenient: an all-null row scored
``[0.0]``; a V2 tensor's ``shape`` and ``datatype`` were ignored (``shape: [1]`` with three
values gave three predictions, ``FP1024`` passed); names the model does not know were
dropped; a JSON body sent as ``text/plain`` got a message about something else. A small
sklearn model with a float and an int column is registered and served here the way the
models plane serves one, and asked wrongly in each of those ways, and rightly.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from shipyard.planes.models.serving.inputs import BadInput, Column, Tensor, columns_of, v1_batch, v1_frame, v2_frame
from shipyard.planes.models.serving.server import FastPath
from shipyard.sdk import processes

# infer_signature's hint that an int column cannot hold nulls: that is what the model is made to show.
pytestmark = pytest.mark.filterwarnings("ignore:Hint. Inferred schema contains integer")

MODEL = "input-checks"
SERVER = "shipyard.planes.models.serving.server"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[processes.Process]:
    """A model server on 127.0.0.1 for a registered LinearRegression on ``amount`` (double) and ``count`` (long)."""
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    folder = tmp_path_factory.mktemp("serving")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    frame = pd.DataFrame({"amount": [1.0, 2.5, 4.0], "count": [1, 2, 3]})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)  # not set_tracking_uri: that would outlive the test
        experiment = mlflow.create_experiment("serving", artifact_location=str(folder / "artifacts"))
        with mlflow.start_run(experiment_id=experiment):
            info = mlflow.sklearn.log_model(
                LinearRegression().fit(frame, [2.0, 4.5, 7.0]),
                name="model",
                registered_model_name=MODEL,
                signature=infer_signature(frame),
                pip_requirements=["scikit-learn"],
            )
    process = processes.spawn(
        SERVER,
        ["--name", MODEL, "--model-uri", f"models:/{MODEL}/{info.registered_model_version}"],
        processes.listen(),
        state_dir=folder / "state",
        name="input checks",
        health=f"/v2/models/{MODEL}/ready",
        env={"MLFLOW_TRACKING_URI": uri, "OMP_NUM_THREADS": "1"},
    )
    try:
        processes.wait_ready(process)
        yield process
    finally:
        processes.stop(process)


@pytest.fixture(scope="module")
def server(served: processes.Process) -> str:
    return served.url


def post(url: str, body: Any, content_type: str = "application/json") -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def v1(server: str, body: Any, content_type: str = "application/json") -> tuple[int, Any]:
    return post(f"{server}/v1/models/{MODEL}:predict", body, content_type)


def v2(server: str, *inputs: dict[str, Any], content_type: str = "application/json") -> tuple[int, Any]:
    return post(f"{server}/v2/models/{MODEL}/infer", {"inputs": list(inputs)}, content_type)


def tensor(name: str, data: list[Any], datatype: str = "FP64", shape: list[int] | None = None) -> dict[str, Any]:
    return {"name": name, "shape": [len(data)] if shape is None else shape, "datatype": datatype, "data": data}


# -- what the audit found, and its neighbours: each is a 400 naming the field ----------------------

V1_REFUSED = {
    "an all-null row": ({"instances": [{"amount": None, "count": None}]}, ["amount", "row 0", "null"]),
    "a null in a later row": (
        {"instances": [{"amount": 1.0, "count": 1}, {"amount": 2.0, "count": None}]},
        ["count", "row 1", "null"],
    ),
    "a null in a list-form row": ({"instances": [[None, 1]]}, ["amount", "row 0", "null"]),
    "a key the model does not know": (
        {"instances": [{"amount": 1.0, "count": 1, "colour": "red"}]},
        ["colour", "amount", "count"],
    ),
    "a column left out": ({"instances": [{"amount": 1.0}]}, ["count", "row 0", "missing"]),
    "a list-form row of the wrong width": ({"instances": [[1.0, 2, 3]]}, ["row 0", "3 values", "2"]),
    "a string where a number goes": ({"instances": [{"amount": "lots", "count": 1}]}, ["amount", "row 0", "'lots'"]),
    "a fraction in an integer column": ({"instances": [{"amount": 1.0, "count": 1.5}]}, ["count", "row 0", "1.5"]),
}


@pytest.mark.parametrize("case", V1_REFUSED)
def test_a_v1_request_the_signature_does_not_describe_is_a_400_naming_the_field(server: str, case: str) -> None:
    body, named = V1_REFUSED[case]
    status, answer = v1(server, body)
    assert status == 400, (case, status, answer)
    for word in named:
        assert word in answer["error"], (case, word, answer)


V2_REFUSED = {
    "a shape that does not hold the data": (
        [tensor("amount", [1.0, 2.0, 3.0], shape=[1]), tensor("count", [1, 2, 3], "INT64")],
        ["amount", "[1]", "3 values"],
    ),
    "a datatype V2 does not have": (
        [tensor("amount", [1.0], "FP1024"), tensor("count", [1], "INT64")],
        ["amount", "FP1024", "FP64"],
    ),
    "a datatype the column cannot take": (
        [tensor("amount", ["1.0"], "BYTES"), tensor("count", [1], "INT64")],
        ["amount", "BYTES", "double"],
    ),
    "an input the model does not know": (
        [tensor("amount", [1.0]), tensor("count", [1], "INT64"), tensor("colour", ["red"], "BYTES")],
        ["colour", "amount", "count"],
    ),
    "an input left out": ([tensor("amount", [1.0])], ["count", "missing"]),
    "inputs of different lengths": (
        [tensor("amount", [1.0, 2.0]), tensor("count", [1], "INT64")],
        ["count", "1 row", "2"],
    ),
    "a null": ([tensor("amount", [None]), tensor("count", [1], "INT64")], ["amount", "row 0", "null"]),
    "data that is not its datatype": (
        [tensor("amount", [1.0]), tensor("count", [1.5], "INT64")],
        ["count", "INT64", "1.5"],
    ),
}


@pytest.mark.parametrize("case", V2_REFUSED)
def test_a_v2_request_the_signature_does_not_describe_is_a_400_naming_the_field(server: str, case: str) -> None:
    inputs, named = V2_REFUSED[case]
    status, answer = v2(server, *inputs)
    assert status == 400, (case, status, answer)
    for word in named:
        assert word in answer["error"], (case, word, answer)


@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_a_json_body_sent_as_another_content_type_is_told_what_was_expected(server: str, protocol: str) -> None:
    if protocol == "v1":
        status, answer = v1(server, {"instances": [{"amount": 1.0, "count": 1}]}, "text/plain")
    else:
        status, answer = v2(server, tensor("amount", [1.0]), tensor("count", [1], "INT64"), content_type="text/plain")
    assert status == 400, answer
    assert "text/plain" in answer["error"], answer
    assert "application/json" in answer["error"], answer


# -- what was right stays right -----------------------------------------------------------------------


def test_good_requests_of_either_protocol_are_scored(server: str) -> None:
    rows = [{"amount": 1.0, "count": 1}, {"amount": 4, "count": 3}]  # JSON's 4 for 4.0: widened
    status, answer = v1(server, {"instances": rows})
    assert status == 200, answer
    assert answer["predictions"] == pytest.approx([2.0, 7.0])

    status, answer = v1(server, {"instances": [[1.0, 1], [4.0, 3]]}, "application/json; charset=utf-8")
    assert status == 200, answer
    assert answer["predictions"] == pytest.approx([2.0, 7.0])

    status, answer = v2(server, tensor("amount", [1.0, 4.0], shape=[2, 1]), tensor("count", [1, 3], "INT32"))
    assert status == 200, answer
    [output] = answer["outputs"]
    assert output["shape"] == [2]
    assert output["data"] == pytest.approx([2.0, 7.0])


# -- the checks themselves, without a server ----------------------------------------------------------

COLUMNS = [Column("amount", "double"), Column("count", "long"), Column("note", "string", required=False)]


def test_no_local_process_can_unload_the_model(server: str) -> None:
    for verb in ("unload", "load"):
        status, answer = post(f"{server}/v2/repository/models/{MODEL}/{verb}", {})
        assert status == 403, answer
        assert "does not load or unload models" in answer["error"]
    with urllib.request.urlopen(f"{server}/v2/models/{MODEL}/ready", timeout=30) as ready:
        assert ready.status == 200  # still serving


def refused(call: Callable[[], object], *named: str) -> str:
    with pytest.raises(BadInput) as caught:
        call()
    message = str(caught.value)
    for word in named:
        assert word in message, (word, message)
    return message


def test_the_columns_are_read_from_the_models_signature() -> None:
    import pandas as pd
    from mlflow.models import infer_signature
    from mlflow.types.schema import Schema, TensorSpec

    frame = pd.DataFrame({"amount": [1.0, 2.0], "count": [1, 2], "note": ["a", None], "flag": [True, False]})
    columns = columns_of(infer_signature(frame).inputs)
    assert columns == [*COLUMNS, Column("flag", "boolean")]
    assert columns_of(None) is None
    assert columns_of(Schema([TensorSpec(np.dtype("float64"), (-1, 3))])) is None


@pytest.mark.parametrize("null", [None, float("nan")])
def test_a_null_in_a_required_column_is_refused_naming_column_and_row(null: object) -> None:
    only_floats = [Column("amount", "double")]  # the audit's model: an all-null row scored [0.0]
    refused(lambda: v1_frame(only_floats, [{"amount": null}]), "row 0", "'amount'", "null", "required")
    refused(lambda: v1_frame(COLUMNS, [[1.0, 1, None], [null, 2, "x"]]), "row 1", "'amount'")
    tensors = [Tensor("amount", [2], "FP64", [1.0, null]), Tensor("count", [2], "INT64", [1, 2])]
    refused(lambda: v2_frame(COLUMNS, tensors), "input 'amount'", "row 1", "null")


def test_a_null_in_an_optional_column_is_kept() -> None:
    frame = v1_frame(COLUMNS, [{"amount": 1.0, "count": 1}, {"amount": 2, "count": 2, "note": "x"}])
    assert frame["note"].tolist() == [None, "x"]
    assert frame["amount"].dtype == np.float64  # JSON's 2 widened
    assert frame["count"].dtype == np.int64


def test_v1_names_and_widths_must_be_the_signatures() -> None:
    refused(lambda: v1_frame(COLUMNS, [{"amount": 1.0, "count": 1, "colour": "red"}]), "'colour'", "row 0", "'amount'")
    refused(lambda: v1_frame(COLUMNS, [{"amount": 1.0, "count": 1}, {"amount": 1.0}]), "row 1", "missing", "'count'")
    refused(lambda: v1_frame(COLUMNS, [[1.0, 1]]), "row 0", "2 values", "3")
    refused(lambda: v1_frame(COLUMNS, [1.0]), "row 0", "1.0", "object")
    refused(lambda: v1_frame(COLUMNS, []), "instances", "at least one")
    refused(lambda: v1_frame(COLUMNS, None), "instances")
    assert v1_frame(COLUMNS, [[1.5, 2, "x"]]).to_dict("records") == [{"amount": 1.5, "count": 2, "note": "x"}]


@pytest.mark.parametrize(
    ("row", "named"),
    [
        ({"amount": "lots", "count": 1}, ["'lots'", "'amount'", "a number"]),
        ({"amount": True, "count": 1}, ["True", "'amount'"]),
        ({"amount": 1.0, "count": 1.5}, ["1.5", "'count'", "an integer"]),
        ({"amount": 1.0, "count": 2**63}, [str(2**63), "'count'"]),
        ({"amount": 1.0, "count": 1, "note": 5}, ["5", "'note'", "a string"]),
    ],
)
def test_a_v1_value_its_column_cannot_hold_is_refused(row: dict[str, Any], named: list[str]) -> None:
    refused(lambda: v1_frame(COLUMNS, [row]), "row 0", *named)


def test_a_v1_integral_number_in_an_integer_column_is_that_integer() -> None:
    assert v1_frame(COLUMNS, [{"amount": 1.0, "count": 3.0}])["count"].tolist() == [3]


def test_without_a_signature_v1_rows_are_taken_as_given() -> None:
    assert v1_frame(None, [{"a": 1, "b": None}]).to_dict("records") == [{"a": 1, "b": None}]


def test_v2_datatypes_must_be_v2s_and_fit_the_column() -> None:
    count = Tensor("count", [1], "INT64", [1])
    refused(lambda: v2_frame(COLUMNS, [Tensor("amount", [1], "FP1024", [1.0]), count]), "'amount'", "FP1024", "FP64")
    refused(lambda: v2_frame(COLUMNS, [Tensor("amount", [1], "BYTES", ["1"]), count]), "'amount'", "BYTES", "double")
    amount = Tensor("amount", [1], "FP64", [1.0])
    refused(lambda: v2_frame(COLUMNS, [amount, Tensor("count", [1], "FP64", [1.0])]), "'count'", "FP64", "INT64")
    refused(lambda: v2_frame(COLUMNS, [amount, Tensor("count", [1], "UINT64", [1])]), "'count'", "UINT64")
    refused(lambda: v2_frame(None, [Tensor("x", [1], "FP1024", [1.0])]), "'x'", "FP1024", "BOOL")


@pytest.mark.parametrize(
    ("datatype", "value"),
    [("INT64", 1.5), ("INT8", 300), ("UINT8", -1), ("BOOL", 1), ("FP32", "1.0"), ("FP64", True), ("BYTES", 1)],
)
def test_v2_data_must_be_its_datatypes(datatype: str, value: object) -> None:
    tensor = Tensor("x", [2], datatype, [None, value])
    refused(lambda: v2_frame(None, [tensor]), "'x'", "row 1", datatype, repr(value))


def test_v2_shapes_must_hold_the_data_and_agree_on_rows() -> None:
    count = Tensor("count", [3], "INT64", [1, 2, 3])
    refused(lambda: v2_frame(COLUMNS, [Tensor("amount", [1], "FP64", [1.0, 2.0, 3.0]), count]), "[1]", "3 values")
    wide = Tensor("amount", [1, 3], "FP64", [[1.0, 2.0, 3.0]])
    refused(lambda: v2_frame(COLUMNS, [wide, Tensor("count", [1], "INT64", [1])]), "[1, 3]", "3 values", "one a row")
    refused(lambda: v2_frame(COLUMNS, [Tensor("amount", [2], "FP64", [1.0, 2.0]), count]), "'count'", "3 rows", "2")
    refused(lambda: v2_frame(None, [Tensor("amount", [], "FP64", [])]), "shape []")
    refused(lambda: v2_frame(None, [Tensor("a", [2], "FP64", [1.0, 2.0]), Tensor("b", [1], "FP64", [1.0])]), "1 row")
    frame = v2_frame(COLUMNS, [Tensor("amount", [3, 1], "FP32", [[1.0], [2.0], [3.0]]), count])
    assert frame.to_dict("list") == {"amount": [1.0, 2.0, 3.0], "count": [1, 2, 3]}
    assert frame["amount"].dtype == np.float64
    assert frame["count"].dtype == np.int64


def test_v2_names_must_be_the_signatures() -> None:
    amount, count = Tensor("amount", [1], "FP64", [1.0]), Tensor("count", [1], "INT32", [1])
    refused(lambda: v2_frame(COLUMNS, [amount, count, Tensor("colour", [1], "BYTES", ["red"])]), "'colour'", "'note'")
    refused(lambda: v2_frame(COLUMNS, [count]), "'amount'", "missing")
    refused(lambda: v2_frame(COLUMNS, [amount, count, amount]), "'amount'", "twice")
    refused(lambda: v2_frame(COLUMNS, []), "at least one input")
    assert v2_frame(COLUMNS, [amount, count, Tensor("note", [1], "BYTES", [b"x"])])["note"].tolist() == ["x"]
    assert list(v2_frame(COLUMNS, [count, amount]).columns) == ["amount", "count"]  # the signature's order


def test_without_a_signature_v2_inputs_are_taken_as_given() -> None:
    frame = v2_frame(None, [Tensor("a", [2], "FP64", [1.0, 2.0]), Tensor("b", [2, 2], "INT64", [1, 2, 3, 4])])
    assert frame.to_dict("list") == {"a": [1.0, 2.0], "b": [[1, 2], [3, 4]]}


# -- the fast path: checked once, then the flavour's own predict, on an array where the model takes one ---


def test_the_served_model_is_scored_on_arrays_and_still_answers_as_pyfunc_would(served: processes.Process) -> None:
    # The sklearn flavour over numeric columns: the array path (issue 18, item 6). Its answers are
    # checked in test_good_requests_of_either_protocol_are_scored, its refusals above.
    assert "requests are scored through the flavour's predict on arrays" in processes.output(served)


def test_a_batch_is_one_array_only_when_every_column_is_a_required_number() -> None:
    numbers = [Column("amount", "double"), Column("count", "long")]
    batch = v1_batch(numbers, [{"amount": 1, "count": 2}, [2.5, 3.0]])
    array = batch.array()
    assert array is not None
    assert array.dtype == np.float64  # what a table of a float and an int column gives
    assert array.tolist() == [[1.0, 2.0], [2.5, 3.0]]
    assert array.flags["C_CONTIGUOUS"]  # row-major, as an estimator wants it
    assert np.array_equal(array, batch.frame().to_numpy())
    assert v1_batch([Column("count", "long")], [[3.0]]).array().dtype == np.int64  # type: ignore[union-attr]
    assert v1_batch(COLUMNS, [[1.0, 1, "x"]]).array() is None  # a string column
    assert v1_batch([*numbers, Column("flag", "boolean")], [[1.0, 1, True]]).array() is None
    optional = [Column("amount", "double"), Column("count", "long", required=False)]
    assert v1_batch(optional, [{"amount": 1.0}]).array() is None  # a column left out
    assert v1_batch(optional, [{"amount": 1.0, "count": None}]).array() is None  # a null
    assert v1_batch(None, [{"amount": 1.0}]).array() is None  # nothing to check against


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Models saved as MLflow logs them, loaded with pyfunc: an sklearn flavour, models from code, a string column."""
    import mlflow.pyfunc
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    folder = tmp_path_factory.mktemp("fast-path")
    frame = pd.DataFrame({"amount": [1.0, 2.5, 4.0], "count": [1, 2, 3]})
    mlflow.sklearn.save_model(
        LinearRegression().fit(frame, [2.0, 4.5, 7.0]), folder / "sklearn", signature=infer_signature(frame)
    )
    # The fraud pipeline's shape of model (pipelines/fraud/train): a PythonModel from code. One
    # reads its columns by name, as model code may: given an array, it fails, so it gets tables.
    for name, body in {
        "matrix": "return np.asarray(model_input, dtype=float) @ np.array([2.0, 1.0])",
        "by_name": "return (model_input['amount'] * 2 + model_input['count']).to_numpy()",
    }.items():
        code = folder / f"{name}.py"
        code.write_text(
            "import numpy as np\nfrom mlflow.models import set_model\nfrom mlflow.pyfunc import PythonModel\n\n\n"
            "class Scorer(PythonModel):\n"
            "    def predict(self, context, model_input, params=None):\n"
            f"        {body}\n\n\n"
            "set_model(Scorer())\n",
            encoding="utf-8",
        )
        mlflow.pyfunc.save_model(folder / name, python_model=str(code), signature=infer_signature(frame))
    texts = pd.DataFrame({"amount": [1.0], "note": ["a"]})
    mlflow.sklearn.save_model(
        LinearRegression().fit(frame, [1.0, 2.0, 3.0]), folder / "strings", signature=infer_signature(texts)
    )
    return {name: mlflow.pyfunc.load_model(str(folder / name)) for name in ("sklearn", "matrix", "by_name", "strings")}


@pytest.mark.parametrize(("name", "given"), [("sklearn", "arrays"), ("matrix", "arrays"), ("by_name", "tables")])
def test_the_fast_path_gives_what_pyfunc_predict_gives(saved: dict[str, Any], name: str, given: str) -> None:
    model = saved[name]
    columns = columns_of(model.metadata.get_input_schema())
    fast = FastPath.of(model, columns)
    assert fast is not None
    assert fast.given == given
    rows = [{"amount": 1.0, "count": 1}, {"amount": 4, "count": 3}, {"amount": -2.5, "count": 7}]
    batch = v1_batch(columns, rows)
    data = batch.array() if fast.arrays else batch.frame()
    expected = np.asarray(model.predict(batch.frame()), dtype=np.float64)
    assert np.asarray(fast.predict(data), dtype=np.float64) == pytest.approx(expected, rel=1e-9, abs=0)


def test_a_signature_pyfunc_would_convert_is_scored_by_pyfunc(saved: dict[str, Any]) -> None:
    model = saved["strings"]
    assert FastPath.of(model, columns_of(model.metadata.get_input_schema())) is None  # a string column
    assert FastPath.of(saved["sklearn"], None) is None  # no column signature
    optional = [Column("amount", "double"), Column("count", "long", required=False)]
    assert FastPath.of(saved["sklearn"], optional) is None
