"""The app.config sections of the example searchers, with every option and its default
(one function per section: `resilient-circuits config -u` adds one section per entry point)."""

EXAMPLE = """\
[searchers_example]
# The example searcher (/cts/example) has no options.
"""

FEED_SEARCHER = """\
[feed_searcher]
# Indicator files for /cts/feeds, one line per feed: feed.<name> = <path>.
# CSV (a header row, or abuse.ch's '# a,b,c' header comment) or one indicator per line.
#feed.urlhaus = /var/lib/rc-cts/feeds/urlhaus.csv
#feed.spamhaus_drop = /var/lib/rc-cts/feeds/drop.txt
# How often (seconds) to check the files for changes, during lookups.
reload_check_secs = 30
"""

REPUTATION_SEARCHER = """\
[reputation_searcher]
# A reputation web API for /cts/reputation: GET <url>/<ip|domain|url|hash>/<value>.
# No default: without a url, /cts/reputation answers no hits. The key is sent as X-API-Key.
#url = https://reputation.example.com/api/v1
#api_key = $REPUTATION_API_KEY
timeout_secs = 10
rate_limit_per_sec = 4
# 429/5xx/timeouts: tried this many times, backing off from backoff_secs, then the lookup
# is reported incomplete and rc-cts asks again later.
max_attempts = 3
backoff_secs = 1
"""

ASYNC_REPUTATION_SEARCHER = """\
[async_reputation_searcher]
# The same reputation API for /cts/reputation_async, called with httpx on rc-cts's asyncio loop.
# Its quota (rate_limit = 4/second, 1000/day) and concurrency are declared on the class;
# override them in [custom_threat_service.reputation_async].
# No default: without a url, /cts/reputation_async answers no hits.
#url = https://reputation.example.com/api/v1
#api_key = $REPUTATION_API_KEY
timeout_secs = 10
"""


FILE_SEARCHER = """\
[file_searcher]
# File analysis for /cts/files (hashes, file type, YARA, and the [feed_searcher] hash lists).
# A directory of YARA rule files (*.yar, *.yara), compiled once and again when one changes.
#rules_dir = /var/lib/rc-cts/yara
# How often (seconds) to check the rule files for changes, during lookups.
reload_check_secs = 30
"""


def config_section_data() -> str:
    return EXAMPLE


def feed_section_data() -> str:
    return FEED_SEARCHER


def reputation_section_data() -> str:
    return REPUTATION_SEARCHER


def async_reputation_section_data() -> str:
    return ASYNC_REPUTATION_SEARCHER


def file_section_data() -> str:
    return FILE_SEARCHER
