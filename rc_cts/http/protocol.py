"""The Custom Threat Service protocol's data: artifact validation, request ids, answers."""
from __future__ import annotations

import json
import uuid
from typing import Any, Dict, List, Optional, Tuple

from .errors import HttpError

# Any fixed UUID: request ids are uuid5 under it, so they are stable across restarts and replicas.
_ID_NAMESPACE = uuid.UUID("18222d9c-adf0-409c-aa19-beb27130ba12")
MAX_TYPE_LENGTH = 128
# An artifact value is a string, a number or a small DTO (NameValueDTO, RegistryDTO): a few
# levels.  Deeper nesting is refused, so that no code after validation (json.dumps, copies,
# searchers) can be made to recurse past Python's limit by a client.
MAX_DEPTH = 32
NESTED_TOO_DEEPLY = f"JSON nested too deeply (more than {MAX_DEPTH} levels)"


def parse_artifact(raw: bytes) -> Dict[str, Any]:
    """Decode and validate a ThreatServiceArtifactDTO; 400 with the reason otherwise."""
    try:
        artifact = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise HttpError(400, "artifact is not UTF-8 text") from None
    except RecursionError:  # the C parser recurses once per level: [[[[... passes its limit
        raise HttpError(400, NESTED_TOO_DEEPLY) from None
    except ValueError as exc:
        raise HttpError(400, f"artifact is not valid JSON: {exc}") from None
    return validate_artifact(artifact)


def validate_artifact(artifact: Any) -> Dict[str, Any]:
    """The artifact if it is one (400 otherwise): every string in it UTF-8 text, nested
    at most MAX_DEPTH levels, with a usable type name and a value."""
    if not isinstance(artifact, dict):
        raise HttpError(400, "artifact must be a JSON object with 'type' and 'value'")
    _check_tree(artifact)
    kind = artifact.get("type")
    if not isinstance(kind, str) or not kind.strip():
        raise HttpError(400, "artifact 'type' is missing or not a non-empty string")
    if len(kind) > MAX_TYPE_LENGTH or any(c.isspace() or c == "/" for c in kind):
        raise HttpError(400, "artifact 'type' is not a valid artifact type name")
    if "value" not in artifact or artifact["value"] is None:
        raise HttpError(400, "artifact 'value' is missing")
    return artifact


def _check_tree(artifact: Dict[str, Any]) -> None:
    """Every key and string of the artifact encodes as UTF-8 (JSON's \\ud800 escape decodes to
    a lone surrogate, which would fail later, in the request id or a store), and nothing is
    nested deeper than MAX_DEPTH.  A loop with its own stack: client data never sets the
    depth of our recursion.  Messages name no value (4xx answers are logged at WARNING)."""
    stack: List[Tuple[Any, int]] = [(artifact, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            _check_text(node)
        elif isinstance(node, (dict, list)):
            if depth > MAX_DEPTH:
                raise HttpError(400, NESTED_TOO_DEEPLY)
            if isinstance(node, dict):
                for key, item in node.items():
                    _check_text(key)
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in node)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise HttpError(400, "artifact has a string that cannot be encoded as UTF-8 "
                             "(a lone surrogate escape such as \\ud800)") from None


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_id(service: str, artifact: Dict[str, Any], file_sha256: Optional[str] = None) -> str:
    """Deterministic id: the same service, artifact and file content give the same id,
    so the platform's periodic re-scans are answered from the store."""
    key = canonical_json([service, artifact["type"], artifact["value"], file_sha256 or ""])
    return str(uuid.uuid5(_ID_NAMESPACE, key))


def done_body(rid: str, hits: List[dict]) -> Dict[str, Any]:
    """200: the complete ResponseDTO."""
    return {"id": rid, "hits": hits}


def retry_body(rid: str, retry_secs: float, hits: List[dict]) -> Dict[str, Any]:
    """303: the lookup is still running; hits found so far may be shown already."""
    secs = int(retry_secs) if float(retry_secs).is_integer() else retry_secs
    return {"id": rid, "retry_secs": secs, "hits": hits}
