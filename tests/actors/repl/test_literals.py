"""Reading a protocol message typed after `send ACTOR`, without eval."""

from __future__ import annotations

import pytest

from actors.repl.literals import MESSAGE_TYPES, MessageSyntaxError, parse_message
from protocol.lrp import DesiredLRP
from protocol.messages import BBSSnapshot, DesireLRP, GetApp, GetEvents, ScaleApp
from protocol.states import HealthCheckType


def test_a_message_with_keyword_fields_is_built():
    assert parse_message('GetApp(name="hello")') == GetApp("hello")


def test_positional_fields_numbers_and_none_are_read():
    assert parse_message("ScaleApp('guid-1', 3, None, -1)") == ScaleApp("guid-1", 3, None, -1)
    assert parse_message("GetEvents(app_guid='g', limit=+5)") == GetEvents("g", 5)


def test_a_message_without_fields_is_built():
    assert parse_message("  BBSSnapshot()  ") == BBSSnapshot()


def test_records_nest_and_state_enum_members_can_be_named():
    message = parse_message(
        "DesireLRP(DesiredLRP(process_guid='p', app_guid='a', app_name='x', instances=1, memory_mb=64,"
        " disk_mb=64, droplet_key=None, start_command='run', health_check_type=HealthCheckType.HTTP,"
        " env=(('A', '1'),), placement_tags=frozenset({'gpu'})))"
    )
    assert isinstance(message, DesireLRP)
    assert isinstance(message.lrp, DesiredLRP)
    assert message.lrp.health_check_type is HealthCheckType.HTTP
    assert message.lrp.placement_tags == frozenset({"gpu"})


def test_message_types_come_from_the_protocol_modules():
    assert {"GetApp", "BBSSnapshot", "DesiredLRP", "LRPStartRequest", "CellState"} <= set(MESSAGE_TYPES)
    assert all(cls.__module__.startswith("protocol.") for cls in MESSAGE_TYPES.values())


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("__import__('os').system('true')", "only message types"),
        ("open('/etc/passwd')", "unknown message type 'open'"),
        ("GetApp(name=os.name)", "only state enums"),
        ("GetApp(name='a' + 'b')", "not allowed"),
        ("GetApp(**{'name': 'x'})", "'**'"),
        ("GetApp(*['x'])", "'*'"),
        ("GetApp", "is a message type: call it"),
        ("lambda: 1", "not allowed"),
        ("GetApp(name=[x for x in 'ab'])", "not allowed"),
        ("GetApp(name=", "not a message"),
        ("", "no message given"),
        ("GetApp(nom='x')", "GetApp:"),
        ("HealthCheckType.NOPE", "has no member 'NOPE'"),
        ("GetApp(name=-'x')", "a sign only goes before a number"),
    ],
)
def test_anything_but_messages_and_literals_is_refused_with_a_reason(text, why):
    with pytest.raises(MessageSyntaxError, match=why.replace("(", r"\(").replace("*", r"\*")):
        parse_message(text)
