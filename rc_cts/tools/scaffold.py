"""``rc-cts new-searcher NAME``: a searcher package that installs and passes its own test."""
from __future__ import annotations

import keyword
import re
import shlex
from pathlib import Path
from string import Template
from typing import Dict

from ..version import __version__

# Satisfied by this project's installed rc-cts, never by IBM's (45.1.3279): pip fetches nothing.
REQUIREMENT = f"rc-cts>={__version__.split('.')[0]}"

FILES: Dict[str, str] = {
    "setup.py": '''\
from setuptools import find_packages, setup

setup(
    name="$dist",
    version="0.1.0",
    description="$title: a searcher for rc-cts (Custom Threat Service for IBM SOAR)",
    python_requires=">=3.9",
    packages=find_packages(include=["$package", "$package.*"]),
    install_requires=["$requirement"],
    extras_require={"test": ["pytest"]},
    entry_points={
        "resilient.circuits.components": ["$cls = $package.searcher:$cls"],
        "resilient.circuits.configsection": ["$package = $package.config:config_section_data"],
    },
)
''',
    "README.rst": '''\
$title
$underline

A searcher for rc-cts, served at ``/cts/$service``.

Install it with its test extra, and run its tests::

    python -m pip install -e ".[test]"
    python -m pytest tests

Configure: its section ``[$package]`` is in ``app.config.sample`` (``$package/config.py``
writes it; ``resilient-circuits config -u`` adds it to an app.config too). Then try it and
serve it::

    cat app.config.sample >> app.config
    rc-cts lookup -c app.config --service $service $artifact_type $example_value
    rc-cts run -c app.config
''',
    "app.config.sample": "$section",
    "$package/__init__.py": '''\
"""$title: a searcher for rc-cts."""
''',
    "$package/config.py": '''\
"""The [$package] section of app.config, with every option and its default: the entry point
``resilient.circuits.configsection`` gives it to ``resilient-circuits config -c/-u``, and
app.config.sample carries the same text (a test checks)."""

SECTION = """\\
$section"""


def config_section_data() -> str:
    return SECTION
''',
    "$package/searcher.py": '''\
"""Answers $artifact_type lookups on the service /cts/$service."""
from circuits import BaseComponent, handler

from rc_cts import Hit, StringProp, searcher_channel


class $cls(BaseComponent):
    """Reports artifact values listed in ``bad_values`` of the [$package] section."""

    channel = searcher_channel("$service")

    def __init__(self, opts):
        super().__init__()
        options = opts.get("$package", {})
        self.bad_values = {v.strip() for v in options.get("bad_values", "").split(",") if v.strip()}

    @handler("$artifact_type")
    def _lookup(self, event, *args, **kwargs):
        """Runs in a worker thread: it may block, e.g. on a web API call."""
        value = str(event.artifact["value"])
        if value in self.bad_values:
            return Hit(StringProp(name="Verdict", value="listed as bad"),
                       StringProp(name="Value", value=value))
        return None
''',
    "tests/test_searcher.py": '''\
"""Tests with the rc-cts pytest fixtures: each runs the real service and looks up over HTTP."""
from pathlib import Path

from $package.config import config_section_data
from $package.searcher import $cls

OPTS = {"$package": {"bad_values": "bad.example, 192.0.2.66"}}


def test_listed_value_is_a_hit(cts_lookup):
    hits = cts_lookup($cls, "$artifact_type", "bad.example", opts=OPTS)
    assert hits == [{"props": [{"type": "string", "name": "Verdict", "value": "listed as bad"},
                               {"type": "string", "name": "Value", "value": "bad.example"}]}]


def test_other_value_is_no_hit(cts_lookup):
    assert cts_lookup($cls, "$artifact_type", "good.example", opts=OPTS) == []


def test_served_at_its_url(cts_service):
    service = cts_service($cls(OPTS))
    assert service.client().options("$service").status == 200


def test_config_section_is_the_sample():
    sample = Path(__file__).resolve().parents[1] / "app.config.sample"
    assert config_section_data().startswith("[$package]")
    assert sample.read_text() == config_section_data()
''',
}


def names_for(name: str, artifact_type: str) -> Dict[str, str]:
    package = re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()
    if not package or package[0].isdigit() or keyword.iskeyword(package):
        raise ValueError(f"{name!r} does not make a Python package name; try letters, digits and '_'")
    cls = "".join(part.capitalize() for part in package.split("_")) + "Searcher"
    title = f"{cls[:-len('Searcher')]} searcher"
    section = (f"[{package}]\n"
               "# Artifact values to report, separated by commas.\n"
               "bad_values = evil.example, 192.0.2.66\n")
    example_value = "192.0.2.66" if artifact_type.startswith("net.ip") else "evil.example"
    return {"package": package, "dist": "rc-cts-" + package.replace("_", "-"), "cls": cls,
            "service": package, "artifact_type": artifact_type, "title": title,
            "underline": "=" * len(title), "requirement": REQUIREMENT, "section": section,
            "example_value": example_value}


def write_package(name: str, directory: Path, artifact_type: str = "net.ip") -> Path:
    """Write the package into ``directory/<package>`` (which must not exist yet)."""
    names = names_for(name, artifact_type)
    root = Path(directory) / names["package"]
    if root.exists():
        raise FileExistsError(f"{root} exists already")
    for rel, text in FILES.items():
        path = root / Template(rel).substitute(names)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template(text).substitute(names), encoding="utf-8")
    return root


def instructions(root: Path, artifact_type: str = "net.ip") -> str:
    """What to do next, as commands that work as printed (tests/test_scaffold.py runs them)."""
    names = names_for(root.name, artifact_type)
    q = shlex.quote
    return "\n".join([
        f"wrote {root}",
        f"  install:    python -m pip install -e {q(f'{root}[test]')}",
        f"  test:       python -m pytest {q(str(root / 'tests'))}",
        f"  configure:  cat {q(str(root / 'app.config.sample'))} >> app.config",
        f"  try:        rc-cts lookup -c app.config --service {names['service']} {q(artifact_type)} "
        f"{names['example_value']}",
        "  serve:      rc-cts run -c app.config",
    ])
