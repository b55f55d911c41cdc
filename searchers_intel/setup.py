from setuptools import find_packages, setup

SEARCHERS = {  # entry point name: module:class
    "InternetDBSearcher": "internetdb:InternetDBSearcher",
}
SECTIONS = {  # app.config section: config function
    "internetdb_searcher": "internetdb",
}

setup(
    name="rc-cts-searchers-intel",
    version="1.0.0",
    description="Ready-made rc-cts searchers: abuse.ch, AbuseIPDB, VirusTotal, OTX, GreyNoise, "
                "Shodan InternetDB, MISP",
    license="MIT",
    python_requires=">=3.9",
    packages=find_packages(include=["searchers_intel", "searchers_intel.*"]),
    install_requires=["rc-cts>=46", "httpx>=0.28"],
    entry_points={
        # The group resilient-circuits loads components from; rc-cts finds searchers there too.
        "resilient.circuits.components": [f"{name} = searchers_intel.{target}" for name, target in SEARCHERS.items()],
        # The sections `resilient-circuits config -c/-u` writes for this package.
        "resilient.circuits.configsection": [f"{name} = searchers_intel.config:{fn}" for name, fn in SECTIONS.items()],
    },
)
