"""Reading a protocol message typed at the prompt, without `eval`.

    parse_message('GetApp(name="hello")')  ->  GetApp(name='hello')
    parse_message('ccdb.FindApp(name="hello")')  ->  the CC_DB operation

`send ACTOR MESSAGE` hands MESSAGE here. The text is parsed with `ast` and
built from a closed vocabulary: calls of message and record classes from
`protocol.messages`, `protocol.lrp`, `protocol.auction` and
`protocol.records`, of the storage operations as `ccdb.X(...)` and
`blobs.X(...)` (their modules' names), members of the
state enums in `protocol.states` (`HealthCheckType.HTTP`), and Python
literals (numbers, strings, bytes, None/True/False, tuples, lists, dicts,
sets, `frozenset(...)`). Anything else is a `MessageSyntaxError` naming
what was refused: no attribute walks, no other names, no code runs.
"""

from __future__ import annotations

import ast
import enum
import inspect
from types import ModuleType
from typing import Any

import protocol.auction
import protocol.blobs
import protocol.ccdb
import protocol.lrp
import protocol.messages
import protocol.records
import protocol.states

__all__ = ["MESSAGE_TYPES", "STATE_ENUMS", "MessageSyntaxError", "parse_message"]


class MessageSyntaxError(ValueError):
    """Raised by `parse_message` for text that is not a message it may build."""


def _classes(module: ModuleType) -> dict[str, type]:
    names = getattr(module, "__all__", None) or [n for n in vars(module) if n[:1].isupper()]
    found = {}
    for name in names:
        value = getattr(module, name, None)
        if inspect.isclass(value) and not name.startswith("_"):
            found[name] = value
    return found


#: Every class a typed message may call, by name.
MESSAGE_TYPES: dict[str, type] = {
    **_classes(protocol.auction),
    **_classes(protocol.lrp),
    **_classes(protocol.records),
    **_classes(protocol.messages),
    **{f"ccdb.{name}": cls for name, cls in _classes(protocol.ccdb).items()},
    **{f"blobs.{name}": cls for name, cls in _classes(protocol.blobs).items()},
}
#: Enums whose members may be named (`ActualLRPState.RUNNING`).
STATE_ENUMS: dict[str, type[enum.Enum]] = {
    name: value
    for name, value in vars(protocol.states).items()
    if inspect.isclass(value) and issubclass(value, enum.Enum) and value.__module__ == protocol.states.__name__
}

_CONSTANTS = (str, bytes, int, float, complex, bool, type(None))


def parse_message(text: str) -> Any:
    """Build the message `text` spells (see the module docstring)."""
    source = text.strip()
    if not source:
        raise MessageSyntaxError('no message given: e.g. GetApp(name="hello")')
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise MessageSyntaxError(f"not a message: {exc.msg} (column {exc.offset})") from None
    return _build(tree.body)


def _build(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, _CONSTANTS):
            return node.value
        raise MessageSyntaxError(f"{node.value!r} is not allowed in a message")
    if isinstance(node, ast.Tuple):
        return tuple(_build(e) for e in node.elts)
    if isinstance(node, ast.List):
        return [_build(e) for e in node.elts]
    if isinstance(node, ast.Set):
        return {_build(e) for e in node.elts}
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise MessageSyntaxError("'**' is not allowed in a message")
        return {_build(k): _build(v) for k, v in zip(node.keys, node.values, strict=True)}  # type: ignore[arg-type]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _build(node.operand)
        if isinstance(value, int | float | complex) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
        raise MessageSyntaxError("a sign only goes before a number")
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        owner = STATE_ENUMS.get(node.value.id)
        if owner is None:
            raise MessageSyntaxError(f"'{node.value.id}.{node.attr}': only state enums have members to name")
        try:
            return owner[node.attr]
        except KeyError:
            members = ", ".join(m.name for m in owner)
            raise MessageSyntaxError(f"{owner.__name__} has no member {node.attr!r} (one of {members})") from None
    if isinstance(node, ast.Call):
        return _call(node)
    if isinstance(node, ast.Name):
        if node.id in MESSAGE_TYPES:
            raise MessageSyntaxError(f"'{node.id}' is a message type: call it, e.g. {node.id}()")
        raise MessageSyntaxError(f"unknown name {node.id!r}: only message types, state enums and literals")
    raise MessageSyntaxError(f"{type(node).__name__.lower()} expressions are not allowed in a message")


def _call(node: ast.Call) -> Any:
    func = node.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in ("ccdb", "blobs"):
        name = f"{func.value.id}.{func.attr}"
    elif isinstance(func, ast.Name):
        name = func.id
    else:
        raise MessageSyntaxError("only message types can be called, by their name (or ccdb.X, blobs.X)")
    if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
        raise MessageSyntaxError("'*' and '**' arguments are not allowed in a message")
    args = [_build(a) for a in node.args]
    kwargs = {k.arg: _build(k.value) for k in node.keywords if k.arg is not None}  # no `**`: refused above
    if name == "frozenset" and not kwargs and len(args) <= 1:
        return frozenset(*args)
    cls = MESSAGE_TYPES.get(name)
    if cls is None:
        raise MessageSyntaxError(f"unknown message type {name!r}")
    try:
        return cls(*args, **kwargs)
    except TypeError as exc:
        raise MessageSyntaxError(f"{name}: {exc}") from None
