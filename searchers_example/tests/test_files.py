"""The file-analysis searcher: samples and rules are made here (no malware in the repository)."""
import hashlib
import io
import os
import struct
import time
import zipfile
from email.message import EmailMessage

import pytest

from rc_cts.testing import hit_values
from searchers_example.files import FileSearcher

# The EICAR anti-virus test string, put together here so no file in the repository holds it.
EICAR = ("X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!" + "$H+H*").encode()
PE = b"MZ" + b"\x90\x00" * 29 + struct.pack("<I", 64) + b"PE\x00\x00" + b"\x4c\x01" + b"\x00" * 200
ELF = b"\x7fELF\x02\x01\x01" + b"\x00" * 9 + b"\x02\x00\x3e\x00" + b"\x00" * 100
PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
KNOWN_BAD = b"a harmless file that a feed lists as bad\n"

RULES = {
    "test_strings.yar": '''
rule EICAR_test_file : test antivirus {
    meta:
        description = "EICAR anti-virus test file"
        severity = 3
    strings:
        $eicar = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE"
    condition:
        $eicar
}''',
    "formats.yara": '''
rule PE_executable : executable windows {
    meta:
        description = "a Windows PE file"
    condition:
        uint16(0) == 0x5A4D and uint32(uint32(0x3C)) == 0x00004550
}
rule ELF_executable : executable linux {
    condition:
        uint32(0) == 0x464C457F
}''',
}



@pytest.fixture
def opts(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    for name, text in RULES.items():
        (rules / name).write_text(text)
    feed = tmp_path / "hashes.txt"
    feed.write_text(f"{hashlib.md5(KNOWN_BAD).hexdigest()} ; known bad sample\nbad-sender.test\n"
                    "http://phish.test/login\n")
    return {"file_searcher": {"rules_dir": str(rules), "reload_check_secs": "0"},
            "feed_searcher": {"feed.local": str(feed), "reload_check_secs": "0"}}


def test_eicar_matches_its_rule_with_tags_meta_and_file_facts(cts_lookup, opts):
    [hit] = cts_lookup(FileSearcher, "file.content", "eicar.com", file=EICAR, opts=opts)
    p = hit_values(hit)
    assert p["YARA rule"] == "EICAR_test_file" and p["Tags"] == "test, antivirus"
    assert p["description"] == "EICAR anti-virus test file" and p["severity"] == 3
    assert p["Rule file"] == "test_strings"
    assert p["SHA256"] == hashlib.sha256(EICAR).hexdigest() and p["MD5"] == hashlib.md5(EICAR).hexdigest()
    assert p["SHA1"] == hashlib.sha1(EICAR).hexdigest() and p["Size"] == len(EICAR)


def test_pe_and_elf_headers(cts_lookup, opts):
    [hit] = cts_lookup(FileSearcher, "file.content", "a.exe", file=PE, opts=opts)
    assert hit_values(hit)["YARA rule"] == "PE_executable" and "executable" in hit_values(hit)["File type"].lower()
    [hit] = cts_lookup(FileSearcher, "file.content", "a.elf", file=ELF, opts=opts)
    assert hit_values(hit)["YARA rule"] == "ELF_executable" and hit_values(hit)["Tags"] == "executable, linux"


def test_files_no_rule_matches_give_no_hits(cts_lookup, opts):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "hello")
    for sample in (PDF, buf.getvalue(), b"", os.urandom(300 * 1024)):
        assert cts_lookup(FileSearcher, "file.content", "sample", file=sample, opts=opts) == []


def test_known_bad_hash_from_the_feed_without_a_rule(cts_lookup, opts):
    [hit] = cts_lookup(FileSearcher, "file.content", "sample.txt", file=KNOWN_BAD, opts=opts)
    p = hit_values(hit)
    assert p["Feed"] == "local" and p["Indicator"] == hashlib.md5(KNOWN_BAD).hexdigest()
    assert p["note"] == "known bad sample" and p["SHA256"] == hashlib.sha256(KNOWN_BAD).hexdigest()


def test_hash_artifacts_by_value(cts_lookup, opts):
    [hit] = cts_lookup(FileSearcher, "hash.md5", hashlib.md5(KNOWN_BAD).hexdigest().upper(), opts=opts)
    assert hit_values(hit)["Feed"] == "local"
    assert cts_lookup(FileSearcher, "hash.sha256", "0" * 64, opts=opts) == []


def test_file_content_without_a_file_is_no_hit(cts_lookup, opts):
    assert cts_lookup(FileSearcher, "file.content", "name-only.exe", opts=opts) == []


def test_detected_file_types():
    from searchers_example.files import file_type
    assert "PDF" in file_type(PDF) or "pdf" in file_type(PDF)
    assert file_type(b"") == "empty"
    assert "ELF" in file_type(ELF) or "elf" in file_type(ELF).lower()


def message_bytes():
    msg = EmailMessage()
    msg["From"] = "Mallory <mallory@bad-sender.test>"
    msg["To"] = "victim@example.com"
    msg["Subject"] = "invoice"
    msg.set_content("Please log in at http://phish.test/login, or http://fine.test/.")
    msg.add_attachment(EICAR, maintype="application", subtype="octet-stream", filename="invoice.com")
    msg.add_attachment(KNOWN_BAD, maintype="text", subtype="plain", filename="notes.txt")
    return msg.as_bytes()


def test_email_sender_urls_and_attachments(cts_lookup, opts):
    hits = cts_lookup(FileSearcher, "email", "invoice.eml", file=message_bytes(), opts=opts)
    found = sorted(hit_values(h)["Found in"] for h in hits)
    assert found == ["URL http://phish.test/login", "attachment invoice.com", "attachment notes.txt",
                     "sender mallory@bad-sender.test"]
    rule = next(h for h in hits if hit_values(h)["Found in"] == "attachment invoice.com")
    assert hit_values(rule)["YARA rule"] == "EICAR_test_file" and hit_values(rule)["File"] == "invoice.com"


def test_email_as_the_artifact_value(cts_lookup, opts):
    text = message_bytes().decode("ascii", "replace")
    hits = cts_lookup(FileSearcher, "email", text, opts=opts)
    assert "sender mallory@bad-sender.test" in [hit_values(h)["Found in"] for h in hits]


def test_rules_are_recompiled_when_they_change_and_bad_rules_keep_the_old(cts_service, opts, tmp_path, caplog):
    service = cts_service(FileSearcher(opts), opts=opts)
    c = service.client()
    assert c.post("files", {"type": "file.content", "value": "a.pdf"}, file_bytes=PDF).json["hits"] == []
    (tmp_path / "rules" / "pdf.yar").write_text('rule PDF_document : document { condition: uint32(0) == 0x46445025 }')
    r = c.post("files", {"type": "file.content", "value": "b.pdf"}, file_bytes=PDF + b" ")
    assert [hit_values(h)["YARA rule"] for h in r.json["hits"]] == ["PDF_document"]
    (tmp_path / "rules" / "broken.yar").write_text("rule broken { condition: nonsense( }")
    time.sleep(0.01)
    r = c.post("files", {"type": "file.content", "value": "c.pdf"}, file_bytes=PDF + b"  ")
    assert [hit_values(h)["YARA rule"] for h in r.json["hits"]] == ["PDF_document"]
    assert any("do not compile" in rec.getMessage() for rec in caplog.records)


def test_service_asks_the_platform_for_files(cts_service, opts):
    assert cts_service(FileSearcher(opts), opts=opts).client().options("files").json == {"upload_file": True}
