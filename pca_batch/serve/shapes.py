"""acm-pca's service model (botocore's, installed with boto3) and the wire form of its values.

JSON 1.1 writes a timestamp as seconds since the epoch (a number) and a blob as base64 text;
:func:`to_wire` writes an operation's answer that way, keeping exactly the members its output
shape has.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.model import OperationModel, ServiceModel, Shape

SERVICE_NAME = "acm-pca"
TARGET_PREFIX = "ACMPrivateCA"


@functools.cache
def service_model() -> ServiceModel:
    """The model botocore and the AWS CLI use (acm-pca 2017-08-22)."""
    import botocore.session

    return botocore.session.get_session().get_service_model(SERVICE_NAME)


@functools.cache
def operation_names() -> frozenset[str]:
    return frozenset(service_model().operation_names)


def operation(name: str) -> OperationModel:
    return service_model().operation_model(name)


def to_wire(shape: Shape | None, value: Any) -> Any:
    """``value`` as the JSON of ``shape``: members not in the shape and None values left out,
    datetimes as epoch seconds, bytes as base64."""
    if shape is None or value is None:
        return None
    kind = shape.type_name
    if kind == "structure":
        members = shape.members  # type: ignore[attr-defined]
        return {
            name: to_wire(members[name], item)
            for name, item in value.items()
            if name in members and item is not None
        }
    if kind == "list":
        return [to_wire(shape.member, item) for item in value]  # type: ignore[attr-defined]
    if kind == "map":
        return {str(k): to_wire(shape.value, v) for k, v in value.items()}  # type: ignore[attr-defined]
    if kind == "timestamp":
        return value.timestamp() if isinstance(value, datetime) else float(value)
    if kind == "blob":
        data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        return base64.b64encode(data).decode("ascii")
    return value


def answer(operation_name: str, result: Mapping[str, Any] | None) -> dict[str, Any]:
    """An operation's result as its output shape's JSON ({} for an operation without output)."""
    shape = operation(operation_name).output_shape
    wired = to_wire(shape, result or {})
    return wired if isinstance(wired, dict) else {}
