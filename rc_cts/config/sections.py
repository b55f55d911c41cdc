"""The config sections rc-cts adds to an app.config (``resilient-circuits config -c/-u``,
and the top of ``app.config.sample``): every option with its default."""

WEBSERVER = """\
[webserver]
# Interface to listen on (0.0.0.0 for all) and port (0 picks a free port and logs it).
server = localhost
port = 9000
# HTTPS: certfile is a PEM file with the certificate (and the key, unless keyfile is set).
secure = false
#certfile = /path/to/cert.pem
#keyfile = /path/to/key.pem
"""

CUSTOM_THREAT_SERVICE = """\
[custom_threat_service]
# Services are served at <urlbase>/<name>; <name> selects the searchers on searcher_channel("<name>").
urlbase = /cts
# Answer OPTIONS with upload_file: true for every service, so the platform uploads artifact
# files (services with a searcher that declares upload_file = True answer true anyway).
upload_file = false
# retry_secs sent with a 303: on the POST that starts a lookup, and on later GETs.
first_retry_secs = 5
later_retry_secs = 60
# How many times a searcher that raised ThreatLookupIncompleteException is run again,
# and how long to wait before each new run. A lookup left incomplete (a searcher failed, timed
# out or stayed incomplete) answers 303 with the hits found so far; its missing searchers run
# again on later GETs after a backoff (incomplete_retry_secs, doubling, at most 12 times that),
# and the max_retries-th GET answers 200 with the hits found. The next POST runs them again.
max_retries = 60
incomplete_retry_secs = 5
# Results kept for rescans and GETs: at most cache_size lookups, each for cache_ttl seconds.
cache_size = 10000
cache_ttl = 600
# HTTP Basic authentication, when the service is registered with -user/-password (both or neither).
#auth_user = soar
#auth_password = $CTS_PASSWORD
# A POST or GET waits up to this long for the lookup to complete and answers 200 with the hits;
# after that it answers 303 and the platform polls. 0 gives the original rc-cts's first answer:
# 303 on the POST of every new lookup.
sync_wait_secs = 1.0
# Each searcher has its own bulkhead, so a slow or broken one never delays the others: at most
# `workers` calls at once (its own threads; async handlers share one asyncio loop), at most
# max_queue calls waiting (beyond that its lookups stay pending and the platform retries later),
# and each call given up after call_timeout_secs (the lookup is then kept incomplete).
# A searcher class may declare max_concurrency, max_queue and call_timeout_secs itself; a
# section [custom_threat_service.<service>] overrides them for one service, e.g.
#   [custom_threat_service.example]
#   max_concurrency = 4
workers = 32
max_queue = 1000
call_timeout_secs = 60
# A searcher still running this long after its lookup started leaves the lookup incomplete.
lookup_timeout_secs = 300
# Largest request body accepted (413 above it), not counting an uploaded file's content.
max_body_mb = 10
# Largest artifact file accepted (413 as soon as an upload passes it; nothing is kept).
max_file_mb = 100
# Where uploaded files larger than 256 KiB are written while searchers use them
# (default: the system's temporary directory); each is removed when its lookup is done.
#upload_dir = /var/lib/rc-cts/uploads
# A connection with no traffic for idle_timeout_secs is closed; a request must arrive
# completely within request_timeout_secs (408 otherwise).
idle_timeout_secs = 60
request_timeout_secs = 120
# Connections beyond this many are refused.
max_connections = 2000
# Where results live: memory (this process only, lost on restart), sqlite (survives restarts,
# one machine), or redis (shared by several rc-cts processes: replicas behind a load balancer).
store = memory
sqlite_path = ~/.resilient/rc-cts.sqlite3
# redis:// or rediss:// (TLS), with the password in the URL; keep it out of this file with
# redis_url = $REDIS_URL (read from the environment).
redis_url = redis://localhost:6379/0
redis_prefix = rc_cts:
# A process running a lookup renews its lease every lease_secs/3; if it dies, another process
# (or this one, restarted) takes the lookup over once the lease has expired.
lease_secs = 30
# SIGTERM or SIGINT: stop accepting connections, cancel the calls still queued (their lookups
# stay pending in a sqlite or redis store, for the next start or another replica), wait up to
# shutdown_grace_secs for the calls running, then exit. A second signal exits at once.
shutdown_grace_secs = 10
"""


def webserver_section() -> str:
    return WEBSERVER


def custom_threat_service_section() -> str:
    return CUSTOM_THREAT_SERVICE
