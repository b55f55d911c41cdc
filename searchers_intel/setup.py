from setuptools import find_packages, setup

SERVICES = {  # module: searcher class (its section is [<module>_searcher], its channel <module>)
    "abuseipdb": "AbuseIPDBSearcher",
    "greynoise": "GreyNoiseSearcher",
    "internetdb": "InternetDBSearcher",
    "malwarebazaar": "MalwareBazaarSearcher",
    "misp": "MISPSearcher",
    "otx": "OTXSearcher",
    "threatfox": "ThreatFoxSearcher",
    "urlhaus": "URLhausSearcher",
    "virustotal": "VirusTotalSearcher",
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
        "resilient.circuits.components": [f"{cls} = searchers_intel.{module}:{cls}"
                                          for module, cls in SERVICES.items()],
        # The sections `resilient-circuits config -c/-u` writes for this package.
        "resilient.circuits.configsection": [f"{module}_searcher = searchers_intel.config:{module}"
                                             for module in SERVICES],
    },
)
