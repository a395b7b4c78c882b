"""What a model server accepts: a request checked against its model's signature, made a table.

Pure: the signature's columns (``columns_of``) and a request's rows (KServe V1,
``{"instances": [...]}``) or tensors (V2, ``{"inputs": [{name, shape, datatype, data}]}``)
in, a ``Batch`` of checked values out (as a DataFrame with one column per signature column,
or, where every column is a required number, as one row-major array), or ``BadInput`` with a
message naming the field, what it holds and what was expected; the server answers that with 400.

What is refused: a name that is not a column, a required column left out or holding null
(None, NaN) in some row, a value its column's type cannot hold; in V2 also a datatype V2 does
not have or the column cannot take, a shape that does not hold its data, inputs of different
row counts. A model without a column signature gets the V2 checks that need none (datatype,
shape, row counts) and its request as given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


class BadInput(ValueError):
    """A request the model's signature does not describe: the caller's mistake (400)."""


@dataclass(frozen=True)
class Column:
    """One column of a model's input signature: its name, MLflow type (``double``, ``long``...) and whether required.

    ``type`` is empty for the types that are not one value of a kind (array, object, map, any):
    those are passed on unchecked, but for nulls.
    """

    name: str
    type: str = ""
    required: bool = True

    def __str__(self) -> str:
        return f"{self.name!r} ({self.type or 'any'})"


@dataclass(frozen=True)
class Tensor:
    """One V2 input as the request gives it."""

    name: str
    shape: Sequence[Any]
    datatype: str
    data: Any


def columns_of(schema: Any) -> list[Column] | None:
    """The named columns of an MLflow input schema (``model.metadata.get_input_schema()``).

    None where there is nothing to check names against: no signature, a tensor signature, unnamed columns.
    """
    if schema is None or schema.is_tensor_spec() or not schema.has_input_names():
        return None
    columns = []
    for spec in schema.inputs:
        kind = getattr(spec.type, "name", "")  # a DataType has a name; Array, Object, Map and AnyType have none
        columns.append(Column(spec.name, kind if kind in FITS else "", bool(getattr(spec, "required", True))))
    return columns


# -- the V2 datatypes and which of them a column's type takes ---------------------------------------

INTS = {"INT8": 8, "INT16": 16, "INT32": 32, "INT64": 64}
UINTS = {"UINT8": 8, "UINT16": 16, "UINT32": 32, "UINT64": 64}
FLOATS = ("FP16", "FP32", "FP64")
V2_DATATYPES = ("BOOL", *UINTS, *INTS, *FLOATS, "BYTES")

#: Signature type → the V2 datatypes that carry it, the closest first. Integers go into float
#: columns (widened, as MLflow's scoring server does with JSON's 14 for 14.0); an integer column
#: takes only integer types whose every value it can hold.
FITS: dict[str, tuple[str, ...]] = {
    "double": ("FP64", "FP32", "FP16", *INTS, *UINTS),
    "float": ("FP32", "FP16", "FP64", *INTS, *UINTS),
    "long": ("INT64", "INT32", "INT16", "INT8", "UINT32", "UINT16", "UINT8"),
    "integer": ("INT32", "INT16", "INT8", "UINT16", "UINT8"),
    "boolean": ("BOOL",),
    "string": ("BYTES",),
    "binary": ("BYTES",),
    "datetime": ("BYTES",),
}
#: The pandas dtype a column of each type gets when none of its values is null.
DTYPES = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32", "boolean": "bool"}
#: What a value of each signature type is, for messages.
KINDS = {
    "double": "a number",
    "float": "a number",
    "long": "an integer",
    "integer": "an integer",
    "boolean": "true or false",
    "string": "a string",
    "binary": "a string",
    "datetime": "a date-time string",
}
RANGES = {"long": 64, "integer": 32}


def is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _integer(value: Any, bits: int, signed: bool = True) -> int | None:
    """``value`` as an int that ``bits`` bits hold (JSON's 3.0 is 3), or None if it is not one."""
    if not _number(value) or (isinstance(value, float) and not value.is_integer()):
        return None
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1)) if signed else (0, 2**bits)
    return int(value) if low <= value < high else None


def _as_type(kind: str, value: Any) -> tuple[bool, Any]:
    """Whether ``value`` (not null) is a value of signature type ``kind``, and that value."""
    if kind in ("double", "float"):
        return _number(value), value
    if kind in RANGES:
        whole = _integer(value, RANGES[kind])
        return whole is not None, whole
    if kind == "boolean":
        return isinstance(value, bool), value
    if kind in ("string", "binary", "datetime"):
        return isinstance(value, str), value
    return True, value


def _as_datatype(datatype: str, value: Any) -> tuple[bool, Any]:
    """Whether ``value`` (not null) is a value of V2 ``datatype``, and that value."""
    if datatype == "BOOL":
        return isinstance(value, bool), value
    if datatype in INTS or datatype in UINTS:
        whole = _integer(value, INTS.get(datatype) or UINTS[datatype], signed=datatype in INTS)
        return whole is not None, whole
    if datatype in FLOATS:
        return _number(value), value
    if isinstance(value, bytes):  # BYTES
        return True, value.decode("utf-8", errors="replace")
    return isinstance(value, str), value


def _expected(columns: Sequence[Column]) -> str:
    return "its columns are " + ", ".join(str(c) for c in columns)


#: The signature types a batch can be handed over in as one numeric array (see ``Batch.array``).
NUMERIC = ("double", "float", "long", "integer")


@dataclass(frozen=True)
class Batch:
    """A request's rows, checked once against the signature: each column's values, in rows order.

    ``values`` holds the checked (and typed: JSON's 3.0 in a long column is 3) values of each
    column the request gave, ``None`` for a null in an optional column. ``given`` is the table
    as the request gave it, for a model without a column signature (nothing to check against).
    """

    columns: Sequence[Column] | None
    values: Mapping[str, list[Any]]
    rows: int
    given: pd.DataFrame | None = None

    def frame(self) -> pd.DataFrame:
        """The table: each column in signature order, typed by its signature type where no value is null."""
        if self.given is not None or self.columns is None:
            return self.given if self.given is not None else pd.DataFrame(index=range(self.rows))
        array = self.array()
        if array is not None and len({DTYPES[c.type] for c in self.columns}) == 1:
            # One dtype for every column: one block, built from the array (the per-Series path
            # below costs about half a millisecond for a single row).
            return pd.DataFrame(array, columns=[c.name for c in self.columns])
        data: dict[str, Any] = {}
        for column in self.columns:
            if column.name not in self.values:
                continue  # an optional column left out: the model's own schema check decides
            kept = self.values[column.name]
            nulls = any(is_null(v) for v in kept)
            dtype = None if nulls or column.type not in DTYPES else DTYPES[column.type]
            data[column.name] = pd.Series(kept, dtype=dtype)
        return pd.DataFrame(data, index=range(self.rows))

    def array(self) -> np.ndarray | None:
        """The rows as one row-major array, columns in signature order; None unless every column is a number.

        Only numbers: every column's type in ``NUMERIC``, every column given and none null. The
        dtype is the one ``frame().to_numpy()`` would have (float64 where ints and floats mix).
        Booleans are left out on purpose: pandas makes a table of bools and ints an object array.
        """
        if self.given is not None or not self.columns:
            return None
        for column in self.columns:
            if column.type not in NUMERIC or column.name not in self.values:
                return None
            if any(v is None for v in self.values[column.name]):  # checked values: a null is None
                return None
        dtype = np.result_type(*(DTYPES[c.type] for c in self.columns))
        by_column = np.array([self.values[c.name] for c in self.columns], dtype=dtype)
        return np.ascontiguousarray(by_column.T)


def _check_values(column: Column, values: list[Any], where: str = "") -> list[Any]:
    """``values`` of ``column`` (its rows in order), checked for nulls and its type; ``where`` begins messages."""
    kept: list[Any] = []
    for row, value in enumerate(values):
        if is_null(value):
            if column.required:
                raise BadInput(f"{where}row {row} is null in column {column}, which is required")
            kept.append(None)
            continue
        fits, typed = _as_type(column.type, value)
        if not fits:
            raise BadInput(f"{where}row {row} holds {value!r:.60} in column {column}, which takes {KINDS[column.type]}")
        kept.append(typed)
    return kept


# -- V1: {"instances": [row, ...]} -------------------------------------------------------------------


def v1_frame(columns: Sequence[Column] | None, instances: Any) -> pd.DataFrame:
    """The table of a V1 request's instances (``v1_batch``)."""
    return v1_batch(columns, instances).frame()


def v1_batch(columns: Sequence[Column] | None, instances: Any) -> Batch:
    """A V1 request's instances, checked: each an object {column: value} or a list in the signature's order."""
    if not isinstance(instances, list) or not instances:
        found = "none" if instances is None else f"{type(instances).__name__} {instances!r:.60}"
        raise BadInput(f'a V1 request is {{"instances": [...]}} with at least one instance; "instances" is {found}')
    if columns is None:  # nothing to check against: the rows as they are
        try:
            given = pd.DataFrame(instances)
        except ValueError as error:
            raise BadInput(f"the instances do not make a table: {error}") from error
        return Batch(None, {}, len(given), given)
    values: dict[str, list[Any]] = {c.name: [] for c in columns}
    known = {c.name for c in columns}
    for row, instance in enumerate(instances):
        if isinstance(instance, dict):
            unknown = [key for key in instance if key not in known]
            if unknown:
                names = ", ".join(repr(k) for k in unknown)
                raise BadInput(f"row {row} has {names}, which the model does not take; {_expected(columns)}")
            for column in columns:
                if column.name not in instance and column.required:
                    raise BadInput(f"row {row} is missing column {column}, which is required; {_expected(columns)}")
            cells = [instance.get(c.name) for c in columns]
        elif isinstance(instance, list):
            if len(instance) != len(columns):
                raise BadInput(
                    f"row {row} has {len(instance)} values, but the model takes {len(columns)} a row, in this order: "
                    + ", ".join(str(c) for c in columns)
                )
            cells = instance
        else:
            raise BadInput(
                f"row {row} is {instance!r:.60}; a row is an object {{column: value}} or a list of"
                f" {len(columns)} values in the order of the model's columns: " + ", ".join(str(c) for c in columns)
            )
        for column, cell in zip(columns, cells, strict=True):
            values[column.name].append(cell)
    checked = {c.name: _check_values(c, values[c.name]) for c in columns}
    return Batch(columns, checked, len(instances))


# -- V2: {"inputs": [{name, shape, datatype, data}, ...]} ----------------------------------------------


def _flat(data: Any) -> list[Any]:
    """The values of a (possibly nested, row-major) V2 data array."""
    if hasattr(data, "tolist"):  # binary tensors arrive as numpy arrays
        data = data.tolist()
    if not isinstance(data, list):
        return [data]
    flat: list[Any] = []
    for item in data:
        flat.extend(_flat(item) if isinstance(item, list) else [item])
    return flat


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _structure(tensor: Tensor, column: Column | None) -> tuple[int, list[Any]]:
    """A tensor's row count and its values, one a row (a row of several as a list), checked against its shape."""
    name = tensor.name
    if tensor.datatype not in V2_DATATYPES:
        takes = FITS.get(column.type, V2_DATATYPES) if column is not None else V2_DATATYPES
        to = f"column {column} takes" if column is not None else "V2's datatypes are"
        raise BadInput(f"input {name!r}: datatype {tensor.datatype!r} is not a V2 datatype; {to} {', '.join(takes)}")
    if column is not None and column.type and tensor.datatype not in FITS[column.type]:
        raise BadInput(
            f"input {name!r}: datatype {tensor.datatype} does not fit column {column}; it takes "
            + ", ".join(FITS[column.type])
        )
    shape = list(tensor.shape)
    if not shape or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise BadInput(f"input {name!r}: shape {shape} is not a list of sizes; expected [rows] or [rows, 1]")
    flat = _flat(tensor.data)
    holds = math.prod(shape)
    if holds != len(flat):
        raise BadInput(
            f"input {name!r}: shape {shape} holds {_plural(holds, 'value')},"
            f" but its data has {_plural(len(flat), 'value')}"
        )
    width = holds // shape[0] if shape[0] else math.prod(shape[1:])
    if width != 1 and column is not None and column.type:  # a column of one value a row
        raise BadInput(
            f"input {name!r}: shape {shape} gives each row {_plural(width, 'value')}, but column {column} holds"
            " one a row; expected [rows] or [rows, 1]"
        )
    for at, value in enumerate(flat):
        if not is_null(value):
            fits, flat[at] = _as_datatype(tensor.datatype, value)
            if not fits:
                raise BadInput(
                    f"input {name!r}: row {at // width} holds {value!r:.60}, which is not a value of datatype"
                    f" {tensor.datatype}"
                )
    if width == 1:
        return shape[0], flat
    return shape[0], [flat[i : i + width] for i in range(0, len(flat), width)]


def v2_frame(columns: Sequence[Column] | None, tensors: Sequence[Tensor]) -> pd.DataFrame:
    """The table of a V2 request's inputs (``v2_batch``)."""
    return v2_batch(columns, tensors).frame()


def v2_batch(columns: Sequence[Column] | None, tensors: Sequence[Tensor]) -> Batch:
    """A V2 request's inputs, checked: one input a column, named as the signature names it."""
    if not tensors:
        raise BadInput("a V2 request has at least one input; it has none")
    by_name = {c.name: c for c in columns} if columns is not None else {}
    seen: set[str] = set()
    for tensor in tensors:
        if tensor.name in seen:
            raise BadInput(f"input {tensor.name!r} is given twice")
        seen.add(tensor.name)
        if columns is not None and tensor.name not in by_name:
            raise BadInput(f"input {tensor.name!r} is not a column of the model; {_expected(columns)}")
    for left_out in columns or []:
        if left_out.name not in seen and left_out.required:
            raise BadInput(f"input {left_out} is missing, and it is required; {_expected(columns or [])}")

    rows: int | None = None
    values: dict[str, list[Any]] = {}
    for tensor in tensors:
        column = by_name.get(tensor.name)
        count, cells = _structure(tensor, column)
        if rows is not None and count != rows:
            first = tensors[0].name
            raise BadInput(
                f"input {tensor.name!r} has {_plural(count, 'row')}, but input {first!r} has {_plural(rows, 'row')};"
                " every input holds one value a row"
            )
        rows = count
        values[tensor.name] = _check_values(column, cells, f"input {tensor.name!r}: ") if column is not None else cells
    assert rows is not None
    if columns is None:  # as KServe's InferRequest.as_dataframe makes it
        given = pd.DataFrame({name: pd.Series(cells) for name, cells in values.items()}, index=range(rows))
        return Batch(None, values, rows, given)
    return Batch(columns, values, rows)
