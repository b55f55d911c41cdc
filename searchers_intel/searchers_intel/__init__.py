"""Ready-made rc-cts searchers for the threat-intel services SOAR users rely on: abuse.ch
(URLhaus, ThreatFox, MalwareBazaar), AbuseIPDB, VirusTotal, AlienVault OTX, GreyNoise
Community, Shodan InternetDB and MISP.  One searcher per service, each on its own channel
(``/cts/<service>``), configured in its own app.config section (``[<service>_searcher]``)."""
