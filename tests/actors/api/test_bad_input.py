"""Bad input over HTTP gets Cloud Controller's error and changes nothing:
malformed JSON and YAML, unknown fields, hostile or broken zips, uploads
twice, builds of packages that are not ready, names that do not exist."""

from __future__ import annotations

import io
import stat
import zipfile

import pytest

from actors.platform import Platform
from protocol import blobs, ccdb
from tests.actors.api.conftest import app_zip, example_files, multipart

pytestmark = pytest.mark.anyio


async def _space(api) -> str:
    _, spaces, _ = await api.call("GET", "/v3/spaces")
    return spaces["resources"][0]["guid"]


async def _app(api, name="hello") -> str:
    space = await _space(api)
    manifest = f"applications:\n- name: {name}\n  memory: 64M\n  default-route: true\n".encode()  # as cf v8 sends it
    status, _, _ = await api.call(
        "POST", f"/v3/spaces/{space}/actions/apply_manifest", raw=manifest, ctype="application/x-yaml"
    )
    assert status == 202
    _, apps, _ = await api.call("GET", f"/v3/apps?names={name}")
    return apps["resources"][0]["guid"]


async def _package(api, app_guid) -> str:
    status, package, _ = await api.call(
        "POST", "/v3/packages", body={"type": "bits", "relationships": {"app": {"data": {"guid": app_guid}}}}
    )
    assert status == 201
    return package["guid"]


async def _upload(api, package_guid, zipped, matched=()):
    form = multipart(list(matched), zipped)
    async with api.session.post(f"{api.base}/v3/packages/{package_guid}/upload", data=form, headers=api.auth) as r:
        return r.status, await r.json()


async def _stored(platform: Platform) -> tuple:
    return (
        tuple(await platform.system.ask("blobstore", blobs.ListBlobKeys())),
        await platform.system.ask("ccdb", ccdb.CountRows()),
    )


def _error(body) -> tuple[int, str]:
    [error] = body["errors"]
    return error["code"], error["title"]


async def test_malformed_json_is_a_message_parse_error(api):
    for raw in (b"{not json", b"[1, 2]", b"\xff\xfe"):
        status, body, _ = await api.call("POST", "/v3/packages", raw=raw, ctype="application/json")
        assert (status, _error(body)) == (400, (1001, "CF-MessageParseError")), raw


async def test_manifests_that_are_not_yaml_or_not_valid_are_refused_and_create_nothing(api):
    space = await _space(api)
    before = await _stored(api.platform)
    path = f"/v3/spaces/{space}/actions/apply_manifest"
    status, body, _ = await api.call("POST", path, raw=b"applications: []", ctype="application/json")
    assert (status, body["errors"][0]["detail"]) == (400, "Bad request: Content-Type must be yaml")
    for manifest, status_error in (
        # As CC's parsed_yaml: YAML that is not a mapping is a parse error,
        # anchors and aliases a bad request; then the apps are checked.
        (b"applications: [ {name: a", (400, (1001, "CF-MessageParseError"))),  # broken YAML
        (b"- a\n- b\n", (400, (1001, "CF-MessageParseError"))),  # a list
        (b"just words\n", (400, (1001, "CF-MessageParseError"))),  # a scalar
        (b"", (400, (1001, "CF-MessageParseError"))),
        (b"a: &x [*x, *x]\n", (400, (1004, "CF-BadRequest"))),  # an alias
        (b"base: &b {memory: 64M}\napplications:\n- name: a\n  <<: *b\n", (400, (1004, "CF-BadRequest"))),
        (b"applications:\n- name: a\n  memory: lots\n", (422, (10008, "CF-UnprocessableEntity"))),  # a bad value
        (b'applications:\n- name: "tab\\tname"\n', (422, (10008, "CF-UnprocessableEntity"))),  # a bad name
        (b"applications:\n- name: a\n  instances: -1\n", (422, (10008, "CF-UnprocessableEntity"))),
        (b"version: 2\napplications:\n- name: a\n", (422, (10008, "CF-UnprocessableEntity"))),
    ):
        status, body, _ = await api.call("POST", path, raw=manifest, ctype="application/x-yaml")
        assert (status, _error(body)) == status_error, manifest
    status, body, _ = await api.call("POST", path, raw=b"version: 2\napplications:\n- name: a\n", ctype="text/yaml")
    assert body["errors"][0]["detail"] == "Unsupported manifest schema version. Currently supported versions: [1]."
    status, body, _ = await api.call("POST", path, raw=b"x" * (1024 * 1024 + 1), ctype="application/x-yaml")
    assert status == 400 and "too large" in body["errors"][0]["detail"]
    assert await _stored(api.platform) == before


async def test_a_manifest_the_platform_refuses_fails_its_job_with_the_reason(api):
    space = await _space(api)
    manifest = b"applications:\n- name: big\n  memory: 1G\n  instances: 100000\n"
    status, _, headers = await api.call(
        "POST", f"/v3/spaces/{space}/actions/apply_manifest", raw=manifest, ctype="application/x-yaml"
    )
    assert status == 202
    _, job, _ = await api.call("GET", headers["Location"])
    assert job["state"] == "FAILED"
    assert job["errors"][0]["detail"].startswith("For application 'big': ")
    _, apps, _ = await api.call("GET", "/v3/apps?names=big")
    assert apps["resources"] == []


async def test_unknown_scale_fields_and_absurd_numbers_are_unprocessable(api):
    guid = await _app(api)
    for body in ({"instances": 2, "color": "red"}, {"instances": -1}, {"instances": "2"}, {"memory_in_mb": 2**40}):
        status, error, _ = await api.call("POST", f"/v3/apps/{guid}/processes/web/actions/scale", body=body)
        assert (status, _error(error)) == (422, (10008, "CF-UnprocessableEntity")), body
    _, process, _ = await api.call("GET", f"/v3/processes/{guid}")
    assert process["instances"] == 1


async def test_names_that_do_not_exist_are_not_found_in_the_words_cf_matches(api):
    for path, detail in (
        ("/v3/apps/nope", "App not found"),
        ("/v3/droplets/nope", "Droplet not found"),
        ("/v3/processes/nope", "Process not found"),
        ("/v3/packages/nope", "Package not found"),
        ("/v3/builds/nope", "Build not found"),
        ("/v3/jobs/nope", "Job not found"),
    ):
        status, body, _ = await api.call("GET", path)
        assert (status, body["errors"][0]["detail"]) == (404, detail), path
    status, body, _ = await api.call("GET", "/v3/no-such-thing")
    assert (status, body["errors"][0]) == (404, {"detail": "Unknown request", "title": "CF-NotFound", "code": 10000})
    guid = await _app(api)
    status, body, _ = await api.call("GET", f"/v3/apps/{guid}/droplets/current")
    assert (status, body["errors"][0]["detail"]) == (404, "Droplet not found")
    status, body, _ = await api.call("POST", f"/v3/apps/{guid}/actions/start")
    assert (status, body["errors"][0]["detail"]) == (422, "Assign a droplet before starting this app.")


async def test_a_package_takes_its_bits_once_and_a_build_wants_them_first(api):
    guid = await _app(api)
    package = await _package(api, guid)
    status, body, _ = await api.call("POST", "/v3/builds", body={"package": {"guid": package}})
    assert (status, body["errors"][0]) == (
        400,
        {
            "detail": "Bad request: Cannot stage package whose state is not ready.",
            "title": "CF-BadRequest",
            "code": 1004,
        },
    )
    status, body = await _upload(api, package, app_zip(example_files()))
    assert (status, body["state"]) == (200, "READY")
    status, body = await _upload(api, package, app_zip(example_files()))
    assert (status, _error(body)) == (400, (150004, "CF-PackageBitsAlreadyUploaded"))
    assert (
        body["errors"][0]["detail"] == "Bits may be uploaded only once. Create a new package to upload different bits."
    )


def _zip_with(entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for info, data in entries:
            z.writestr(info, data)
    return buf.getvalue()


def _symlink(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


def _bomb() -> bytes:
    """A small zip that claims, and holds, more than one file may be (256 MB of zeros)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        with z.open("big.bin", "w", force_zip64=True) as out:
            chunk = bytes(1 << 20)
            for _ in range(257):
                out.write(chunk)
    return buf.getvalue()


@pytest.mark.parametrize(
    "zipped",
    [
        _zip_with([("../escape.txt", b"x"), ("app.py", b"print(1)")]),
        _zip_with([("/etc/passwd", b"x")]),
        _zip_with([_symlink("link", "../../etc/passwd"), ("app.py", b"print(1)")]),
        _zip_with([_symlink("link", "/etc/passwd")]),
        _zip_with([("a", b"1"), ("a/b", b"2")]),
        b"PK\x03\x04 this is not a zip",
        b"plain bytes",
    ],
    ids=["dotdot", "absolute", "symlink-out", "symlink-absolute", "file-and-dir", "truncated", "not-a-zip"],
)
async def test_a_hostile_or_broken_zip_is_refused_and_the_package_still_waits_for_its_bits(api, zipped):
    guid = await _app(api)
    package = await _package(api, guid)
    before = await _stored(api.platform)
    status, body = await _upload(api, package, zipped)
    assert (status, _error(body)) == (400, (160001, "CF-AppBitsUploadInvalid")), body
    assert await _stored(api.platform) == before
    _, shown, _ = await api.call("GET", f"/v3/packages/{package}")
    assert shown["state"] == "AWAITING_UPLOAD"
    status, body = await _upload(api, package, app_zip(example_files()))
    assert (status, body["state"]) == (200, "READY")


async def test_a_zip_bomb_is_refused_by_the_size_it_unpacks_to(api):
    guid = await _app(api)
    package = await _package(api, guid)
    zipped = _bomb()
    assert len(zipped) < 2 * 1024 * 1024
    status, body = await _upload(api, package, zipped)
    assert (status, _error(body)) == (400, (160001, "CF-AppBitsUploadInvalid"))
    assert "limit" in body["errors"][0]["detail"]


async def test_bad_resource_lists_are_unprocessable(api):
    guid = await _app(api)
    package = await _package(api, guid)
    for matched in ([{"path": "a", "checksum": {"value": "zz"}, "size_in_bytes": 1}], [{"path": "a"}], ["x"]):
        status, body = await _upload(api, package, None, matched)
        assert (status, _error(body)) == (422, (10008, "CF-UnprocessableEntity")), matched
    missing = [{"path": "a.py", "mode": "644", "checksum": {"value": "a" * 40}, "size_in_bytes": 3}]
    status, body = await _upload(api, package, None, missing)
    assert status >= 400
    _, shown, _ = await api.call("GET", f"/v3/packages/{package}")
    assert shown["state"] == "AWAITING_UPLOAD"
    for body in ({"resources": "x"}, {"resources": [{"checksum": {"value": "nope"}, "size_in_bytes": 1}]}):
        status, error, _ = await api.call("POST", "/v3/resource_matches", body=body)
        assert status == 422
