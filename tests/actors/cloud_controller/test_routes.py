"""Routes are Cloud Controller's to compute: the default route is the app's
name as a host, the same whether or not the push had a manifest."""

from __future__ import annotations

import shutil

import pytest

from tests.actors.conftest import EXAMPLES, db, line_starting, run

pytestmark = pytest.mark.anyio


async def _routes(platform, name: str) -> tuple[str, ...]:
    app = await db(platform, "find_app", name=name)
    assert app is not None
    return tuple(app.routes)


async def test_a_push_without_a_manifest_maps_the_name_as_a_hostname(platform):
    code, lines = await run(platform, "push", "My_App", "-p", str(EXAMPLES / "python"))
    assert code == 0, "\n".join(lines)
    assert await _routes(platform, "My_App") == ("my-app.apps.internal",)
    assert line_starting(lines, "routes:").split() == ["routes:", "my-app.apps.internal"]


async def test_a_manifest_without_routes_gets_the_same_default_route(platform, tmp_path):
    src = tmp_path / "app"
    shutil.copytree(EXAMPLES / "python", src)
    (src / "manifest.yml").write_text("applications:\n- name: My_App\n  memory: 64M\n")
    code, lines = await run(platform, "push", "-f", str(src / "manifest.yml"))
    assert code == 0, "\n".join(lines)
    assert await _routes(platform, "My_App") == ("my-app.apps.internal",)


async def test_routes_no_route_and_random_route_are_honoured(platform, tmp_path):
    src = tmp_path / "app"
    shutil.copytree(EXAMPLES / "python", src)
    (src / "manifest.yml").write_text(
        "applications:\n- name: a\n  memory: 64M\n  routes:\n  - route: shop.example.com\n"
        "- name: b\n  memory: 64M\n  no-route: true\n"
        "- name: c\n  memory: 64M\n  random-route: true\n"
    )
    code, lines = await run(platform, "push", "-f", str(src / "manifest.yml"))
    assert code == 0, "\n".join(lines)
    assert await _routes(platform, "a") == ("shop.example.com",)
    assert await _routes(platform, "b") == ()
    [random_route] = await _routes(platform, "c")
    assert random_route.startswith("c-") and random_route.endswith(".apps.internal")
    assert random_route != "c.apps.internal"
