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
    assert await _routes(platform, "My_App") == ("my_app.apps.internal",)
    assert line_starting(lines, "routes:").split() == ["routes:", "my_app.apps.internal"]


async def test_a_manifest_without_routes_gets_the_same_default_route(platform, tmp_path):
    src = tmp_path / "app"
    shutil.copytree(EXAMPLES / "python", src)
    (src / "manifest.yml").write_text("applications:\n- name: My_App\n  memory: 64M\n")
    code, lines = await run(platform, "push", "-f", str(src / "manifest.yml"))
    assert code == 0, "\n".join(lines)
    assert await _routes(platform, "My_App") == ("my_app.apps.internal",)


async def test_a_name_that_cannot_be_a_host_fails_the_push_unless_it_needs_no_default_route(platform):
    # Cloud Controller's words; it does not rewrite the name into a host.
    code, lines = await run(platform, "push", "a.b", "-p", str(EXAMPLES / "static"), "-m", "64M")
    assert code == 1
    assert any('Failed to create default route from app name: Host must be either "*"' in line for line in lines)
    code, lines = await run(platform, "app", "a.b")
    assert code == 1  # nothing was created
    code, lines = await run(platform, "push", "a.b", "-p", str(EXAMPLES / "static"), "-m", "64M", "--no-route")
    assert code == 0, "\n".join(lines)
    assert await _routes(platform, "a.b") == ()


async def test_a_plain_push_maps_the_default_route_only_to_an_app_with_none(platform):
    static = str(EXAMPLES / "static")
    code, lines = await run(platform, "push", "web", "-p", static, "-m", "64M", "--no-route")
    assert code == 0 and await _routes(platform, "web") == ()
    # Pushed again without route flags: it had none, so it gets the default.
    code, lines = await run(platform, "push", "web", "-p", static, "-m", "64M")
    assert code == 0 and await _routes(platform, "web") == ("web.apps.internal",)
    # A random route is only for an app with none: it keeps the one it has.
    code, lines = await run(platform, "push", "web", "-p", static, "-m", "64M", "--random-route")
    assert code == 0 and await _routes(platform, "web") == ("web.apps.internal",)
    code, lines = await run(platform, "push", "web", "-p", static, "-m", "64M", "--no-route")
    assert code == 0 and await _routes(platform, "web") == ()


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


async def test_routes_a_manifest_lists_are_mapped_beside_the_ones_the_app_has(platform, tmp_path):
    src = tmp_path / "app"
    shutil.copytree(EXAMPLES / "static", src)
    manifest = src / "manifest.yml"
    manifest.write_text("applications:\n- name: shop\n  memory: 64M\n  routes:\n  - route: a.example.com\n")
    code, lines = await run(platform, "push", "-f", str(manifest))
    assert code == 0, "\n".join(lines)
    manifest.write_text("applications:\n- name: shop\n  memory: 64M\n  routes:\n  - route: b.example.com\n")
    code, lines = await run(platform, "push", "-f", str(manifest))
    assert code == 0, "\n".join(lines)
    # As Cloud Controller's manifest route update: mapped beside, nothing unmapped.
    assert await _routes(platform, "shop") == ("a.example.com", "b.example.com")


async def test_delete_leaves_the_routes_and_delete_r_deletes_them(platform):
    from protocol.messages import ListRoutes

    static = str(EXAMPLES / "static")
    for name in ("kept", "gone"):
        code, lines = await run(platform, "push", name, "-p", static, "-m", "64M")
        assert code == 0, "\n".join(lines)
    code, _ = await run(platform, "delete", "kept", "-f")
    assert code == 0
    code, _ = await run(platform, "delete", "gone", "-f", "-r")
    assert code == 0
    routes = dict(await platform.system.ask("cloud_controller", ListRoutes()))
    assert routes.get("kept.apps.internal") == ()  # an orphan, as Cloud Foundry leaves it
    assert "gone.apps.internal" not in routes


async def test_a_push_and_a_map_route_at_once_both_keep_their_routes(platform):
    import asyncio

    from protocol.manifest import AppSpec
    from protocol.messages import CreateOrUpdateApp, GetApp, MapRoute

    code, lines = await run(platform, "push", "web", "-p", str(EXAMPLES / "static"), "-m", "64M")
    assert code == 0, "\n".join(lines)
    app = await platform.system.ask("cloud_controller", GetApp("web"))
    push = CreateOrUpdateApp(AppSpec(name="web", routes=("x.example.com",)), frozenset({"routes"}), default_route=True)
    await asyncio.gather(
        platform.system.ask("cloud_controller", push),
        platform.system.ask("cloud_controller", MapRoute(app.guid, "y.example.com")),
    )
    assert set(await _routes(platform, "web")) == {"web.apps.internal", "x.example.com", "y.example.com"}


async def test_delete_r_deletes_routes_in_any_spelling_and_refuses_a_shared_one(platform, tmp_path):
    from protocol.messages import ListRoutes

    src = tmp_path / "app"
    shutil.copytree(EXAMPLES / "static", src)
    manifest = src / "manifest.yml"
    manifest.write_text(
        "applications:\n- name: a\n  memory: 64M\n  routes:\n  - route: Shop.Example.com\n  - route: shop.example.com:8080\n"
        "- name: b\n  memory: 64M\n  routes:\n  - route: shared.example.com\n"
        "- name: c\n  memory: 64M\n  routes:\n  - route: shared.example.com\n"
    )
    code, lines = await run(platform, "push", "-f", str(manifest))
    assert code == 0, "\n".join(lines)
    code, lines = await run(platform, "delete", "a", "-f", "-r")
    assert code == 0, "\n".join(lines)
    routes = dict(await platform.system.ask("cloud_controller", ListRoutes()))
    assert not {"Shop.Example.com", "shop.example.com:8080"} & set(routes), routes
    # As cf v8: a route another app has stops the whole delete.
    code, lines = await run(platform, "delete", "b", "-f", "-r")
    assert code == 1
    assert "App 'b' was not deleted because route 'shared.example.com' is mapped to more than one app." in lines
    assert await _routes(platform, "b") == ("shared.example.com",)
    assert await _routes(platform, "c") == ("shared.example.com",)


async def test_no_route_unmaps_the_routes_and_leaves_them_as_orphans(platform):
    from protocol.messages import DeleteRoute, ListRoutes

    static = str(EXAMPLES / "static")
    code, _ = await run(platform, "push", "web", "-p", static, "-m", "64M")
    assert code == 0
    code, _ = await run(platform, "push", "web", "-p", static, "-m", "64M", "--no-route")
    assert code == 0
    assert dict(await platform.system.ask("cloud_controller", ListRoutes())) == {"web.apps.internal": ()}
    # delete-orphaned-routes deletes only what is still unmapped when it gets there.
    code, _ = await run(platform, "push", "web", "-p", static, "-m", "64M")
    assert code == 0
    deleted = await platform.system.ask("cloud_controller", DeleteRoute("web.apps.internal", only_if_unmapped=True))
    assert deleted is False and await _routes(platform, "web") == ("web.apps.internal",)


async def test_unmapped_routes_are_kept_in_ccdb_and_outlive_a_cloud_controller_restart(platform):
    import asyncio

    from protocol import ccdb
    from protocol.messages import ListRoutes

    static = str(EXAMPLES / "static")
    for argv in (("push", "web", "-p", static, "-m", "64M"), ("push", "web", "-p", static, "-m", "64M", "--no-route")):
        code, _ = await run(platform, *argv)
        assert code == 0
    assert await platform.system.ask("ccdb", ccdb.ListUnmappedRoutes()) == ["web.apps.internal"]
    assert platform.faults.kill("cloud_controller")
    for _ in range(200):  # its supervisor restarts it
        await platform.clock.advance(0.5)
        if platform.system.lookup("cloud_controller") is not None:
            break
    await asyncio.sleep(0)
    assert dict(await platform.system.ask("cloud_controller", ListRoutes())) == {"web.apps.internal": ()}
    # Mapped again by a push, it is no orphan any more.
    code, _ = await run(platform, "push", "web", "-p", static, "-m", "64M")
    assert code == 0
    assert await platform.system.ask("ccdb", ccdb.ListUnmappedRoutes()) == []
