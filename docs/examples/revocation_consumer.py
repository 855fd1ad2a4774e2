#!/usr/bin/env python3
"""Follow Tessera's revocation feed and check a JWT access token against it.

    python3 docs/examples/revocation_consumer.py --issuer URL --client-id ID \
        --client-secret SECRET [--audience AUD] [--check TOKEN [--until-revoked SECONDS]]

Without --check it prints one JSON line per feed answer. With --check it prints one JSON line
per result: {"valid": true} or {"valid": false, "reason": "revoked"|"invalid"|"unavailable"}.
Exit codes: 0 valid (or, with --until-revoked, revoked in time); 1 not valid (or not revoked
in time); 2 bad usage or refused credentials; 3 the feed could not be reached at start.
The contract it implements is docs/revocation.md. Needs requests, PyJWT and cryptography.
"""

import argparse
import json
import os
import random
import sys
import threading
import time
from urllib.parse import quote_plus

import jwt
import requests

WAIT = 25  # long-poll seconds asked of the server (it allows 0 to 30)
LEEWAY = 30  # clock leeway for exp and nbf, as tessera-guard
KINDS = ("jti", "sid", "sub", "client_id")


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def text(claims, name):
    value = claims.get(name)
    return value if isinstance(value, str) else None


def well_formed(entry):
    """Whether an entry names tokens (False: ignore it). Raises FeedError when it names some
    without the members it needs: such an answer is refused whole, never half applied."""
    if not isinstance(entry, dict):
        raise FeedError("an entry is not an object")
    named = [kind for kind in KINDS if entry.get(kind) is not None]
    if not named:
        return False
    if not all(isinstance(entry[kind], str) for kind in named) or not is_int(entry.get("until")):
        raise FeedError("an entry has a key that is not a string, or no integer until")
    if ("sub" in named or "client_id" in named) and not is_int(entry.get("issued_before")):
        raise FeedError("a sub or client_id entry has no integer issued_before")
    return True


class RevocationList:
    """The entries in force, indexed so that a check is a few dict lookups."""

    def __init__(self):
        self.entries = []
        self.index = {kind: {} for kind in KINDS}

    def apply(self, reset, revoked, now):
        """Applies one answer's well-formed entries: `reset` replaces the list, otherwise they
        are added. Entries whose `until` has come are forgotten."""
        entries = [e for e in ([] if reset else self.entries) + revoked if e["until"] > now]
        index = {kind: {} for kind in KINDS}
        for e in entries:
            for kind in ("jti", "sid"):
                if e.get(kind) is not None:
                    index[kind][e[kind]] = True
            for kind in ("sub", "client_id"):
                if e.get(kind) is not None:
                    before = index[kind].get(e[kind], e["issued_before"])
                    index[kind][e[kind]] = max(before, e["issued_before"])
        self.entries, self.index = entries, index  # checks read self.index: never half built

    def is_revoked(self, claims):
        index, iat = self.index, claims.get("iat")
        if text(claims, "jti") in index["jti"] or text(claims, "sid") in index["sid"]:
            return True
        for kind in ("sub", "client_id"):
            before = index[kind].get(text(claims, kind))
            if before is not None and (not isinstance(iat, (int, float)) or iat <= before):
                return True  # no `iat` (or not a number): revoked
        return False


class FeedError(Exception):
    def __init__(self, message, retry_after=None, credentials=False):
        super().__init__(message)
        self.retry_after, self.credentials = retry_after, credentials


class Feed:
    def __init__(self, issuer, client_id, client_secret):
        self.url = issuer.rstrip("/") + "/oauth/revocations"
        # client_secret_basic (RFC 6749 §2.3.1): both halves form-urlencoded, then Basic
        self.auth = (quote_plus(client_id), quote_plus(client_secret))
        self.session = requests.Session()
        self.list, self.cursor, self.last_ok = RevocationList(), None, None

    def poll(self):
        first = self.cursor is None  # no cursor: ask for the whole list, at once
        params = {} if first else {"after": self.cursor, "wait": WAIT}
        try:
            r = self.session.get(self.url, params=params, auth=self.auth, timeout=(5, WAIT + 10))
            answer = r.json() if r.status_code == 200 else None
        except (requests.RequestException, ValueError) as e:
            raise FeedError(type(e).__name__) from None
        if r.status_code == 401:
            raise FeedError("401 invalid_client", credentials=True)
        if r.status_code == 400 and self.cursor is not None:
            self.cursor = None  # the server refuses our cursor: start over with the whole list
        if r.status_code != 200:
            after = r.headers.get("Retry-After", "")
            raise FeedError(f"HTTP {r.status_code}", int(after) if after.isdigit() else None)
        if not (isinstance(answer, dict) and isinstance(answer.get("cursor"), str)
                and isinstance(answer.get("reset"), bool) and isinstance(answer.get("revoked"), list)):
            raise FeedError("the answer is not a revocation list")
        entries = [e for e in answer["revoked"] if well_formed(e)]
        self.list.apply(answer["reset"] or first, entries, time.time())
        self.cursor, self.last_ok = answer["cursor"], time.monotonic()
        return answer

    def follow(self, on_answer=lambda answer: None):
        delay = 0.5
        while True:
            started = time.monotonic()
            try:
                answer = self.poll()
                on_answer(answer)
                delay = 0.5
                if not answer["reset"] and not answer["revoked"]:  # never spin on quick empty answers
                    time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
            except FeedError as e:  # keep the last list; back off with jitter
                pause = e.retry_after or random.uniform(delay / 2, delay)
                print(f"revocation feed: {e}; retrying in {pause:.1f} s", file=sys.stderr)
                time.sleep(pause)
                delay = min(delay * 2, 10.0)


def validate(token, jwks, issuer, audience):
    """RFC 9068 validation; raises jwt.PyJWTError for any token that is not valid."""
    if str(jwt.get_unverified_header(token).get("typ")).lower() not in ("at+jwt", "application/at+jwt"):
        raise jwt.InvalidTokenError("typ is not at+jwt")
    key = jwks.get_signing_key_from_jwt(token)  # by kid; the key's own algorithm, only
    return jwt.decode(token, key.key, algorithms=[key.algorithm_name], audience=audience,
                      issuer=issuer, leeway=LEEWAY, options={"require": ["exp", "iss", "aud", "sub"]})


def emit(obj):
    print(json.dumps(obj), flush=True)


def main():
    p = argparse.ArgumentParser(description="Follow Tessera's revocation feed; check a JWT against it.")
    p.add_argument("--issuer", required=True, help="the issuer URL, exactly as in the tokens' iss")
    p.add_argument("--client-id", default=os.environ.get("TESSERA_CLIENT_ID"))
    p.add_argument("--client-secret", default=os.environ.get("TESSERA_CLIENT_SECRET"))
    p.add_argument("--audience", default="tessera-api")
    p.add_argument("--check", metavar="TOKEN", help="validate this JWT and check it against the list")
    p.add_argument("--until-revoked", type=float, metavar="SECONDS",
                   help="with --check: re-check every 100 ms until revoked (exit 0) or SECONDS pass (exit 1)")
    p.add_argument("--max-stale", type=float, default=60.0, metavar="SECONDS",
                   help="trust the list this long after the last good answer (default 60)")
    p.add_argument("--fail-open", action="store_true", help="past --max-stale, accept with a warning")
    args = p.parse_args()
    if not args.issuer.startswith(("http://", "https://")):
        p.error("--issuer must be an http:// or https:// URL")
    if not args.client_id or not args.client_secret:
        p.error("--client-id and --client-secret (or TESSERA_CLIENT_ID and TESSERA_CLIENT_SECRET) are required")
    if args.until_revoked is not None and (args.check is None or args.until_revoked <= 0):
        p.error("--until-revoked needs --check and a positive number of seconds")
    if args.max_stale <= WAIT + 10:
        p.error(f"--max-stale must exceed the long-poll time ({WAIT + 10} s)")

    feed = Feed(args.issuer, args.client_id, args.client_secret)
    try:
        first = feed.poll()  # first sync: nothing is checked before the list is in
    except FeedError as e:
        print(f"error: revocation feed {feed.url}: {e}"
              + ("; check the client id and secret (a confidential client)" if e.credentials else ""),
              file=sys.stderr)
        return 2 if e.credentials else 3
    if args.check is None:
        def report(answer):
            emit({"reset": answer["reset"], "revoked": answer["revoked"],
                  "in_force": len(feed.list.entries)})
        report(first)
        feed.follow(report)
    threading.Thread(target=feed.follow, daemon=True).start()
    jwks = jwt.PyJWKClient(args.issuer.rstrip("/") + "/.well-known/jwks.json", timeout=5)
    warned = []

    def check():
        try:
            claims = validate(args.check, jwks, args.issuer, args.audience)
        except jwt.PyJWKClientConnectionError:
            return {"valid": False, "reason": "unavailable"}
        except jwt.PyJWTError:
            return {"valid": False, "reason": "invalid"}
        if feed.list.is_revoked(claims):
            return {"valid": False, "reason": "revoked"}
        if time.monotonic() - feed.last_ok > args.max_stale:  # the list may miss revocations
            if not args.fail_open:
                return {"valid": False, "reason": "unavailable"}
            if not warned:
                print("warning: the revocation list is stale; accepting (--fail-open)", file=sys.stderr)
                warned.append(True)
        return {"valid": True}

    start, last = time.monotonic(), None
    while True:
        result = check()
        if args.until_revoked is None:
            emit(result)
            return 0 if result["valid"] else 1
        if result.get("reason") == "revoked":
            emit(dict(result, after_ms=round((time.monotonic() - start) * 1000)))
            return 0
        if result != last:
            emit(result)
            last = result
        if result.get("reason") == "invalid":
            return 1
        if time.monotonic() - start >= args.until_revoked:
            print(f"not revoked within {args.until_revoked:g} s", file=sys.stderr)
            return 1
        time.sleep(0.1)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
