"""An in-memory index of threat-intel indicators from feed files (abuse.ch, Spamhaus style).

Files are CSV (a header row, or a ``# a,b,c`` header comment as abuse.ch writes them)
or plain lists with one indicator per line (``1.2.3.0/24 ; SBL123`` keeps the note).
Every indicator is classified once, at load time, so each lookup is a few dict probes:
IPs and CIDR ranges, domains (matched with their parent domains), URLs, md5/sha1/sha256
hashes and email addresses.
"""
from __future__ import annotations

import csv
import io
import ipaddress
import re
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit

HEX = re.compile(r"^[0-9a-fA-F]+$")
IPV4 = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")
HASH_KINDS = {32: "md5", 40: "sha1", 64: "sha256"}
DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)*[a-z0-9-]{1,63}$")
INDICATOR_COLUMNS = ("indicator", "ioc", "ioc_value", "value", "url", "domain", "host", "hostname",
                     "ip", "ip_address", "dst_ip", "ipaddress", "cidr", "network", "sha256",
                     "sha256_hash", "sha1", "sha1_hash", "md5", "md5_hash", "hash", "email")


@dataclass(frozen=True)
class Match:
    """One indicator that matched: which feed, which indicator, how, and its feed columns."""
    feed: str
    indicator: str
    how: str
    columns: Tuple[Tuple[str, str], ...]


class FeedIndex:
    """The indicators of one feed file."""

    def __init__(self, name: str):
        self.name = name
        self.header: Tuple[str, ...] = ()
        self.rows: List[Tuple[str, ...]] = []     # feed columns, shared by the maps below
        self.exact: Dict[str, object] = {}        # "kind:value" -> row, or a list of rows (repeats)
        self.networks: Dict[int, Dict[int, List[int]]] = {4: {}, 6: {}}  # version -> prefixlen
        self._net_keys: Dict[Tuple[int, int, int], List[int]] = {}       # (version, prefix, int)
        self.count = 0

    # -- loading ---------------------------------------------------------------------------
    def add(self, indicator: str, columns: Tuple[str, ...]) -> bool:
        """Index one indicator; False if it is none of the kinds this index knows."""
        key = classify(indicator)
        if key is None:
            return False
        row = len(self.rows)
        self.rows.append(columns)
        kind, value = key
        if kind == "cidr":
            net = ipaddress.ip_network(value, strict=False)
            bucket = self.networks[net.version].setdefault(net.prefixlen, {})
            bucket.setdefault(int(net.network_address), []).append(row)
        else:
            key = f"{kind}:{value}"
            seen = self.exact.get(key)
            if seen is None:
                self.exact[key] = row  # one int per indicator: a list only for repeats
            elif isinstance(seen, list):
                seen.append(row)
            else:
                self.exact[key] = [seen, row]
        self.count += 1
        return True

    # -- lookups ---------------------------------------------------------------------------
    def _matches(self, rows: Sequence[int], indicator: str, how: str) -> Iterator[Match]:
        for row in rows:
            yield Match(self.name, indicator, how, tuple(zip(self.header, self.rows[row])))

    def exact_match(self, kind: str, value: str, how: str = "") -> List[Match]:
        rows = self.exact.get(f"{kind}:{value}", ())
        return list(self._matches([rows] if isinstance(rows, int) else rows, value, how or kind))

    def ip(self, address: str) -> List[Match]:
        """The IP itself, and every feed network that contains it."""
        ip = ipaddress.ip_address(address)
        found = self.exact_match("ip", str(ip), "ip address")
        as_int, bits = int(ip), ip.max_prefixlen
        for prefix, bucket in self.networks[ip.version].items():
            base = as_int >> (bits - prefix) << (bits - prefix)
            rows = bucket.get(base)
            if rows:
                net = ipaddress.ip_network((base, prefix))
                found += self._matches(rows, str(net), f"network {net} contains {ip}")
        return found

    def cidr(self, value: str) -> List[Match]:
        """Feed networks equal to, or containing, the queried network."""
        query = ipaddress.ip_network(value, strict=False)
        found: List[Match] = []
        as_int, bits = int(query.network_address), query.max_prefixlen
        for prefix, bucket in self.networks[query.version].items():
            if prefix <= query.prefixlen:
                base = as_int >> (bits - prefix) << (bits - prefix)
                rows = bucket.get(base)
                if rows:
                    net = ipaddress.ip_network((base, prefix))
                    how = "same network" if prefix == query.prefixlen else f"network {net} contains {query}"
                    found += self._matches(rows, str(net), how)
        if query.prefixlen == bits:
            found += self.exact_match("ip", str(query.network_address), "ip address")
        return found

    def domain(self, host: str) -> List[Match]:
        """The host and each parent domain (``a.b.evil.example`` matches ``evil.example``)."""
        host = host.strip().rstrip(".").lower()
        found: List[Match] = []
        labels = host.split(".")
        for i in range(len(labels)):
            candidate = ".".join(labels[i:])
            found += self.exact_match("domain", candidate,
                                      "domain" if i == 0 else f"parent domain {candidate} of {host}")
        return found


class IndicatorSet:
    """Several feeds; each lookup method returns the matches of every feed."""

    def __init__(self, feeds: Sequence[FeedIndex] = ()):
        self.feeds = list(feeds)

    def __len__(self) -> int:
        return sum(f.count for f in self.feeds)

    def _each(self, method: str, value: str) -> List[Match]:
        return [m for feed in self.feeds for m in getattr(feed, method)(value)]

    def ip(self, value: str) -> List[Match]:
        return self._each("ip", value)

    def cidr(self, value: str) -> List[Match]:
        return self._each("cidr", value)

    def domain(self, value: str) -> List[Match]:
        return self._each("domain", value)

    def url(self, value: str) -> List[Match]:
        """The URL itself, then its host (an IP, or a domain with its parents)."""
        found = [m for f in self.feeds for m in f.exact_match("url", normalize_url(value), "url")]
        host = urlsplit(value if "://" in value else f"http://{value}").hostname or ""
        if host:
            found += self.ip(host) if is_ip(host) else self.domain(host)
        return found

    def hash(self, value: str) -> List[Match]:
        value = value.strip().lower()
        kind = HASH_KINDS.get(len(value))
        if kind is None or not HEX.match(value):
            return []
        return [m for f in self.feeds for m in f.exact_match(kind, value)]

    def email(self, value: str) -> List[Match]:
        """The address itself, then its domain."""
        address = value.strip().strip("<>").lower()
        found = [m for f in self.feeds for m in f.exact_match("email", address, "email address")]
        if "@" in address:
            found += self.domain(address.rsplit("@", 1)[1])
        return found


# -- classifying and reading -------------------------------------------------------------------
def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def normalize_url(url: str) -> str:
    """Scheme and host in lower case, no default trailing slash: the form URLs are indexed in."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return url.strip()
    if not parts.scheme or not parts.netloc:
        return url.strip()
    path = parts.path if parts.path not in ("", "/") else ""
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{path}{query}"


def classify(indicator: str) -> Optional[Tuple[str, str]]:
    """``(kind, normalized value)`` for an indicator, or None if it is no known kind."""
    text = indicator.strip()
    if not text:
        return None
    if "://" in text:
        return "url", normalize_url(text)
    if "/" in text:
        try:
            return "cidr", str(ipaddress.ip_network(text, strict=False))
        except ValueError:
            return None
    lowered = text.lower()
    if len(text) in HASH_KINDS and HEX.match(text):
        return HASH_KINDS[len(text)], lowered
    if IPV4.match(text) or ":" in text:
        try:
            return "ip", str(ipaddress.ip_address(text))
        except ValueError:
            if IPV4.match(text):
                return None
    if "@" in text:
        return "email", lowered.strip("<>")
    domain = lowered.rstrip(".")
    if DOMAIN.match(domain) and "." in domain:
        return "domain", domain
    return None


def load_feed(name: str, text: str) -> Tuple[FeedIndex, int]:
    """Index a feed file's text; returns the index and the number of lines skipped."""
    feed = FeedIndex(name)
    lines = text.splitlines()
    comments, data = [], []
    for line in lines:
        (comments if line.lstrip().startswith("#") and not data else data).append(line)
    data = [line for line in data if line.strip() and not line.lstrip().startswith(("#", ";"))]
    skipped = 0
    if _looks_like_csv(data):
        header_line = next((c.lstrip("# ").strip() for c in reversed(comments) if "," in c), None)
        reader = csv.reader(io.StringIO("\n".join(data)), skipinitialspace=True)
        rows = list(reader)
        if header_line is None and rows and classify(rows[0][0]) is None and not any(
                classify(cell) for cell in rows[0]):
            header_line, rows = ",".join(rows[0]), rows[1:]
        header = next(csv.reader([header_line], skipinitialspace=True)) if header_line else \
            [f"column {i + 1}" for i in range(max(map(len, rows), default=0))]
        feed.header = tuple(h.strip() for h in header)
        column = _indicator_column(feed.header, rows)
        for row in rows:
            if column < len(row) and feed.add(row[column], tuple(c.strip() for c in row)):
                continue
            skipped += 1
        return feed, skipped
    feed.header = ("indicator", "note")
    for line in data:
        indicator, _, note = line.partition(";")
        if not feed.add(indicator.strip(), (indicator.strip(), note.strip())):
            skipped += 1
    return feed, skipped


def _looks_like_csv(data: List[str]) -> bool:
    sample = data[:20]
    return bool(sample) and sum("," in line for line in sample) > len(sample) / 2


def _indicator_column(header: Tuple[str, ...], rows: List[List[str]]) -> int:
    names = [h.lower().replace(" ", "_") for h in header]
    for wanted in INDICATOR_COLUMNS:
        if wanted in names:
            return names.index(wanted)
    for row in rows[:20]:  # else the first column whose cells are indicators
        for i, cell in enumerate(row):
            if classify(cell):
                return i
    return 0
