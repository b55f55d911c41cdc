from setuptools import find_packages, setup

setup(
    name="rc-cts-searchers-example",
    version="1.0.0",
    description="Example searchers for rc-cts: copy this package to start your own",
    license="MIT",
    python_requires=">=3.9",
    packages=find_packages(include=["searchers_example", "searchers_example.*"]),
    install_requires=["rc-cts>=46", "requests>=2.32.4", "httpx>=0.28", "yara-python>=4.3", "puremagic>=1.20"],
    entry_points={
        # The group resilient-circuits loads components from; rc-cts finds searchers there too.
        "resilient.circuits.components": [
            "ExampleSearcher = searchers_example.example:ExampleSearcher",
            "FeedSearcher = searchers_example.feeds:FeedSearcher",
            "ReputationSearcher = searchers_example.reputation:ReputationSearcher",
            "AsyncReputationSearcher = searchers_example.async_reputation:AsyncReputationSearcher",
            "FileSearcher = searchers_example.files:FileSearcher",
        ],
        # The section `resilient-circuits config -c/-u` writes for this package.
        "resilient.circuits.configsection": [
            "searchers_example = searchers_example.config:config_section_data",
            "feed_searcher = searchers_example.config:feed_section_data",
            "reputation_searcher = searchers_example.config:reputation_section_data",
            "async_reputation_searcher = searchers_example.config:async_reputation_section_data",
            "file_searcher = searchers_example.config:file_section_data",
        ],
    },
)
