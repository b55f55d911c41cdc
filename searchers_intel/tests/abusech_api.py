"""What the three abuse.ch stand-ins share, as abuse.ch answers: an ``Auth-Key`` header (none:
401; an unknown one: 403 ``unknown_auth_key``), POST only; then each API's own answer."""
from typing import Callable, List, Optional

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
