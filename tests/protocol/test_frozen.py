"""`fast_init`: the same frozen dataclass, built faster."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from protocol.frozen import fast_init


@dataclasses.dataclass(frozen=True, slots=True)
class _Base:
    name: str


def _pair(**extra):
    """The same class twice: with dataclass's own __init__, and with fast_init's."""

    def make():
        @dataclasses.dataclass(frozen=True, slots=True)
        class Message(_Base):
            count: int
            tags: frozenset[str] = frozenset()
            ratio: float = 0.5

            def __post_init__(self) -> None:
                if self.count < 0:
                    raise ValueError("count must not be negative")
                if type(self.tags) is not frozenset:
                    object.__setattr__(self, "tags", frozenset(self.tags))

        return Message

    return make(), fast_init(make())


def test_a_fast_built_message_is_the_message_dataclass_would_build():
    slow, fast = _pair()
    for args, kwargs in (
        (("a", 1), {}),
        (("a", 2, {"x"}), {}),
        ((), {"name": "b", "count": 3, "ratio": 2.0}),
        (("c",), {"count": 4, "tags": ["y", "z"]}),
    ):
        s, f = slow(*args, **kwargs), fast(*args, **kwargs)
        assert [getattr(s, x.name) for x in dataclasses.fields(s)] == [
            getattr(f, x.name) for x in dataclasses.fields(f)
        ]
        assert repr(s).split("(", 1)[1] == repr(f).split("(", 1)[1]
        assert hash(f) == hash(fast(*args, **kwargs)) and f == fast(*args, **kwargs)
    assert str(inspect.signature(slow)) == str(inspect.signature(fast))
    assert fast.__init__ is not slow.__init__


def test_a_fast_built_message_is_still_frozen_validated_and_strict_about_arguments():
    _, fast = _pair()
    message = fast("a", 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.count = 2
    with pytest.raises(ValueError, match="negative"):
        fast("a", -1)
    with pytest.raises(TypeError):
        fast("a")  # count is required
    with pytest.raises(TypeError):
        fast("a", 1, nope=2)


@pytest.mark.parametrize(
    "make",
    [
        lambda: dataclasses.dataclass(slots=True)(type("Mutable", (), {"__annotations__": {"a": int}})),
        lambda: dataclasses.dataclass(frozen=True)(type("NoSlots", (), {"__annotations__": {"a": int}})),
        lambda: dataclasses.dataclass(frozen=True, slots=True, kw_only=True)(
            type("KwOnly", (), {"__annotations__": {"a": int}})
        ),
        lambda: dataclasses.dataclass(frozen=True, slots=True)(
            type("Factory", (), {"__annotations__": {"a": list}, "a": dataclasses.field(default_factory=list)})
        ),
        lambda: type("Plain", (), {"__slots__": ("a",)}),
    ],
    ids=["not frozen", "no slots", "keyword-only", "default factory", "not a dataclass"],
)
def test_fast_init_refuses_a_class_it_would_change(make):
    with pytest.raises(TypeError, match="fast_init"):
        fast_init(make())


def test_the_platforms_hot_messages_are_built_by_fast_init():
    from protocol.auction import LRPStartRequest, Placement, TaskRequest
    from protocol.messages import InstancesStarted, InstanceStarted, LogLine

    for cls in (LRPStartRequest, TaskRequest, Placement, InstanceStarted, InstancesStarted, LogLine):
        assert cls.__init__.__code__.co_filename == "<string>" and "_s0" in cls.__init__.__code__.co_names, cls
    with pytest.raises(ValueError, match="negative"):
        LRPStartRequest("p", -1, 1, 1)
    assert LRPStartRequest("p", 0, 1, 1, placement_tags=["t"]).placement_tags == frozenset({"t"})
