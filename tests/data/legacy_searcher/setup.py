# An unmodified searcher package in the style of those written for the original IBM rc-cts.
from setuptools import setup, find_packages

setup(
    name='rc-cts-legacy-example',
    version='1.0.0',
    packages=find_packages(),
    install_requires=['rc-cts'],
    entry_points={
        "resilient.circuits.components": [
            "LegacyExampleSearcher = rc_cts_legacy_example.components.searcher:LegacyExampleSearcher"
        ]
    }
)
