"""The artifact types the SOAR platform sends to threat services."""

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
