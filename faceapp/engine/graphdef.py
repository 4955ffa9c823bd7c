"""A reader for TensorFlow frozen graphs (GraphDef), with no TensorFlow.

Just enough of the protobuf wire format to list a graph's nodes and read their
attributes and float constants: the offline weights ship as such a graph
(:mod:`faceapp.engine.graph_convert` maps it onto ``InceptionResnetV1``). A file that
is not a well-formed GraphDef raises :class:`WeightsError`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceapp.engine.weights_file import WeightsError


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    """Decode one base-128 varint at ``pos``; returns (value, position after it)."""
    value = shift = 0
    while True:
        try:
            byte = buf[pos]
        except IndexError:
            raise WeightsError("truncated protobuf message") from None
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def _fields(buf: memoryview) -> Iterator[tuple[int, Any]]:
    """Yield (field number, value) of one message: varints as int, the rest as bytes views."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: int | memoryview
        if wire == 0:
            value, pos = _varint(buf, pos)
        else:
            if wire == 2:
                size, pos = _varint(buf, pos)
            elif wire in (1, 5):
                size = 8 if wire == 1 else 4
            else:
                raise WeightsError(f"unsupported protobuf wire type {wire}")
            value, pos = buf[pos : pos + size], pos + size
            if pos > end:
                raise WeightsError("truncated protobuf message")
        yield number, value


def _first(buf: memoryview, number: int, default: Any = None) -> Any:
    return next((value for n, value in _fields(buf) if n == number), default)


def _signed(value: int) -> int:
    """int64 fields arrive as unsigned 64-bit varints."""
    return value - (1 << 64) if value >= 1 << 63 else value


@dataclass
class GraphNode:
    """One NodeDef; attributes stay raw AttrValue messages and are decoded on demand."""

    name: str = ""
    op: str = ""
    inputs: list[str] = field(default_factory=list)
    attrs: dict[str, memoryview] = field(default_factory=dict)


def read_graph(path: Path) -> dict[str, GraphNode]:
    """Read a frozen GraphDef file (see ``parse_graph``)."""
    return parse_graph(Path(path).read_bytes(), str(path))


def parse_graph(data: bytes, origin: str = "graph") -> dict[str, GraphNode]:
    """GraphDef (field 1 = repeated NodeDef) -> nodes by name, in graph order."""
    nodes: dict[str, GraphNode] = {}
    try:
        for number, value in _fields(memoryview(data)):
            if number == 1:
                node = _read_node(value)
                nodes[node.name] = node
    except UnicodeDecodeError as exc:
        raise WeightsError(f"{origin} is not a readable TensorFlow GraphDef ({exc!r})") from exc
    return nodes


def _read_node(buf: memoryview) -> GraphNode:
    node = GraphNode()
    for number, value in _fields(buf):
        if number == 1:
            node.name = str(value, "utf-8")
        elif number == 2:
            node.op = str(value, "utf-8")
        elif number == 3:
            node.inputs.append(str(value, "utf-8"))
        elif number == 5:  # map<string, AttrValue> entry: key = 1, value = 2
            entry = dict(_fields(value))
            node.attrs[str(entry.get(1, b""), "utf-8")] = entry.get(2, memoryview(b""))
    return node


DT_FLOAT = 1  # tensorflow DataType enum


def attr_dtype(node: GraphNode) -> int:
    """AttrValue.type (field 6) of the node's ``dtype`` attribute; 0 when absent."""
    return _first(node.attrs.get("dtype", memoryview(b"")), 6, 0)


def attr_float(node: GraphNode, key: str, default: float) -> float:
    """AttrValue.f (field 4, a little-endian float32); ``default`` is the op's own default."""
    raw = _first(node.attrs[key], 4) if key in node.attrs else None
    return default if raw is None else struct.unpack("<f", raw)[0]


def attr_shape(node: GraphNode, key: str = "shape") -> list[int]:
    """AttrValue.shape (field 7) as a list of sizes, -1 for unknown."""
    return _shape(_first(node.attrs[key], 7, memoryview(b"")))


def _shape(proto: memoryview) -> list[int]:
    """TensorShapeProto: repeated Dim (field 2), Dim.size = field 1."""
    return [_signed(_first(dim, 1, 0)) for n, dim in _fields(proto) if n == 2]


def const_array(node: GraphNode) -> np.ndarray:
    """A float32 Const node's value: TensorProto (AttrValue field 8) -> numpy array.

    The values are either raw little-endian ``tensor_content`` (4) or ``float_val`` (5,
    packed or not); a single value is broadcast to the whole shape, as in TensorFlow.
    """
    proto = _first(node.attrs["value"], 8, memoryview(b""))
    dtype, shape, raw = 0, [], []
    for number, value in _fields(proto):
        if number == 1:
            dtype = value
        elif number == 2:
            shape = _shape(value)
        elif number in (4, 5):
            raw.append(bytes(value))
    if dtype != DT_FLOAT:
        raise WeightsError(f"graph constant {node.name} has dtype {dtype}, expected float32")
    values = np.frombuffer(b"".join(raw), dtype="<f4")
    count = int(np.prod(shape, dtype=np.int64))
    if values.size == count:
        return values.reshape(shape).astype(np.float32)
    if values.size <= 1:
        return np.full(shape, values[0] if values.size else 0.0, dtype=np.float32)
    raise WeightsError(f"graph constant {node.name}: {values.size} values for shape {shape}")
