import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
# One source of truth: rc_cts/version.py (releases are 46 and above, past IBM's rc-cts 45.1.3279).
VERSION = re.search(r'^__version__ = "([^"]+)"', (HERE / "rc_cts" / "version.py").read_text(encoding="utf-8"),
                    re.M).group(1)

setup(
    name="rc-cts",
    version=VERSION,
    description="A framework for Custom Threat Services for IBM Security SOAR, built on circuits",
    long_description=(HERE / "README.rst").read_text(encoding="utf-8"),
    long_description_content_type="text/x-rst",
    license="MIT",
    python_requires=">=3.9",
    packages=find_packages(include=["rc_cts", "rc_cts.*"]),
    # The rc-cts command starts outside rc_cts, so it can name IBM's rc_cts when that is imported.
    py_modules=["rc_cts_launcher"],
    package_data={"rc_cts": ["py.typed"]},
    install_requires=[
        "circuits>=3.2.3",
        "resilient-circuits>=51.0.0",
        "cachetools>=5.0",
        "h11>=0.16",
        "python-multipart>=0.0.20",
        "redis>=4.5",
        "prometheus-client>=0.20",
    ],
    extras_require={
        # Searcher packages written for the original rc-cts call pkg_resources.declare_namespace.
        "legacy": ["setuptools>=40,<82"],
        "test": ["pytest>=7.0", "pytest-timeout>=2.1", "requests-mock>=1.9", "wheel>=0.38",
                 "cryptography>=44.0.1", "sphinx>=5.0", "pytest-resilient-circuits>=51.0.0", "mypy>=1.10", "types-cachetools>=5.0",
                 "hypothesis>=6.100", "build>=1.0"],
        # The docs: sphinx-build -W -b html docs docs/_build
        "docs": ["sphinx>=5.0"],
        # benchmarks/: the aiohttp service that is the cost floor in ../shared/bench
        "bench": ["aiohttp>=3.12.14"],
    },
    entry_points={
        "console_scripts": ["rc-cts=rc_cts_launcher:main"],
        # Under the resilient-circuits daemon: the service component, its config sections
        # (one entry each, because `resilient-circuits config -u` adds one section per entry),
        # and its selftest.
        "resilient.circuits.components": [
            "CustomThreatService = rc_cts.service:CustomThreatService",
        ],
        "resilient.circuits.configsection": [
            "webserver = rc_cts.config.sections:webserver_section",
            "custom_threat_service = rc_cts.config.sections:custom_threat_service_section",
        ],
        "resilient.circuits.selftest": [
            "rc_cts = rc_cts.selftest:selftest_function",
        ],
        # Fixtures for searcher authors: cts_lookup, cts_service.
        "pytest11": ["rc_cts = rc_cts.testing"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Framework :: circuits",
        "Topic :: Security",
    ],
)
