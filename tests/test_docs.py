"""The docs build with Sphinx, warnings counted as errors."""
import subprocess
import sys

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
