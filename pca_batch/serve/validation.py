"""Requests checked against the service model as AWS checks them, before any operation runs.

botocore checks required members, types and minimums on the client; AWS's front end also checks
maximums, patterns and enums, and answers every broken constraint in one ValidationException::

    2 validation errors detected: Value 'MD5' at 'signingAlgorithm' failed to satisfy constraint:
    Member must satisfy enum value set: [SHA256WITHECDSA, ...]; Value null at 'csr' failed to
    satisfy constraint: Member must not be null

Members are named in lowerCamelCase with dots, a list's items as ``tags.1.member.key``. A value of
the wrong JSON type (a string for an integer) is a SerializationException, as AWS answers it.
:func:`validate` also decodes the wire form: blobs from base64 to bytes.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import unicodedata
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pca_batch.serve.protocol import ServiceError

if TYPE_CHECKING:
    from botocore.model import Shape

MAX_REPORTED = 10  # AWS lists at most this many problems (and counts them all)


def _member_path(path: str, name: str) -> str:
    return f"{path}.{name[:1].lower()}{name[1:]}" if path else f"{name[:1].lower()}{name[1:]}"


def _quoted(value: Any) -> str:
    return "null" if value is None else f"'{value}'"


@functools.cache
def _matcher(pattern: str) -> Callable[[str], bool]:
    """A full match of one of the model's (Java) patterns. Python's re has no ``\\p{L}``: a pattern
    ``([...]*)`` whose class uses Unicode categories is checked character by character."""
    if "\\p{" not in pattern:
        compiled = re.compile(pattern)
        return lambda text: compiled.fullmatch(text) is not None
    body = re.fullmatch(r"\(?\[(.*)\]\*\)?", pattern)
    if body is None:  # not a shape the model uses: accept rather than refuse wrongly
        return lambda text: True
    categories = re.findall(r"\\p\{(\w)\}", body.group(1))
    literal = set(re.sub(r"\\p\{\w\}", "", body.group(1)).replace("\\-", "-").replace("\\", ""))

    def check(text: str) -> bool:
        return all(ch in literal or unicodedata.category(ch)[0] in categories for ch in text)

    return check


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, value: Any, path: str, constraint: str) -> None:
        self.problems.append(f"Value {_quoted(value)} at '{path}' failed to satisfy constraint: {constraint}")

    def value(self, shape: Shape, value: Any, path: str) -> Any:
        kind = shape.type_name
        check = getattr(self, f"_{kind}", None)
        if check is None:
            return value
        return check(shape, value, path)

    def _structure(self, shape: Shape, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            raise ServiceError("SerializationException", f"'{path or 'the request'}' must be a JSON object")
        members = shape.members  # type: ignore[attr-defined]
        out: dict[str, Any] = {}
        for name in shape.required_members:  # type: ignore[attr-defined]
            if value.get(name) is None:
                self.fail(None, _member_path(path, name), "Member must not be null")
        for name, item in value.items():
            if name in members and item is not None:
                out[name] = self.value(members[name], item, _member_path(path, name))
        return out

    def _list(self, shape: Shape, value: Any, path: str) -> Any:
        if not isinstance(value, list):
            raise ServiceError("SerializationException", f"'{path}' must be a JSON array")
        self._length(shape, value, len(value), path)
        member = shape.member  # type: ignore[attr-defined]
        return [self.value(member, item, f"{path}.{i}.member") for i, item in enumerate(value, start=1)]

    def _map(self, shape: Shape, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            raise ServiceError("SerializationException", f"'{path}' must be a JSON object")
        return {k: self.value(shape.value, v, f"{path}.{k}") for k, v in value.items()}  # type: ignore[attr-defined]

    def _string(self, shape: Shape, value: Any, path: str) -> Any:
        if not isinstance(value, str):
            raise ServiceError("SerializationException", f"'{path}' must be a string")
        self._length(shape, value, len(value), path)
        enum = shape.enum  # type: ignore[attr-defined]
        if enum and value not in enum:
            self.fail(value, path, f"Member must satisfy enum value set: [{', '.join(enum)}]")
        pattern = shape.metadata.get("pattern")
        if pattern and not _matcher(pattern)(value):
            self.fail(value, path, f"Member must satisfy regular expression pattern: {pattern}")
        return value

    def _blob(self, shape: Shape, value: Any, path: str) -> Any:
        if not isinstance(value, str):
            raise ServiceError("SerializationException", f"'{path}' must be a base64 string")
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ServiceError("SerializationException", f"'{path}' is not valid base64") from None
        self._length(shape, data, len(data), path)
        return data

    def _integer(self, shape: Shape, value: Any, path: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise ServiceError("SerializationException", f"'{path}' must be a whole number")
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        if low is not None and value < low:
            self.fail(value, path, f"Member must have value greater than or equal to {low}")
        if high is not None and value > high:
            self.fail(value, path, f"Member must have value less than or equal to {high}")
        return value

    _long = _integer

    def _boolean(self, shape: Shape, value: Any, path: str) -> Any:
        if not isinstance(value, bool):
            raise ServiceError("SerializationException", f"'{path}' must be true or false")
        return value

    def _timestamp(self, shape: Shape, value: Any, path: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ServiceError("SerializationException", f"'{path}' must be a number of seconds")
        return value

    def _length(self, shape: Shape, value: Any, size: int, path: str) -> None:
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        shown = value if isinstance(value, str) else f"<{size} {'bytes' if isinstance(value, bytes) else 'items'}>"
        if low is not None and size < low:
            self.fail(shown, path, f"Member must have length greater than or equal to {low}")
        if high is not None and size > high:
            self.fail(shown, path, f"Member must have length less than or equal to {high}")


def validate(shape: Shape | None, params: dict[str, Any]) -> dict[str, Any]:
    """The request's members, blobs decoded; ValidationException naming every broken constraint."""
    if shape is None:
        return {}
    checker = _Checker()
    checked: dict[str, Any] = checker.value(shape, params, "")
    problems = checker.problems
    if problems:
        count = len(problems)
        head = f"{count} validation error{'s' if count != 1 else ''} detected: "
        raise ServiceError("ValidationException", head + "; ".join(problems[:MAX_REPORTED]))
    return checked
