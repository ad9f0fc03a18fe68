from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from actors.cli.push_spec import apply_flags
from actors.manifest import load_manifest, parse_manifest
from protocol.errors import InvalidAppName, InvalidManifest, PathNotFound
from protocol.manifest import AppSpec, default_route, parse_size_mb, validate_app_name
from protocol.states import HealthCheckType


def parse(text: str, **kwargs):
    return parse_manifest(textwrap.dedent(text), **kwargs)


def one(text: str, **kwargs) -> AppSpec:
    (spec,) = parse(text, **kwargs).apps
    return spec


# --- defaults and keys -----------------------------------------------------------


def test_a_minimal_manifest_gets_cloud_foundry_defaults():
    spec = one("applications:\n- name: hello\n")
    assert spec == AppSpec(
        name="hello",
        path=None,
        memory_mb=1024,
        disk_mb=1024,
        instances=1,
        buildpacks=(),
        command=None,
        stack="cflinuxfs4",
        health_check_type=HealthCheckType.PORT,
        health_check_http_endpoint=None,
        timeout_s=60,
        env=(),
        routes=(),  # none listed: Cloud Controller maps the default route
        no_route=False,
        random_route=False,
    )


def test_every_documented_key_is_read():
    spec = one(
        """
        applications:
        - name: hello
          memory: 256M
          disk_quota: 2G
          instances: 3
          buildpacks: [nodejs_buildpack, python_buildpack]
          command: python app.py
          stack: cflinuxfs3
          health-check-type: http
          health-check-http-endpoint: /health
          timeout: 120
          env: {GREETING: hi}
          routes:
          - route: hello.example.com
          - route: hello.example.com/api
        """
    )
    assert spec.memory_mb == 256
    assert spec.disk_mb == 2048
    assert spec.instances == 3
    assert spec.buildpacks == ("nodejs_buildpack", "python_buildpack")
    assert spec.command == "python app.py"
    assert spec.stack == "cflinuxfs3"
    assert spec.health_check_type is HealthCheckType.HTTP
    assert spec.health_check_http_endpoint == "/health"
    assert spec.timeout_s == 120
    assert spec.env == (("GREETING", "hi"),)
    assert spec.routes == ("hello.example.com", "hello.example.com/api")


def test_hyphen_and_underscore_spellings_are_the_same_key():
    hyphen = one("applications:\n- name: a\n  disk-quota: 512M\n  health-check-type: process\n")
    underscore = one("applications:\n- name: a\n  disk_quota: 512M\n  health_check_type: process\n")
    assert hyphen == underscore
    assert hyphen.disk_mb == 512


def test_both_spellings_of_one_key_in_one_app_are_refused():
    with pytest.raises(InvalidManifest, match="disk-quota.*disk_quota|disk_quota.*disk-quota"):
        parse("applications:\n- name: a\n  disk-quota: 1G\n  disk_quota: 2G\n")


def test_applications_keep_their_file_order():
    manifest = parse("applications:\n- name: b\n- name: a\n")
    assert [s.name for s in manifest.apps] == ["b", "a"]
    assert manifest.app("a").name == "a"


def test_asking_for_an_app_the_manifest_lacks_is_invalid_manifest():
    with pytest.raises(InvalidManifest, match="nope"):
        parse("applications:\n- name: a\n").app("nope")


def test_the_same_app_twice_is_refused():
    with pytest.raises(InvalidManifest, match="more than once"):
        parse("applications:\n- name: a\n- name: a\n")


# --- sizes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "mb"),
    [("256M", 256), ("256MB", 256), ("1G", 1024), ("1GB", 1024), ("512m", 512), ("2gb", 2048), ("1T", 1048576)],
)
def test_sizes_take_m_mb_g_gb_in_any_case(text, mb):
    assert parse_size_mb(text) == mb
    assert one(f"applications:\n- name: a\n  memory: {text}\n").memory_mb == mb


def test_memory_lots_is_invalid_and_names_the_app_and_key():
    with pytest.raises(InvalidManifest) as info:
        parse("applications:\n- name: hello\n  memory: lots\n")
    message = str(info.value)
    assert "hello" in message
    assert "memory" in message
    assert "Memory must be an integer with a unit of measurement like M, MB, G, or GB" in message


@pytest.mark.parametrize("value", ["256", "0M", "1.5G", "-1G", "M", "256 KB"])
def test_a_size_without_a_whole_positive_number_and_unit_is_invalid(value):
    with pytest.raises(InvalidManifest, match="disk_quota"):
        parse(f"applications:\n- name: a\n  disk_quota: '{value}'\n")


def test_a_bare_number_for_memory_is_invalid():
    with pytest.raises(InvalidManifest, match="memory"):
        parse("applications:\n- name: a\n  memory: 256\n")


# --- malformed manifests -------------------------------------------------------------


def test_a_yaml_syntax_error_is_invalid_manifest():
    with pytest.raises(InvalidManifest, match="not valid YAML"):
        parse("applications:\n- name: [unclosed\n")


@pytest.mark.parametrize("text", ["- name: a\n", "just a string\n", "", "42\n"])
def test_a_top_level_that_is_not_a_mapping_is_invalid(text):
    with pytest.raises(InvalidManifest, match="mapping"):
        parse_manifest(text)


@pytest.mark.parametrize("text", ["version: 1\n", "applications: []\n", "applications: hello\n"])
def test_a_manifest_without_applications_is_invalid(text):
    with pytest.raises(InvalidManifest, match="applications"):
        parse_manifest(text)


def test_an_application_without_a_name_is_invalid():
    with pytest.raises(InvalidManifest, match="no name"):
        parse("applications:\n- memory: 256M\n")


def test_an_application_that_is_not_a_mapping_is_invalid():
    with pytest.raises(InvalidManifest, match="#1"):
        parse("applications:\n- hello\n")


def test_an_invalid_app_name_raises_invalid_app_name():
    with pytest.raises(InvalidAppName):
        parse('applications:\n- name: "hello\\tworld"\n')


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("instances", "'2'"),
        ("instances", "-1"),
        ("instances", "true"),
        ("command", "[python, app.py]"),
        ("stack", "''"),
        ("timeout", "0"),
        ("timeout", "181"),
        ("timeout", "'60'"),
        ("no-route", "'yes'"),
        ("random-route", "1"),
        ("buildpacks", "python_buildpack"),
        ("buildpack", "[python]"),
        ("env", "[A, B]"),
        ("routes", "hello.example.com"),
        ("path", "''"),
    ],
)
def test_a_value_of_the_wrong_type_or_range_is_invalid_and_names_the_key(key, value):
    with pytest.raises(InvalidManifest, match=key):
        parse(f"applications:\n- name: hello\n  {key}: {value}\n")


# --- warnings ------------------------------------------------------------------------


def test_an_unknown_key_is_a_warning_not_an_error():
    manifest = parse("applications:\n- name: hello\n  memroy: 256M\n")
    assert manifest.apps[0].memory_mb == 1024
    assert manifest.warnings == ("Application 'hello': unknown key 'memroy' ignored",)


def test_an_unknown_top_level_key_is_a_warning():
    manifest = parse("applications:\n- name: hello\nvariables: {}\n")
    assert len(manifest.warnings) == 1
    assert "variables" in manifest.warnings[0]


def test_the_legacy_buildpack_key_works_and_warns_that_it_is_deprecated():
    manifest = parse("applications:\n- name: a\n  buildpack: python_buildpack\n")
    assert manifest.apps[0].buildpacks == ("python_buildpack",)
    assert "deprecated" in manifest.warnings[0]


def test_buildpack_and_buildpacks_together_are_refused():
    with pytest.raises(InvalidManifest, match="buildpack, buildpacks"):
        parse("applications:\n- name: a\n  buildpack: x\n  buildpacks: [y]\n")


@pytest.mark.parametrize("value", ["[default]", "[null]", "[]"])
def test_buildpacks_default_or_null_or_empty_means_auto_detect(value):
    assert one(f"applications:\n- name: a\n  buildpacks: {value}\n").buildpacks == ()


def test_default_cannot_be_combined_with_other_buildpacks():
    with pytest.raises(InvalidManifest, match="default"):
        parse("applications:\n- name: a\n  buildpacks: [default, python]\n")


# --- health checks --------------------------------------------------------------------


def test_health_check_type_none_means_process_and_warns():
    manifest = parse("applications:\n- name: a\n  health-check-type: none\n")
    assert manifest.apps[0].health_check_type is HealthCheckType.PROCESS
    assert any("none" in w for w in manifest.warnings)


def test_an_unknown_health_check_type_is_invalid():
    with pytest.raises(InvalidManifest, match="health-check-type"):
        parse("applications:\n- name: a\n  health-check-type: ping\n")


def test_an_http_health_check_without_endpoint_checks_slash():
    assert one("applications:\n- name: a\n  health-check-type: http\n").health_check_http_endpoint == "/"


def test_an_http_endpoint_without_an_http_check_is_refused():
    with pytest.raises(InvalidManifest, match="must be 'http'"):
        parse("applications:\n- name: a\n  health-check-http-endpoint: /health\n")


def test_an_http_endpoint_must_be_a_path():
    with pytest.raises(InvalidManifest, match="health-check-http-endpoint"):
        parse("applications:\n- name: a\n  health-check-type: http\n  health-check-http-endpoint: health\n")


# --- env ----------------------------------------------------------------------------------


def test_env_values_are_stringified_as_yaml_wrote_them():
    spec = one("applications:\n- name: a\n  env: {A: 3, B: true, C: 1.5, D: text}\n")
    assert spec.env_dict == {"A": "3", "B": "true", "C": "1.5", "D": "text"}


@pytest.mark.parametrize("value", ["[1, 2]", "{x: 1}", "null"])
def test_env_values_that_are_not_scalars_are_invalid(value):
    with pytest.raises(InvalidManifest, match="env: A"):
        parse(f"applications:\n- name: a\n  env: {{A: {value}}}\n")


@pytest.mark.parametrize("name", ["PORT", "VCAP_APPLICATION", "CF_INSTANCE_IP"])
def test_env_names_the_platform_sets_are_refused(name):
    with pytest.raises(InvalidManifest, match=name):
        parse(f"applications:\n- name: a\n  env: {{{name}: x}}\n")


# --- routes ---------------------------------------------------------------------------


def test_no_route_means_the_app_has_no_routes():
    spec = one("applications:\n- name: a\n  no-route: true\n")
    assert spec.routes == ()
    assert spec.no_route
    assert not spec.needs_random_route


def test_no_route_together_with_routes_is_refused():
    with pytest.raises(InvalidManifest, match="no-route, routes"):
        parse("applications:\n- name: a\n  no-route: true\n  routes:\n  - route: a.example.com\n")


def test_random_route_without_routes_asks_the_platform_for_one():
    spec = one("applications:\n- name: a\n  random-route: true\n")
    assert spec.routes == ()
    assert spec.needs_random_route


@pytest.mark.parametrize("route", ["no-domain", "http://a.example.com", "a..example.com", "a example.com", ""])
def test_a_malformed_route_is_invalid(route):
    with pytest.raises(InvalidManifest, match="routes"):
        parse(f"applications:\n- name: a\n  routes:\n  - route: '{route}'\n")


def test_a_route_entry_without_a_route_key_is_invalid():
    with pytest.raises(InvalidManifest, match="routes"):
        parse("applications:\n- name: a\n  routes:\n  - host: a\n")


def test_the_default_route_is_the_name_as_a_host_or_cloud_controllers_error():
    assert default_route("My_App") == "my_app.apps.internal"
    assert default_route("web-2") == "web-2.apps.internal"
    for name in ("My_App.v2", "My App (v2)", "émoji", "a/b"):
        with pytest.raises(InvalidManifest, match='Host must be either "\\*" or contain only alphanumeric'):
            default_route(name)
    with pytest.raises(InvalidManifest, match="Host cannot exceed 63 characters"):
        default_route("x" * 64)


# --- paths ------------------------------------------------------------------------------


def test_a_relative_path_resolves_against_the_manifest_directory(tmp_path: Path):
    (tmp_path / "conf").mkdir()
    manifest = tmp_path / "conf" / "manifest.yml"
    manifest.write_text("applications:\n- name: a\n  path: ../src\n")
    assert load_manifest(manifest).apps[0].path == str(tmp_path / "src")


def test_an_absolute_path_is_kept(tmp_path: Path):
    manifest = tmp_path / "manifest.yml"
    manifest.write_text(f"applications:\n- name: a\n  path: {tmp_path / 'elsewhere'}\n")
    assert load_manifest(manifest).apps[0].path == str(tmp_path / "elsewhere")


def test_a_missing_manifest_file_is_path_not_found(tmp_path: Path):
    with pytest.raises(PathNotFound):
        load_manifest(tmp_path / "manifest.yml")


def test_a_manifest_that_is_not_utf8_is_invalid(tmp_path: Path):
    manifest = tmp_path / "manifest.yml"
    manifest.write_bytes(b"applications:\n- name: \xff\n")
    with pytest.raises(InvalidManifest, match="UTF-8"):
        load_manifest(manifest)


def test_an_oversized_manifest_is_invalid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("actors.manifest.MAX_MANIFEST_BYTES", 10)
    manifest = tmp_path / "manifest.yml"
    manifest.write_text("applications:\n- name: a\n")
    with pytest.raises(InvalidManifest, match="larger"):
        load_manifest(manifest)


# --- app names -------------------------------------------------------------------------


# Cloud Controller's rule: 1 to 255 printable characters.
@pytest.mark.parametrize(
    "name",
    [
        "a",
        "hello",
        "hello-world_2.0",
        "9lives",
        "x" * 255,
        "My App (v2)",
        "émoji",
        "_x",
        "日本\u3000アプリ",
        "a\u00a0b",
        "👩\u200d💻 dev",
        "x\u00adz",
    ],
)
def test_valid_app_names_are_accepted(name):
    assert validate_app_name(name) == name


@pytest.mark.parametrize("name", ["", "x" * 256, "tab\tname", "new\nline", "bell\x07", "line\u2028sep", None, 123])
def test_invalid_app_names_are_refused(name):
    with pytest.raises(InvalidAppName):
        validate_app_name(name)


# --- cf push flags ----------------------------------------------------------------------


BASE = AppSpec(name="hello", memory_mb=256, instances=2, routes=("hello.apps.internal",))


def test_flags_that_are_given_override_and_the_rest_are_kept():
    spec = apply_flags(BASE, instances=5, memory="1G", disk=512, command="./run", path="/src", stack="cflinuxfs3")
    assert (spec.instances, spec.memory_mb, spec.disk_mb) == (5, 1024, 512)
    assert (spec.command, spec.path, spec.stack) == ("./run", "/src", "cflinuxfs3")
    assert spec.routes == BASE.routes
    assert apply_flags(BASE) == BASE


def test_a_bad_memory_flag_raises_value_error():
    with pytest.raises(ValueError, match="-m"):
        apply_flags(BASE, memory="lots")


@pytest.mark.parametrize("kwargs", [{"instances": -1}, {"timeout": 0}, {"disk": 0}, {"health_check_type": "ping"}])
def test_out_of_range_flags_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        apply_flags(BASE, **kwargs)


def test_buildpack_flag_default_goes_back_to_auto_detect():
    named = apply_flags(BASE, buildpacks=["python_buildpack"])
    assert named.buildpacks == ("python_buildpack",)
    assert apply_flags(named, buildpacks=["default"]).buildpacks == ()


def test_command_flag_null_goes_back_to_the_buildpack_command():
    assert apply_flags(AppSpec(name="a", command="./run"), command="null").command is None


def test_no_route_flag_drops_every_route():
    spec = apply_flags(BASE, no_route=True)
    assert spec.routes == () and spec.no_route


def test_random_route_flag_replaces_only_the_default_route():
    assert apply_flags(AppSpec(name="hello"), random_route=True).needs_random_route
    custom = AppSpec(name="hello", routes=("hello.example.com",))
    assert apply_flags(custom, random_route=True).routes == ("hello.example.com",)


def test_http_health_check_flag_sets_the_default_endpoint_and_endpoint_needs_http():
    spec = apply_flags(BASE, health_check_type="http", health_check_http_endpoint="/ready")
    assert spec.health_check_http_endpoint == "/ready"
    assert apply_flags(BASE, health_check_type="http").health_check_http_endpoint == "/"
    with pytest.raises(ValueError, match="http"):
        apply_flags(BASE, health_check_http_endpoint="/ready")
    assert apply_flags(spec, health_check_type="port").health_check_http_endpoint is None
