"""The artifact types the SOAR platform sends to threat services."""

LEGACY_PREFIX = "_lookup_"  # `_lookup_net_uri`: how the original's examples named handlers

ARTIFACT_TYPES = [
    "file.content", "file.name", "file.path",
    "email", "email.body", "email.header", "email.header.sender_address",
    "email.header.sender_name", "email.header.to",
    "hash.md5", "hash.sha1", "hash.sha256", "hash.fuzzy",
    "cert.x509",
    "net.cidr", "net.ip", "net.name", "net.mac", "net.port", "net.uri", "net.uri.path",
    "net.http.request.header", "net.http.response.header",
    "process.name",
    "system.name", "system.mutex", "system.registry", "system.service.name",
    "system.user.name", "system.user.password",
    "threat.report.cve", "threat.malware.family",
]


def is_artifact_type_name(name: object) -> bool:
    """Whether a handler name is an artifact type (``net.uri``...) rather than an ordinary
    circuits event name (``reload``, ``started``...)."""
    return isinstance(name, str) and ("." in name or name in ARTIFACT_TYPES)


def legacy_method_name(artifact_type: str) -> str:
    """``net.uri`` -> ``_lookup_net_uri``: the method name style of the original's examples."""
    return LEGACY_PREFIX + artifact_type.replace(".", "_").replace("-", "_")

