"""What the three abuse.ch stand-ins share, as abuse.ch answers: an ``Auth-Key`` header (none:
401; an unknown one: 403 ``unknown_auth_key``), POST only; then each API's own answer."""
from typing import Callable, List, Optional

from rc_cts.hits import service_of

KEY = "abusech-test-key"


def abusech_route(answer: Callable, accepted: Callable[[], str] = lambda: KEY,
                  once: Optional[List[tuple]] = None) -> Callable:
    """A fake_api route: ``once`` are answers given first, one call each, whatever the call;
    then the key and the method are checked, and ``answer(call)`` gives the API's answer."""
    once = once if once is not None else []

    def route(call):
        if once:
            return once.pop(0)
        key = call.headers.get("auth-key")
        if not key:
            return 401, b"Unauthorized"
        if key != accepted():
            return 403, {"query_status": "unknown_auth_key"}
        if call.method != "POST":
            return 200, {"query_status": "http_post_expected"}
        return answer(call)

    return route


def check_a_rejected_key(cts_service, fake_api, caplog, rejection: str, stand_in: Callable,
                         searcher_class, opts: Callable, refused: dict, answered: dict) -> None:
    """The rejected-key test every abuse.ch searcher passes, with ``rejection`` "http" (a 403)
    or "body" (a 200 whose query_status refuses the key): the ``refused`` artifact gets 303 and
    no hit, one ERROR line names the section to fix, neither the value nor the key is logged
    above DEBUG, and once the key is accepted the same running service answers ``answered``."""
    caplog.set_level("INFO")
    accepted = {"key": "another-key"}          # abuse.ch does not know ours yet (e.g. unconfirmed)
    once: List[tuple] = []
    if rejection == "body":                    # the key refused in a 200 answer's query_status
        once.append((200, {"query_status": "unknown_auth_key"}))
        accepted["key"] = KEY
    stand_in(fake_api, accepted=lambda: accepted["key"], once=once)
    searcher = searcher_class(opts(fake_api))
    service = cts_service(searcher, opts=opts(fake_api), max_retries="1")
    c = service.client()
    name = service_of(searcher.channel)
    r = c.post(name, refused)
    assert r.status == 303 and r.json["hits"] == []       # incomplete: asked again later, never cached empty
    errors = [rec.getMessage() for rec in caplog.records if rec.levelname == "ERROR"]
    assert any(f"{searcher.provider} rejected the" in m and f"[{searcher.section}]" in m for m in errors), errors
    logged = " ".join(rec.getMessage() for rec in caplog.records if rec.levelno > 10)
    assert refused["value"] not in logged and KEY not in logged
    accepted["key"] = KEY                      # the key is confirmed: the same running service answers
    assert len(c.post(name, answered).json["hits"]) == 1
