"""Every storage operation in `protocol` is carried out by its actor, with
the message's fields as the store method's arguments, and says on its type
whether it is safe to send twice."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from actors.blobstore.actor import BlobStoreActor
from actors.ccdb.actor import CCDBActor
from protocol import blobs, ccdb


def _operations(module, base) -> list[type]:
    return [
        cls
        for name in module.__all__
        if isinstance(cls := getattr(module, name), type) and issubclass(cls, base) and not name.startswith("_")
        if cls is not base
    ]


def _concrete(module, base) -> list[type]:
    # The operations a user can send: those with no subclasses of their own.
    return [cls for cls in _operations(module, base) if not cls.__subclasses__()]


@pytest.mark.parametrize("op", _concrete(ccdb, ccdb.CCDBOperation), ids=lambda c: c.__name__)
def test_each_ccdb_operation_has_a_store_method_taking_its_fields(op):
    method = CCDBActor.OPERATIONS.get(op)
    assert method is not None, f"CCDBActor carries out no {op.__name__}"
    params = inspect.signature(method).parameters
    fields = [f.name for f in dataclasses.fields(op) if f.name != "step" and not (f.name == "now" and not op.STAMPED)]
    # `changes` (UpdateApp, UpdatePackage) is spread into keyword arguments.
    takes_changes = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    missing = [f for f in fields if f not in params and not (f == "changes" and takes_changes)]
    assert not missing, f"{method.__qualname__} takes no {missing}"
    required = [
        n
        for n, p in params.items()
        if n != "self" and p.default is inspect.Parameter.empty and p.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    assert set(required) <= set(fields), f"{op.__name__} lacks {set(required) - set(fields)}"


@pytest.mark.parametrize("op", _concrete(ccdb, ccdb.CCDBOperation), ids=lambda c: c.__name__)
def test_reads_are_safe_to_resend_and_writes_are_not(op):
    write = op.STAMPED
    assert op.RETRY_SAFE is not write
    name = op.__name__
    if name.startswith(("Get", "List", "Find", "Latest", "Current", "Count", "Referenced", "BlobKeys")):
        assert op.RETRY_SAFE, f"{name} reads, so is safe to send again"
    if name.startswith(("Create", "Update", "Delete", "Finish", "Fail", "Record", "Save", "Expire")):
        assert not op.RETRY_SAFE, f"{name} writes, so is not safe to send again"


@pytest.mark.parametrize("op", _concrete(blobs, blobs.BlobOperation), ids=lambda c: c.__name__)
def test_each_blob_operation_is_carried_out_by_the_blob_store_actor(op):
    handled = op in BlobStoreActor.OPERATIONS or op in BlobStoreActor._handlers
    assert handled, f"BlobStoreActor carries out no {op.__name__}"


def test_an_operation_names_its_label_from_its_type():
    assert ccdb.FindApp("x").label == "db.find_app"
    assert ccdb.FindApp("x", step=2).arguments() == {"name": "x"}
