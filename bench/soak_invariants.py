"""The invariants of the reliability soak (bench/soak.py), as pure functions over what the
run recorded, so that each can be tested on recorded responses that violate it
(bench/test_soak_invariants.py).

An event is one HTTP exchange the soak made, a dict:

- `t`: when the request was sent, seconds since the run started; `end`: when its answer
  (or its failure) came;
- `kind`: what the soak was doing (`cc-jwt`, `me`, `refresh`, ...), `method`, `path`;
- `status`: the HTTP status, or 0 when no answer came (refused or reset connection,
  timeout); `retry_after`: whether the answer carried `Retry-After`; `error`: the OAuth
  `error` code of a JSON error body, if any;
- `expect`: what the answer must be:
  - `valid`: a token that is neither expired nor revoked was presented;
  - `revoked`: a token revoked at `revoked_at` (run seconds, when the revoking request
    was answered) was presented;
  - `fresh-refresh`: a refresh token never presented before;
  - `reuse`: a refresh token that was spent already (a real reuse);
  - `after-reuse`: the newest refresh token of a family whose reuse was detected;
  - `issue`: a grant that must succeed; `any`: anything but a server error;
- `accepted`: for `valid` and `revoked`, whether the token was taken as good (200 from an
  API, `"active": true` from introspection), and `refused`, whether it was refused as
  invalid (401, or `"active": false`).

A fault is a dict `{"name", "start", "end"}` in run seconds; `end` includes the time the
system is given to recover (a restart, health checks, the pool's reconnection).
"""

# How long after its revocation a JWT may still be accepted by a resource server that
# follows the feed, in seconds: about a second (docs/security.md), with room for the
# soak's own scheduling.
REVOCATION_BOUND = 2.0
# The bound while the feed cannot be read (a database cut, the issuer killed): the
# staleness bound (60 s by default) plus that second.
STALE_BOUND = 62.0
# After `tessera keys rotate --now`, tokens signed with the new key may be refused by a
# resource server until it has the key: docs/keys.md states up to the guard's refetch
# cooldown (30 s) after the instances switch (within their 10 s tick).
EMERGENCY_ROTATION_WINDOW = 41.0
# Statuses a load balancer gives for requests in flight on an instance that was killed
# (the connection was reset before an answer): allowed only inside a kill's window.
KILLED_IN_FLIGHT = (502, 504, 0)


def violation(invariant, message, event=None):
    return {"invariant": invariant, "message": message, "event": event}


def overlapping(faults, start, end, names=None):
    """The faults whose window meets [start, end]."""
    return [f for f in faults
            if f["start"] <= end and start <= f["end"]
            and (names is None or f["name"] in names)]


def stated_window(e, faults):
    """Whether `e` presented a token signed with a key an emergency rotation (a
    `rotate-now` fault naming its `kid`) had just activated, within the stated window."""
    return any(f["name"] == "rotate-now" and f.get("kid") and e.get("kid") == f["kid"]
               and f["start"] <= e["t"] <= f["start"] + EMERGENCY_ROTATION_WINDOW
               for f in faults)


def check_good_tokens(events, faults=()):
    """1. A token that is neither expired nor revoked is never refused (401, or inactive at
    introspection), outside the stated window of an emergency key rotation for the tokens
    of the new key; a fault may make it 503 with Retry-After, nothing else."""
    found = []
    for e in events:
        if e.get("expect") != "valid":
            continue
        if e.get("refused") and stated_window(e, faults):
            continue
        if e.get("refused"):
            found.append(violation(1, f"a good token was refused ({e['status']}"
                                      f"{' ' + e['error'] if e.get('error') else ''})", e))
        elif e["status"] == 503 and not e.get("retry_after"):
            found.append(violation(1, "a good token got 503 without Retry-After", e))
    return found


def check_revoked_tokens(events, faults, bound=REVOCATION_BOUND, stale_bound=STALE_BOUND):
    """2. A revoked token is never accepted later than the propagation bound after its
    revocation (the staleness bound when a fault kept the feed from being read)."""
    found = []
    for e in events:
        if e.get("expect") != "revoked" or not e.get("accepted"):
            continue
        late = e["t"] - e["revoked_at"]
        allowed = stale_bound if overlapping(faults, e["revoked_at"], e["t"]) else bound
        if late > allowed:
            found.append(violation(2, f"a token revoked {late:.1f} s earlier was accepted "
                                      f"(bound {allowed:.0f} s)", e))
    return found


def check_refresh_chains(events):
    """3. A refresh chain never sees a false reuse, and a real reuse always revokes the
    family."""
    found = []
    for e in events:
        expect = e.get("expect")
        if expect == "fresh-refresh" and e["status"] == 400:
            found.append(violation(3, f"a never-used refresh token was refused "
                                      f"({e.get('error')}): a false reuse", e))
        elif expect == "reuse" and e["status"] == 200:
            found.append(violation(3, "a spent refresh token was accepted again", e))
        elif expect == "after-reuse" and e["status"] == 200:
            found.append(violation(3, "the family lived on after a detected reuse", e))
    return found


def check_server_errors(events, faults):
    """4. No 5xx other than 503 (and a 503 only inside a fault's window). A killed
    (SIGKILL) instance's requests in flight may end with the balancer's 502/504 or a reset,
    inside that kill's window only; an instance stopped with SIGTERM completes its
    requests in flight, so its window allows none."""
    found = []
    for e in events:
        status = e["status"]
        kills = overlapping(faults, e["t"], e["end"], names=("kill-authz",))
        if status in KILLED_IN_FLIGHT:
            if not kills:
                what = "no answer" if status == 0 else f"{status}"
                found.append(violation(4, f"{what} outside any instance's kill window", e))
        elif status >= 500 and status != 503:
            found.append(violation(4, f"a {status}", e))
        elif status == 503 and not overlapping(faults, e["t"], e["end"]):
            found.append(violation(4, "a 503 outside any fault's window", e))
    return found


def check_logs(logs):
    """4. No panic in any log. `logs` maps a process name to its log's text."""
    found = []
    for name, text in logs.items():
        for line in text.splitlines():
            if "panicked at" in line or "RUST_BACKTRACE" in line:
                found.append(violation(4, f"{name} panicked: {line.strip()[:200]}"))
    return found


def check_audit(issued, audited):
    """5. Every token issued appears in the audit log once. `issued` holds the ids of the
    tokens the soak was given (a JWT's `jti`, an opaque token's digest prefix);
    `audited` the ids the audit log names, as often as it names them."""
    found = []
    counts = {}
    for token_id in audited:
        counts[token_id] = counts.get(token_id, 0) + 1
    for token_id in issued:
        n = counts.get(token_id, 0)
        if n != 1:
            found.append(violation(5, f"token {token_id} is in the audit log {n} times"))
    return found


def check_durable(written, read_back):
    """5. Every user-API write is durable: each `(username, name)` the API acknowledged
    is what a read after the run finds."""
    found = []
    for username, name in written.items():
        if username not in read_back:
            found.append(violation(5, f"user {username}, created with 201, is gone"))
        elif read_back[username] != name:
            found.append(violation(5, f"user {username}'s name is {read_back[username]!r}, "
                                      f"not the {name!r} last acknowledged"))
    return found


def check_memory(samples, growth=0.5, slack=32 * 1024 * 1024):
    """6. Resident memory does not grow without bound: for each process, the mean of the
    last quarter of its samples is within `growth` (and `slack` bytes) of the mean of the
    second quarter, once the caches have warmed. `samples` maps a process to a list of
    `(t, rss_bytes)` from one life (a restarted process is a new name)."""
    found = []
    for name, points in samples.items():
        if len(points) < 8:
            continue
        q = len(points) // 4
        warm = sum(r for _, r in points[q:2 * q]) / q
        late = sum(r for _, r in points[-q:]) / q
        if late > warm * (1 + growth) + slack:
            found.append(violation(6, f"{name} grew from {warm / 2**20:.0f} MiB to "
                                      f"{late / 2**20:.0f} MiB"))
    return found


def check_connections(busy):
    """6. Database connections return to idle after the run: `busy` is the number of the
    soak database's connections not idle once the load stopped and the pools settled."""
    if busy:
        return [violation(6, f"{busy} database connections still busy after the run")]
    return []
