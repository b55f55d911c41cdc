# rc-cts with the example searchers, as a non-root service on port 9000.
#   docker build -t rc-cts .
#   docker run -p 9000:9000 rc-cts            # http://localhost:9000/cts/example
# Your own searchers: --build-arg SEARCHERS="my-searcher-package ..." (pip requirement
# specifiers), or FROM rc-cts and pip install them (see docs/deployment.rst).
FROM python:3.11-slim

ARG SEARCHERS=/src/searchers_example
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    APP_CONFIG_FILE=/etc/rc-cts/app.config \
    RC_CTS_PORT=9000

COPY setup.py README.rst MANIFEST.in app.config.sample rc_cts_launcher.py /src/
COPY rc_cts /src/rc_cts
COPY searchers_example /src/searchers_example
RUN pip install /src $SEARCHERS && rm -rf /src \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/rc-cts --no-create-home rc-cts \
    && mkdir -p /etc/rc-cts /var/lib/rc-cts/uploads \
    && chown -R rc-cts:rc-cts /var/lib/rc-cts
COPY docker/app.config /etc/rc-cts/app.config

# The config (mount your own app.config over the image's), and the data: the sqlite store and
# the upload directory, one per container.
VOLUME ["/etc/rc-cts", "/var/lib/rc-cts"]
USER rc-cts
WORKDIR /var/lib/rc-cts
EXPOSE 9000

# GET /healthz on the service's own port (plain HTTP: with secure = true, override it).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('RC_CTS_PORT', '9000'), timeout=4).status == 200 else 1)"

# SIGTERM (docker stop) drains for shutdown_grace_secs (10 s): give docker stop -t / stop_grace_period more.
STOPSIGNAL SIGTERM
CMD ["rc-cts", "run"]
