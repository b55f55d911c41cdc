"""``rc-cts new-searcher NAME``: a searcher package that installs and passes its own test."""
from __future__ import annotations

import keyword
import re
from pathlib import Path
from string import Template
from typing import Dict

FILES: Dict[str, str] = {
    "setup.py": '''\
from setuptools import find_packages, setup

setup(
    name="$dist",
    version="0.1.0",
    description="$title: a searcher for rc-cts (Custom Threat Service for IBM SOAR)",
    python_requires=">=3.9",
    packages=find_packages(include=["$package", "$package.*"]),
    install_requires=["rc-cts"],
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

Install, configure (``[$package]`` in app.config) and run::

    pip install .
    rc-cts run

Test::

    pip install ".[test]" && pytest tests
''',
    "$package/__init__.py": '''\
"""$title: a searcher for rc-cts."""
''',
    "$package/config.py": '''\
"""The [$package] section of app.config."""

SECTION = """\\
[$package]
# Artifact values to report, separated by commas.
bad_values = evil.example, 192.0.2.66
"""


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


def test_config_section_is_valid():
    assert config_section_data().startswith("[$package]")
''',
}


def names_for(name: str, artifact_type: str) -> Dict[str, str]:
    package = re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()
    if not package or package[0].isdigit() or keyword.iskeyword(package):
        raise ValueError(f"{name!r} does not make a Python package name; try letters, digits and '_'")
    cls = "".join(part.capitalize() for part in package.split("_")) + "Searcher"
    title = f"{cls[:-len('Searcher')]} searcher"
    return {"package": package, "dist": "rc-cts-" + package.replace("_", "-"), "cls": cls,
            "service": package, "artifact_type": artifact_type, "title": title,
            "underline": "=" * len(title)}


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
