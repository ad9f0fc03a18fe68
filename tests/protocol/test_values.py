"""The values messages carry: frozen JSON data, counts, quotas and sizes."""

from __future__ import annotations

import json
import pickle

import pytest

from protocol.errors import AppMemoryQuotaExceeded, QuotaInstanceLimitExceeded, QuotaInstanceMemoryLimitExceeded
from protocol.lrp import ActualLRPState
from protocol.quota import UNLIMITED, QuotaDefinition
from protocol.records import AuditEvent, FrozenDict, freeze
from protocol.snapshots import InstanceCounts
from protocol.units import format_bytes, format_mb


def test_frozen_data_cannot_change_and_still_writes_as_json():
    data = freeze({"env": {"A": "1"}, "routes": ["a.example.com"]})
    assert isinstance(data["env"], FrozenDict) and data["routes"] == ("a.example.com",)
    for change in (
        lambda: data.__setitem__("x", 1),
        lambda: data["env"].update(B="2"),
        lambda: data.pop("env"),
        lambda: data.clear(),
    ):
        with pytest.raises(TypeError):
            change()
    assert json.loads(json.dumps(data)) == {"env": {"A": "1"}, "routes": ["a.example.com"]}
    assert pickle.loads(pickle.dumps(data)) == data
    assert hash(freeze({"a": [1, 2]})) == hash(freeze({"a": [1, 2]}))


def test_what_is_frozen_already_is_kept_and_what_is_not_is_frozen_deep():
    flat = FrozenDict(seq=1, t=0.5, sender="cli", step=None, ask=True)
    assert freeze(flat) is flat
    deliveries = freeze((flat, {"seq": 2}))
    assert deliveries[0] is flat and type(deliveries[1]) is FrozenDict
    # A FrozenDict holding a list is not frozen inside: freezing it is deep.
    holder = FrozenDict(routes=["a.example.com"], env={"A": "1"})
    frozen = freeze(holder)
    assert frozen == {"routes": ("a.example.com",), "env": {"A": "1"}}
    assert type(frozen["routes"]) is tuple and type(frozen["env"]) is FrozenDict


def test_an_audit_event_freezes_its_metadata():
    event = AuditEvent("audit.app.update", "admin", {"request": {"instances": 2}})  # type: ignore[arg-type]
    assert isinstance(event.metadata, FrozenDict) and isinstance(event.metadata["request"], FrozenDict)


def test_instance_counts_count_each_state_once():
    S = ActualLRPState
    counts = InstanceCounts.of([S.RUNNING, S.RUNNING, S.CLAIMED, S.CRASHED, S.UNCLAIMED])
    assert counts == InstanceCounts(running=2, starting=1, crashed=1, unclaimed=1)
    assert (counts + counts).total == 10
    assert InstanceCounts.of([]).total == 0


@pytest.mark.parametrize(
    ("quota", "ask", "error"),
    [
        (QuotaDefinition(memory_limit_mb=1024), dict(memory_mb=512, instances=2, used_memory_mb=0), None),
        (
            QuotaDefinition(memory_limit_mb=1024),
            dict(memory_mb=512, instances=2, used_memory_mb=1),
            AppMemoryQuotaExceeded,
        ),
        (QuotaDefinition(memory_limit_mb=UNLIMITED), dict(memory_mb=10**6, instances=100, used_memory_mb=0), None),
        (
            QuotaDefinition(instance_memory_limit_mb=256),
            dict(memory_mb=512, instances=1, used_memory_mb=0),
            QuotaInstanceMemoryLimitExceeded,
        ),
        (
            QuotaDefinition(app_instance_limit=3),
            dict(memory_mb=1, instances=2, used_memory_mb=0, used_instances=2),
            QuotaInstanceLimitExceeded,
        ),
    ],
)
def test_a_quota_refuses_only_what_would_go_over_it(quota, ask, error):
    ask.setdefault("used_instances", 0)
    if error is None:
        quota.check(**ask)
    else:
        with pytest.raises(error):
            quota.check(**ask)


@pytest.mark.parametrize(
    ("size", "shown"),
    [(0, "0B"), (512, "512B"), (1024, "1K"), (1229, "1.2K"), (47_395_635, "45.2M"), (1 << 30, "1G")],
)
def test_byte_sizes_are_written_as_cf_writes_them(size, shown):
    assert format_bytes(size) == shown


@pytest.mark.parametrize(("mb", "shown"), [(256, "256M"), (1024, "1G"), (1536, "1.5G"), (31.25, "31.2M")])
def test_memory_sizes_are_written_as_cf_writes_them(mb, shown):
    assert format_mb(mb) == shown
