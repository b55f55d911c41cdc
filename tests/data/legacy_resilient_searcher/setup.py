# A community-style searcher that subclasses resilient-circuits' ResilientComponent.
from setuptools import setup, find_packages

setup(
    name='rc-cts-legacy-resilient',
    version='1.0.0',
    packages=find_packages(),
    install_requires=['rc-cts', 'resilient-circuits'],
    entry_points={
        "resilient.circuits.components": [
            "LegacyResilientSearcher = rc_cts_legacy_resilient.searcher:LegacyResilientSearcher"
        ]
    }
)
