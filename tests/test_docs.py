"""The docs build with Sphinx, warnings counted as errors."""
import json
import re
import shutil
import subprocess
import sys

import pytest

from .conftest import ROOT


def test_docs_build_without_warnings(tmp_path):
    out = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                          str(ROOT / "docs"), str(tmp_path / "html")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / "html" / "searchers.html").exists()


def test_app_config_sample_shows_the_example_searchers_sections_with_their_defaults():
    """The searcher sections below [custom_threat_service] are what their packages' config
    entry points write, and every value written uncommented is the searcher's default: the
    same searcher created with the sample's sections and with none is configured alike."""
    from importlib import metadata

    from rc_cts.config.settings import read_config_file
    sample_text = (ROOT / "app.config.sample").read_text()
    eps = [ep for ep in metadata.entry_points(group="resilient.circuits.configsection")
           if ep.value.startswith("searchers_example.")]
    assert len(eps) == 5
    for ep in eps:
        assert ep.load()() in sample_text, ep.name
    sample = read_config_file(str(ROOT / "app.config.sample"))
    from searchers_example.async_reputation import AsyncReputationSearcher
    from searchers_example.files import FileSearcher
    from searchers_example.feeds import FeedSearcher
    from searchers_example.reputation import ReputationSearcher

    def configured(searcher):
        return {k: v for k, v in vars(searcher).items() if isinstance(v, (str, int, float, bool))
                and not k.startswith("_") and k != "channel"}

    for cls in (ReputationSearcher, AsyncReputationSearcher, FeedSearcher, FileSearcher):
        assert configured(cls(sample)) == configured(cls({})), cls.__name__


def readme_commands():
    """The README's literal blocks that are commands, in order."""
    text = (ROOT / "README.rst").read_text()
    blocks = re.findall(r"::\n\n((?:    .*\n|\n)+)", text)
    return [" ".join(line.strip().rstrip("\\") for line in block.strip("\n").splitlines())
            for block in blocks]


def test_readme_first_commands_run_the_service_and_the_suite():
    first, second = readme_commands()[:2]
    assert first.startswith("python3 -m venv .venv && .venv/bin/pip install -e . -e ./searchers_example")
    assert first.endswith(".venv/bin/rc-cts run")
    assert second in (ROOT / ".ci" / "run").read_text()        # what CI runs
    assert second.endswith(".venv/bin/python -m pytest")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_curl_lookup_against_a_real_service(run_cli):
    [curl] = [c for c in readme_commands() if c.startswith("curl ")]
    assert "http://localhost:9000/cts/example" in curl          # the first command's service
    proc = run_cli("[webserver]\nserver = 127.0.0.1\nport = 0\n")
    out = subprocess.run(["bash", "-c", curl.replace("http://localhost:9000", proc.url)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert [h["props"][0]["value"] for h in answer["hits"]] == [123, 456]
    assert "POST /cts/example 200" in proc.log


def test_readme_docs_build_command_works_without_the_test_extra():
    [build] = [c for c in readme_commands() if "sphinx-build" in c]
    assert '.venv/bin/pip install -e ".[docs]"' in build
    assert "sphinx-build -W -b html docs docs/_build" in build
    assert "sphinx-build -W -b html docs docs/_build" in (ROOT / "docs" / "conf.py").read_text()
    setup_py = (ROOT / "setup.py").read_text()
    assert re.search(r'"docs": \["sphinx[^"]*"\]', setup_py)
