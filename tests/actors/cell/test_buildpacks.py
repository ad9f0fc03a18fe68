from __future__ import annotations

import json
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

from actors.appfiles import build_package, extract_package, scan_app
from actors.cell.buildpacks import (
    BUILDPACKS,
    Buildpack,
    NodejsBuildpack,
    StagingResult,
    detect_buildpack,
    find_buildpack,
    parse_procfile,
    stage,
)
from actors.cell.buildpacks.semver import semver_pick as _semver_pick
from actors.cell.droplet import read_staging_info
from actors.manifest import load_manifest
from protocol.errors import (
    BuildpackCompileFailed,
    BuildpackReleaseFailed,
    NoAppDetectedError,
    StagingError,
    UnknownBuildpack,
    UnsafePath,
)

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def make_app(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def run(app: Path, work: Path, names=(), command=None) -> tuple[StagingResult, list[str]]:
    lines: list[str] = []
    result = stage(app, work, list(names), command, lines.append)
    return result, lines


def push_example(name: str, tmp_path: Path) -> tuple[StagingResult, list[str]]:
    """Stage an example the way a push does: gather, package, unpack, stage."""
    source = EXAMPLES / name
    bits = scan_app(source)
    work = tmp_path / "work"
    extract_package(build_package(bits.files, bits.read), work / "app")
    names, command = [], None
    if (source / "manifest.yml").is_file():
        spec = load_manifest(source / "manifest.yml").apps[0]
        names, command = list(spec.buildpacks), spec.command
    return run(work / "app", work, names, command)


# --- the examples ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("example", "buildpack", "start_command"),
    [
        ("python", "python", "python app.py"),
        ("node", "nodejs", "npm start"),
        ("static", "staticfile", "$HOME/boot.sh"),
        ("go", "go", "./bin/go-hello"),
        ("binary", "binary", "./app"),
        ("crashloop", "python", "python app.py"),
        ("slowstart", "python", "python app.py"),
    ],
)
def test_every_example_app_stages_with_its_buildpack_and_start_command(tmp_path, example, buildpack, start_command):
    result, lines = push_example(example, tmp_path)
    assert result.detected_buildpack == buildpack
    assert result.start_command == start_command
    info = read_staging_info(result.droplet_path)
    assert (info.detected_buildpack, info.start_command) == (buildpack, start_command)
    assert lines[0].startswith("-----> ")


def test_the_undetectable_example_fails_with_no_app_detected(tmp_path):
    with pytest.raises(NoAppDetectedError) as info:
        push_example("undetectable", tmp_path)
    assert str(info.value) == ("NoAppDetectedError - An app was not successfully detected by any available buildpack")


def test_the_binary_example_keeps_its_executable_in_the_droplet(tmp_path):
    result, _ = push_example("binary", tmp_path)
    with tarfile.open(result.droplet_path) as tf:
        assert tf.getmember("app/app").mode == 0o755


def test_the_python_example_prints_what_the_python_buildpack_prints(tmp_path):
    _, lines = push_example("python", tmp_path)
    assert lines == [
        "-----> Python Buildpack version 1.8.23",
        "-----> Supplying Python",
        "-----> Installing python 3.11.9",
        "-----> Installing pip-pop 0.1.5",
        "-----> Running Pip Install",
        "       Collecting flask==3.0.3 (from -r /tmp/app/requirements.txt (line 1))",
        "       Installing collected packages: flask",
        "       Successfully installed flask-3.0.3",
    ]


def test_the_node_example_installs_node_and_builds_dependencies(tmp_path):
    result, lines = push_example("node", tmp_path)
    assert "-----> Nodejs Buildpack version 1.8.30" in lines
    assert "-----> Installing node 20.17.0" in lines
    assert "-----> Building dependencies" in lines
    with tarfile.open(result.droplet_path) as tf:
        names = tf.getnames()
    assert "app/node_modules/express/package.json" in names
    assert "deps/0/node/bin/node" in names


# --- detection --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"index.html": ""}, "staticfile"),
        ({"Staticfile": ""}, "staticfile"),
        ({"app.jar": ""}, "java"),
        ({"app.war": ""}, "java"),
        ({"META-INF/MANIFEST.MF": "Main-Class: App\n"}, "java"),
        ({"Gemfile": ""}, "ruby"),
        ({"package.json": "{}"}, "nodejs"),
        ({"go.mod": "module x\n"}, "go"),
        ({"requirements.txt": ""}, "python"),
        ({"Pipfile": ""}, "python"),
        ({"pyproject.toml": ""}, "python"),
        ({"README.txt": "", "main.go": ""}, None),
    ],
)
def test_each_buildpack_detects_its_marker_files(tmp_path, files, expected):
    found = detect_buildpack(make_app(tmp_path, files))
    assert (found.short_name if found else None) == expected


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"index.html": "", "package.json": "{}"}, "staticfile"),
        ({"Gemfile": "", "package.json": "{}"}, "ruby"),
        ({"package.json": "{}", "requirements.txt": ""}, "nodejs"),
        ({"go.mod": "module x\n", "requirements.txt": ""}, "go"),
    ],
)
def test_detection_follows_cloud_foundrys_priority_order(tmp_path, files, expected):
    assert detect_buildpack(make_app(tmp_path, files)).short_name == expected


def test_the_binary_buildpack_never_detects(tmp_path):
    assert not find_buildpack("binary").detect(make_app(tmp_path, {"app": "#!/bin/sh"}))


def test_the_default_priority_order_is_cloud_foundrys():
    assert [bp.short_name for bp in BUILDPACKS] == [
        "staticfile",
        "java",
        "ruby",
        "nodejs",
        "go",
        "python",
        "binary",
    ]


@pytest.mark.parametrize("name", ["python", "python_buildpack", "python-buildpack", "Python_Buildpack"])
def test_short_and_full_buildpack_names_are_both_accepted(name):
    assert find_buildpack(name).name == "python_buildpack"


def test_an_unknown_buildpack_name_raises_unknown_buildpack(tmp_path):
    app = make_app(tmp_path / "src", {"app.py": ""})
    with pytest.raises(UnknownBuildpack, match="cobol"):
        run(app, tmp_path / "work", ["cobol_buildpack"])


# --- named buildpacks and multi-buildpack -------------------------------------------------


def test_a_named_buildpack_skips_detection(tmp_path):
    app = make_app(tmp_path / "src", {"app.py": "print()", "index.html": ""})
    result, lines = run(app, tmp_path / "work", ["python"])
    assert result.detected_buildpack == "python"
    assert result.start_command == "python app.py"
    assert not any("Staticfile" in line for line in lines)


def test_multi_buildpack_supplies_each_and_finalizes_the_last(tmp_path):
    app = make_app(tmp_path / "src", {"package.json": '{"name": "x"}', "requirements.txt": "flask\n", "app.py": ""})
    work = tmp_path / "work"
    result, lines = run(app, work, ["nodejs_buildpack", "python_buildpack"])
    assert result.buildpacks == (("nodejs_buildpack", "1.8.30"), ("python_buildpack", "1.8.23"))
    assert result.detected_buildpack == "python"
    assert result.start_command == "python app.py"
    assert yaml.safe_load((work / "deps/0/config.yml").read_text())["name"] == "nodejs"
    assert yaml.safe_load((work / "deps/1/config.yml").read_text())["name"] == "python"
    # nodejs ran supply only: its finalize (npm install) belongs to a last buildpack
    assert "-----> Building dependencies" not in lines
    assert lines.index("-----> Nodejs Buildpack version 1.8.30") < lines.index("-----> Python Buildpack version 1.8.23")


def test_java_cannot_run_before_another_buildpack(tmp_path):
    app = make_app(tmp_path / "src", {"app.py": ""})
    with pytest.raises(BuildpackCompileFailed, match="multi-buildpack"):
        run(app, tmp_path / "work", ["java", "python"])


# --- start commands -------------------------------------------------------------------------


def test_a_procfile_web_line_overrides_the_buildpacks_start_command(tmp_path):
    procfile = "web: gunicorn app:app\nworker: celery\n"
    app = make_app(tmp_path / "src", {"requirements.txt": "", "app.py": "", "Procfile": procfile})
    result, _ = run(app, tmp_path / "work")
    assert result.start_command == "gunicorn app:app"
    assert result.process_types == (("web", "gunicorn app:app"), ("worker", "celery"))


def test_a_command_override_wins_over_the_procfile(tmp_path):
    app = make_app(tmp_path / "src", {"requirements.txt": "", "Procfile": "web: gunicorn app:app\n"})
    result, _ = run(app, tmp_path / "work", command="python other.py")
    assert result.start_command == "python other.py"


def test_a_malformed_procfile_fails_the_release(tmp_path):
    app = make_app(tmp_path / "src", {"requirements.txt": "", "app.py": "", "Procfile": "just a command\n"})
    with pytest.raises(BuildpackReleaseFailed, match="Procfile"):
        run(app, tmp_path / "work")


def test_parse_procfile_reads_types_and_skips_comments():
    assert parse_procfile("# processes\nweb: ./run --port $PORT\n\nworker:  ./work  \n") == {
        "web": "./run --port $PORT",
        "worker": "./work",
    }


def test_the_binary_buildpack_without_a_command_fails_the_release(tmp_path):
    app = make_app(tmp_path / "src", {"app": "#!/bin/sh\n"})
    lines: list[str] = []
    with pytest.raises(BuildpackReleaseFailed, match="start command"):
        stage(app, tmp_path / "work", ["binary_buildpack"], None, lines.append)
    assert "No start command specified by buildpack or via Procfile." in lines


def test_the_binary_buildpack_takes_its_command_from_a_procfile(tmp_path):
    app = make_app(tmp_path / "src", {"app": "#!/bin/sh\n", "Procfile": "web: ./app\n"})
    result, _ = run(app, tmp_path / "work", ["binary"])
    assert result.start_command == "./app"


@pytest.mark.parametrize(
    ("package", "files", "command"),
    [
        ({"scripts": {"start": "node index.js"}, "main": "other.js"}, {}, "npm start"),
        ({"main": "lib/app.js"}, {}, "node lib/app.js"),
        ({}, {"server.js": ""}, "node server.js"),
        ({}, {}, "npm start"),
    ],
)
def test_node_start_command_follows_start_script_then_main_then_server_js(tmp_path, package, files, command):
    app = make_app(tmp_path / "src", {"package.json": json.dumps(package), **files})
    assert run(app, tmp_path / "work")[0].start_command == command


@pytest.mark.parametrize(
    ("files", "command"),
    [
        ({"app.py": "", "main.py": ""}, "python app.py"),
        ({"main.py": ""}, "python main.py"),
        ({"a.py": "x = 1\n", "serve.py": "if __name__ == '__main__':\n    run()\n"}, "python serve.py"),
    ],
)
def test_python_start_command_is_app_py_then_main_py_then_a_main_guard(tmp_path, files, command):
    app = make_app(tmp_path / "src", {"requirements.txt": "", **files})
    assert run(app, tmp_path / "work")[0].start_command == command


def test_a_python_app_with_nothing_to_run_fails_the_release(tmp_path):
    app = make_app(tmp_path / "src", {"requirements.txt": "", "lib.py": "x = 1\n"})
    with pytest.raises(BuildpackReleaseFailed):
        run(app, tmp_path / "work")


def test_ruby_with_config_ru_runs_rackup_and_installs_gems(tmp_path):
    app = make_app(
        tmp_path / "src",
        {
            "Gemfile": "source 'https://rubygems.org'\nruby '3.2.2'\ngem 'sinatra', '3.1.0'\ngem \"puma\"\n",
            "config.ru": "",
        },
    )
    work = tmp_path / "work"
    result, lines = run(app, work)
    assert result.start_command == "bundle exec rackup config.ru -p $PORT"
    assert "-----> Installing ruby 3.2.5" in lines
    assert "       Installing sinatra 3.1.0" in lines
    assert (work / "deps/0/vendor_bundle/ruby/3.2.0/gems/sinatra-3.1.0/lib/sinatra.rb").is_file()


def test_ruby_without_config_ru_fails_the_release(tmp_path):
    app = make_app(tmp_path / "src", {"Gemfile": "gem 'rake'\n"})
    with pytest.raises(BuildpackReleaseFailed):
        run(app, tmp_path / "work")


def test_java_runs_the_first_jar(tmp_path):
    app = tmp_path / "src"
    app.mkdir()
    for name in ("b.jar", "a.jar"):
        with zipfile.ZipFile(app / name, "w") as zf:
            zf.writestr("META-INF/MANIFEST.MF", "Main-Class: App\n")
    result, lines = run(app, tmp_path / "work")
    assert result.start_command == "java -jar a.jar"
    assert lines[0].startswith("-----> Java Buildpack v4.69.0")


def test_java_runs_a_war_in_tomcat(tmp_path):
    app = tmp_path / "src"
    app.mkdir()
    with zipfile.ZipFile(app / "shop.war", "w") as zf:
        zf.writestr("WEB-INF/web.xml", "<web-app/>")
    work = tmp_path / "work"
    result, _ = run(app, work)
    assert result.start_command == "$PWD/.java-buildpack/tomcat/bin/catalina.sh run"
    assert (work / "app/.java-buildpack/tomcat/bin/catalina.sh").is_file()


def test_java_runs_an_exploded_jar_by_its_main_class(tmp_path):
    app = make_app(tmp_path / "src", {"META-INF/MANIFEST.MF": "Manifest-Version: 1.0\nMain-Class: com.example.App\n"})
    assert run(app, tmp_path / "work")[0].start_command == "java -cp $PWD/. com.example.App"


def test_a_jar_that_is_not_a_zip_fails_compile(tmp_path):
    app = make_app(tmp_path / "src", {"app.jar": "not a zip"})
    with pytest.raises(BuildpackCompileFailed, match="app.jar"):
        run(app, tmp_path / "work")


def test_go_names_the_binary_after_the_module_without_its_major_version(tmp_path):
    gomod = "module github.com/acme/widget/v2\n\ngo 1.21\n\nrequire (\n\tgithub.com/x/y v1.2.3\n)\n"
    app = make_app(tmp_path / "src", {"go.mod": gomod})
    work = tmp_path / "work"
    result, lines = run(app, work)
    assert result.start_command == "./bin/widget"
    assert "-----> Installing go 1.21.13" in lines
    assert "       go: downloading github.com/x/y v1.2.3" in lines
    assert os.stat(work / "app/bin/widget").st_mode & stat.S_IXUSR


def test_staticfile_serves_its_root_and_writes_boot_sh(tmp_path):
    app = make_app(tmp_path / "src", {"Staticfile": "root: public\npushstate: enabled\n", "public/index.html": ""})
    work = tmp_path / "work"
    _, lines = run(app, work)
    assert "-----> Root folder /tmp/app/public" in lines
    assert "-----> Enabling pushstate" in lines
    assert os.stat(work / "app/boot.sh").st_mode & stat.S_IXUSR
    assert "root $HOME/public;" in (work / "app/nginx/conf/nginx.conf").read_text()


# --- what supply writes ---------------------------------------------------------------------


def test_python_supply_writes_an_interpreter_config_and_a_package_per_requirement(tmp_path):
    requirements = "Flask==3.0.3\nrequests>=2.31\nzope.interface\n"
    app = make_app(tmp_path / "src", {"requirements.txt": requirements, "app.py": ""})
    work = tmp_path / "work"
    _, lines = run(app, work)
    deps = work / "deps/0"
    assert (deps / "python/bin/python").is_file()
    assert yaml.safe_load((deps / "config.yml").read_text())["config"] == {"python": "3.11.9"}
    site = deps / "python/lib/python3.11/site-packages"
    assert sorted(p.name for p in site.iterdir()) == ["flask", "requests", "zope_interface"]
    assert '__version__ = "3.0.3"' in (site / "flask/__init__.py").read_text()
    assert '__version__ = "2.31"' in (site / "requests/__init__.py").read_text()
    assert lines[-1].startswith("       Successfully installed Flask-3.0.3 requests-2.31 zope.interface-")


def test_requirements_include_files_with_dash_r_and_skip_pip_options(tmp_path):
    app = make_app(
        tmp_path / "src",
        {
            "requirements.txt": "--index-url https://pypi.example/simple\n-r base.txt\nflask \\\n  >=3  # web\n",
            "base.txt": "# shared\nrequests[socks]==2.32.3 ; python_version >= '3.8'\n-e .\n",
            "app.py": "",
        },
    )
    _, lines = run(app, tmp_path / "work")
    assert "       Installing collected packages: requests, flask" in lines


@pytest.mark.parametrize(
    "requirements",
    [
        "flask==\n",
        "this is not a requirement\n",
        "-r ../outside.txt\n",
        "-r missing.txt\n",
        "https://example.com/pkg.tar.gz\n",
    ],
)
def test_an_unparseable_requirements_file_fails_compile(tmp_path, requirements):
    app = make_app(tmp_path / "src", {"requirements.txt": requirements, "app.py": ""})
    with pytest.raises(BuildpackCompileFailed):
        run(app, tmp_path / "work")


def test_runtime_txt_chooses_the_python_version(tmp_path):
    app = make_app(tmp_path / "src", {"requirements.txt": "", "runtime.txt": "python-3.12.x\n", "app.py": ""})
    assert "-----> Installing python 3.12.4" in run(app, tmp_path / "work")[1]


def test_an_unavailable_python_version_fails_compile(tmp_path):
    app = make_app(tmp_path / "src", {"requirements.txt": "", "runtime.txt": "python-2.7.18\n", "app.py": ""})
    with pytest.raises(BuildpackCompileFailed, match="no match found for 2.7.18"):
        run(app, tmp_path / "work")


def test_pipfile_and_pyproject_dependencies_are_installed(tmp_path):
    pipfile = make_app(tmp_path / "a", {"Pipfile": '[packages]\nflask = "*"\nrequests = "==2.32.3"\n', "app.py": ""})
    assert "       Successfully installed flask-" in run(pipfile, tmp_path / "wa")[1][-1]
    project = '[project]\nname = "x"\ndependencies = ["fastapi>=0.110"]\n'
    pyproject = make_app(tmp_path / "b", {"pyproject.toml": project, "app.py": ""})
    assert run(pyproject, tmp_path / "wb")[1][-1] == "       Successfully installed fastapi-0.110"


def test_an_invalid_pyproject_fails_compile(tmp_path):
    app = make_app(tmp_path / "src", {"pyproject.toml": "[project\n", "app.py": ""})
    with pytest.raises(BuildpackCompileFailed, match="pyproject.toml"):
        run(app, tmp_path / "work")


# --- compile failures ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"dependencies": ["express"]}'])
def test_an_invalid_package_json_fails_compile(tmp_path, text):
    app = make_app(tmp_path / "src", {"package.json": text})
    with pytest.raises(BuildpackCompileFailed, match="package.json"):
        run(app, tmp_path / "work")


def test_an_unavailable_node_engine_fails_compile(tmp_path):
    app = make_app(tmp_path / "src", {"package.json": '{"engines": {"node": "8.x"}}'})
    with pytest.raises(BuildpackCompileFailed, match="no match found for 8.x"):
        run(app, tmp_path / "work")


def test_a_hostile_node_dependency_name_fails_compile(tmp_path):
    app = make_app(tmp_path / "src", {"package.json": '{"dependencies": {"../../evil": "1.0.0"}}'})
    with pytest.raises(BuildpackCompileFailed, match="dependency name"):
        run(app, tmp_path / "work")


def test_a_go_mod_without_a_module_line_fails_compile(tmp_path):
    app = make_app(tmp_path / "src", {"go.mod": "go 1.22\n"})
    with pytest.raises(BuildpackCompileFailed, match="module"):
        run(app, tmp_path / "work")


def test_a_staticfile_root_that_does_not_exist_fails_compile(tmp_path):
    app = make_app(tmp_path / "src", {"Staticfile": "root: dist\n", "index.html": ""})
    with pytest.raises(BuildpackCompileFailed, match="root directory dist"):
        run(app, tmp_path / "work")


def test_a_staticfile_root_outside_the_app_fails_compile(tmp_path):
    make_app(tmp_path / "outside", {"index.html": ""})
    app = make_app(tmp_path / "src", {"Staticfile": "root: ../outside\n"})
    with pytest.raises(BuildpackCompileFailed, match="root directory"):
        run(app, tmp_path / "work")


def test_an_unparseable_staticfile_fails_compile(tmp_path):
    app = make_app(tmp_path / "src", {"Staticfile": "root: [unclosed\n"})
    with pytest.raises(BuildpackCompileFailed, match="Staticfile"):
        run(app, tmp_path / "work")


def test_a_gem_line_that_cannot_be_read_fails_compile(tmp_path):
    app = make_app(tmp_path / "src", {"Gemfile": "gem rails\n", "config.ru": ""})
    with pytest.raises(BuildpackCompileFailed, match="Gemfile line 1"):
        run(app, tmp_path / "work")


def test_a_buildpack_that_crashes_fails_the_compile_phase(tmp_path):
    class Broken(Buildpack):
        name, short_name, version, language = "broken_buildpack", "broken", "0.1", "Broken"

        def detect(self, app_dir):
            return True

        def finalize(self, app_dir, deps_dir, out):
            raise RuntimeError("segfault")

    app = make_app(tmp_path / "src", {"x": ""})
    with pytest.raises(BuildpackCompileFailed, match="segfault"):
        stage(app, tmp_path / "work", [], None, lambda _: None, registry=[Broken()])


# --- the staging directory -------------------------------------------------------------------------


def test_staging_leaves_the_source_app_untouched(tmp_path):
    app = make_app(tmp_path / "src", {"package.json": '{"dependencies": {"left-pad": "1.3.0"}}', "server.js": ""})
    before = sorted(p.relative_to(app).as_posix() for p in app.rglob("*"))
    run(app, tmp_path / "work")
    assert sorted(p.relative_to(app).as_posix() for p in app.rglob("*")) == before


def test_staging_in_place_uses_work_app_directly(tmp_path):
    work = tmp_path / "work"
    make_app(work / "app", {"requirements.txt": "", "app.py": ""})
    result, _ = run(work / "app", work)
    assert result.droplet_path == str(work / "droplet.tgz")


def test_staging_refuses_a_work_dir_that_is_not_empty(tmp_path):
    app = make_app(tmp_path / "src", {"requirements.txt": "", "app.py": ""})
    make_app(tmp_path / "work", {"leftover": ""})
    with pytest.raises(StagingError, match="not empty"):
        run(app, tmp_path / "work")


def test_staging_refuses_symlinks_in_the_app(tmp_path):
    app = make_app(tmp_path / "src", {"requirements.txt": "", "app.py": ""})
    (app / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(UnsafePath, match="symlink"):
        run(app, tmp_path / "work")


def test_staging_the_same_app_twice_gives_the_same_droplet(tmp_path):
    app = make_app(tmp_path / "src", {"package.json": '{"dependencies": {"express": "*"}}', "server.js": ""})
    first, _ = run(app, tmp_path / "one")
    second, _ = run(app, tmp_path / "two")
    assert first.droplet_sha256 == second.droplet_sha256
    assert first.droplet_size == os.path.getsize(first.droplet_path)


# --- node engine ranges ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "chosen"),
    [
        ("20.x", "20.17.0"),
        ("18", "18.20.4"),
        ("^18.0.0", "18.20.4"),
        ("~22.1", None),
        ("~22.9", "22.9.0"),
        (">=18", "22.9.0"),
        (">=18 <21", "20.17.0"),
        ("<19", "18.20.4"),
        ("16.x || 20.x", "20.17.0"),
        ("18.0.0 - 20.99.0", "20.17.0"),
        ("*", "22.9.0"),
        ("=20.17.0", "20.17.0"),
        (">22", None),
        ("lts/*", None),
    ],
)
def test_node_engine_ranges_pick_the_highest_matching_version(spec, chosen):
    assert _semver_pick(spec, NodejsBuildpack.nodes) == chosen
