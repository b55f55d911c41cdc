"""Packaging: one version above IBM's rc-cts, a wheel and an sdist, and the ``rc-cts`` command
naming IBM's package of the same name when that is what Python imports (alone or mixed with
ours), in real virtual environments.

The environments get this project's wheel (``--no-deps``) and see the test interpreter's
site-packages through a ``.pth`` file for the dependencies; IBM's rc-cts is built from its
sdist on the package index, as tests/test_original_suite.py fetches it."""
import os
import re
import shutil
import site
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import rc_cts
from rc_cts import install_check

from .conftest import ROOT

IBM = "rc-cts==45.1.3279"
BUILD_IGNORE = shutil.ignore_patterns(".git", ".venv", "_build", "build", "dist", "*.egg-info",
                                      "__pycache__", ".pytest_cache", ".mypy_cache")


def run(*cmd, env=None, check=True, **kwargs):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, timeout=300, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "APP_CONFIG_FILE", "VIRTUAL_ENV")}
    return {**env, **extra}


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    """``python -m build`` of a copy of the repository (the build writes rc_cts.egg-info into
    its source tree, which must not appear on this suite's path): {"wheel": ..., "sdist": ...}."""
    base = tmp_path_factory.mktemp("build")
    src = base / "src"
    shutil.copytree(ROOT, src, ignore=BUILD_IGNORE)
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", base / "dist", src, env=clean_env())
    [wheel] = (base / "dist").glob("*.whl")
    [sdist] = (base / "dist").glob("*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


@pytest.fixture(scope="module")
def ibm_wheel(tmp_path_factory):
    """IBM's rc-cts 45.1.3279, built from its sdist on the package index, without its dependencies."""
    dest = tmp_path_factory.mktemp("ibm")
    proc = run(sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet",
               "-d", dest, IBM, check=False)
    if proc.returncode != 0:
        pytest.fail(f"cannot fetch {IBM} from the package index (is it reachable?):\n{proc.stderr[-3000:]}")
    [sdist] = dest.glob("rc-cts-45.1.3279.tar.gz")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", dest, sdist)
    [wheel] = dest.glob("rc_cts-45.1.3279-*.whl")
    return wheel


def make_venv(path: Path, wheel: Path, with_pip: bool = False) -> Path:
    """A real venv with this project's wheel installed, the dependencies seen through a .pth."""
    run(sys.executable, "-m", "venv", *([] if with_pip else ["--without-pip"]), path)
    pip_install(path, wheel)
    site_dir = venv_site(path)
    (site_dir / "zz_test_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return path


def venv_site(venv: Path) -> Path:
    [site_dir] = venv.glob("lib/python*/site-packages")
    return site_dir


def pip_install(venv: Path, *args):
    run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--no-deps",
        "--no-index", "--quiet", *args)


# -- versions and the built distributions --------------------------------------------------------
def test_one_version_above_ibms():
    version = run(sys.executable, "setup.py", "--version", cwd=ROOT, env=clean_env()).stdout.split()[-1]
    assert version == rc_cts.__version__
    assert int(version.split(".")[0]) >= 46  # IBM's last release is 45.1.3279
    assert '"rc-cts>=46"' in (ROOT / "searchers_example" / "setup.py").read_text()
    assert f"dist/rc_cts-{version}-py3-none-any.whl" in (ROOT / "README.rst").read_text()
    assert run(sys.executable, "-m", "rc_cts.tools.cli", "--version",
               env=clean_env(PYTHONPATH=str(ROOT))).stdout.strip() == f"rc-cts {version}"


def test_wheel_and_sdist_build(dists):
    v = rc_cts.__version__
    assert dists["wheel"].name == f"rc_cts-{v}-py3-none-any.whl"
    assert dists["sdist"].name == f"rc-cts-{v}.tar.gz"
    with zipfile.ZipFile(dists["wheel"]) as whl:
        names = set(whl.namelist())
        entry_points = whl.read(f"rc_cts-{v}.dist-info/entry_points.txt").decode()
    assert {"rc_cts_launcher.py", "rc_cts/install_check.py", "rc_cts/py.typed", "rc_cts/service.py"} <= names
    assert "rc-cts = rc_cts_launcher:main" in entry_points
    assert "rc_cts = rc_cts.selftest:selftest_function" in entry_points
    with tarfile.open(dists["sdist"]) as tar:
        files = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {"setup.py", "README.rst", "app.config.sample", "Dockerfile", "compose.yaml",
            "docs/deployment.rst", "rc_cts/version.py", "rc_cts_launcher.py"} <= files


def test_installed_wheel_runs_without_complaint(tmp_path, dists):
    venv = make_venv(tmp_path / "venv", dists["wheel"])
    out = run(venv / "bin" / "rc-cts", "--version", env=clean_env())
    assert out.stdout.strip() == f"rc-cts {rc_cts.__version__}"
    out = run(venv / "bin" / "rc-cts", "searchers", env=clean_env(), check=False)
    assert "wrong rc_cts" not in out.stderr, out.stderr


# -- IBM's rc_cts on the path ------------------------------------------------------------------
def test_ibms_package_first_on_the_path(tmp_path, dists, ibm_wheel):
    """A user site or PYTHONPATH before ours: IBM's rc_cts is imported and fails, for want of
    rc_webserver; the launcher still names it."""
    venv = make_venv(tmp_path / "venv", dists["wheel"])
    ibm = tmp_path / "ibm"
    run(sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", "--target", ibm, ibm_wheel)
    out = run(venv / "bin" / "rc-cts", "searchers", env=clean_env(PYTHONPATH=str(ibm)), check=False)
    assert out.returncode == 1
    assert (f"ERROR [rc_cts] wrong rc_cts installed: the rc_cts package Python imports, {ibm / 'rc_cts'}, "
            "is IBM's rc-cts 45.1.3279, not this project's") in out.stderr, out.stderr
    assert "pip uninstall rc-cts" in out.stderr and "then install this project's rc-cts 46" in out.stderr
    assert "No module named 'rc_webserver'" in out.stderr  # why the import failed
    assert "Traceback" not in out.stderr


def test_ibms_files_over_ours_in_one_directory(tmp_path, dists, ibm_wheel):
    """``pip install --ignore-installed`` of IBM's over ours: one rc_cts directory, both packages' files."""
    venv = make_venv(tmp_path / "venv", dists["wheel"])
    pip_install(venv, "--ignore-installed", ibm_wheel)
    out = run(venv / "bin" / "rc-cts", "searchers", env=clean_env(), check=False)
    assert out.returncode == 1
    package = os.path.realpath(venv_site(venv) / "rc_cts")
    assert (f"the rc_cts package Python imports, {package}, is a mix of IBM's rc-cts 45.1.3279 and "
            "this project's" in out.stderr), out.stderr
    assert "pip uninstall rc-cts" in out.stderr


def test_ibms_package_after_ours_is_named_by_the_cli_and_the_service(tmp_path, dists, ibm_wheel):
    """Ours is imported, but IBM's is installed further down the path: its metadata makes pip
    take it for ours and gives resilient-circuits its components. The command and the service
    (as the daemon starts it) log it, the command once."""
    venv = make_venv(tmp_path / "venv", dists["wheel"])
    ibm = tmp_path / "ibm"
    run(sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", "--target", ibm, ibm_wheel)
    (venv_site(venv) / "zzz_ibm.pth").write_text(f"{ibm}\n")
    out = run(venv / "bin" / "rc-cts", "lookup", "net.uri", "http://x", env=clean_env(), check=False)
    expected = f"ERROR [rc_cts] wrong rc_cts installed: another rc_cts package is on the path, {ibm / 'rc_cts'}: IBM's rc-cts 45.1.3279, not this project's"
    assert out.stderr.count(expected) == 1, out.stderr   # the CLI's report; the service's is the same, not repeated
    assert out.stderr.count("pip uninstall rc-cts") == 1
    code = ("import logging; logging.basicConfig(format='%(levelname)s %(message)s')\n"
            "from rc_cts.service import CustomThreatService\n"
            "CustomThreatService({'webserver': {'server': '127.0.0.1', 'port': '0'}})\n")
    out = run(venv / "bin" / "python", "-c", code, env=clean_env())
    assert f"ERROR wrong rc_cts installed: another rc_cts package is on the path, {ibm / 'rc_cts'}" in out.stderr
    assert "pip uninstall rc-cts" in out.stderr


# -- rc-cts new-searcher, as a searcher author follows it ---------------------------------------
def test_new_searcher_instructions_work_as_printed(tmp_path, dists):
    """In a fresh venv with this project's wheel: every printed command runs as printed. pip
    may fetch nothing (no index), so the package's requirement is met by the installed rc-cts,
    and never brings IBM's."""
    venv = make_venv(tmp_path / "venv", dists["wheel"], with_pip=True)
    work = tmp_path / "work"
    work.mkdir()
    env = clean_env(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", PIP_NO_INDEX="1",
                    PIP_NO_BUILD_ISOLATION="0", HOME=str(tmp_path))
    printed = run("rc-cts", "new-searcher", "My-Intel", "--type", "net.ip", env=env, cwd=work).stdout
    steps = dict(re.findall(r"^  (\w+): +(.+)$", printed, re.M))
    assert list(steps) == ["install", "test", "configure", "try", "serve"], printed
    assert "rc-cts>=46" in (work / "my_intel" / "setup.py").read_text()
    outputs = {}
    for step in ("install", "test", "configure", "try"):
        outputs[step] = run("bash", "-c", steps[step], env=env, cwd=work).stdout
    assert "4 passed" in outputs["test"]
    assert "/cts/my_intel: 200, 1 hit" in outputs["try"] and "192.0.2.66" in outputs["try"]
    assert steps["serve"] == "rc-cts run -c app.config"
    listed = run(venv / "bin" / "python", "-m", "pip", "list", env=env).stdout
    assert re.search(rf"^rc-cts +{re.escape(rc_cts.__version__)}$", listed, re.M), listed
    assert "45.1.3279" not in listed


# -- the rules, on fabricated directories ------------------------------------------------------------
def fake_dist(site_dir: Path, version: str, console_script: bool) -> None:
    info = site_dir / f"rc_cts-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: rc-cts\nVersion: {version}\n")
    if console_script:
        (info / "entry_points.txt").write_text("[console_scripts]\nrc-cts = rc_cts_launcher:main\n")


def test_the_rules_on_fake_installations(tmp_path):
    ours = tmp_path / "ours"
    shutil.copytree(ROOT / "rc_cts", ours / "rc_cts", ignore=BUILD_IGNORE)
    assert install_check.kind_of(str(ours / "rc_cts")) == "ours"
    assert install_check.problems([str(ours)]) == []
    # this project's own old checkout (1.0.0, with the rc-cts command) is not IBM's
    fake_dist(ours, "1.0.0", console_script=True)
    assert install_check.problems([str(ours)]) == []
    # IBM's metadata alone, its files gone
    old = tmp_path / "old"
    fake_dist(old, "45.1.3279", console_script=False)
    assert install_check.problems([str(ours), str(old)]) == [
        f"IBM's rc-cts 45.1.3279 is installed in {old}: pip takes it for this project's, "
        "and resilient-circuits loads its components"]
    # one IBM-only file among ours
    (ours / "rc_cts" / "lib" / "resilient_mock.py").write_text("")
    assert install_check.problems([str(ours)]) == [
        f"the rc_cts package Python imports, {ours / 'rc_cts'}, is a mix of IBM's rc-cts and this project's"]
    # a package of neither
    other = tmp_path / "other" / "rc_cts"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("")
    assert re.search(r"imports, .*other/rc_cts, is not this project's$", install_check.problems([str(other.parent)])[0])
