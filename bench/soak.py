#!/usr/bin/env python3
"""Reliability soak: Tessera as a deployment runs it, under steady mixed traffic, with faults
injected on a schedule, and invariants checked on every answer.

    python3 bench/soak.py [--duration 600] [--database-url postgres://…] [--no-build]
                          [--report docs/reliability.md] [--smoke]

On loopback it starts a throwaway PostgreSQL database (reached through a TCP proxy the
soak can cut), two `tessera authz` and two `tessera resource` processes behind HAProxy
(from the distribution; health checks on `/healthz`), and drives, from several threads:
client_credentials (JWT and opaque), password grants with refresh chains (and deliberate
reuses), the code flow over HTTP (login, consent, redemption), the company user API (reads
and writes), introspection, revocations of every kind (RFC 7009 for JWT, opaque and
refresh tokens, sign out everywhere, a password change, a client's secret rotated with
`--revoke-tokens`), UserInfo and JWKS fetches.

Faults, each logged with its time: an emergency `keys rotate --now`; the database cut for
7 s; one authorization server killed with SIGKILL and restarted; one resource server
stopped with SIGTERM and restarted; bursts of garbage and oversized requests. The keys
also rotate on a schedule as short as the server allows (one rotation in a 10-minute run).

Every answer is checked against the invariants of bench/soak_invariants.py; the report
(`--report`, default docs/reliability.md) lists requests by kind and outcome, the faults,
the violations, memory and the machine; the exit status is 1 on any violation.
"""

import argparse
import base64
import datetime
import hashlib
import http.client
import importlib.util
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import soak_invariants as inv  # noqa: E402


def load_bench():
    """bench/bench.py, by path: its process and database helpers."""
    spec = importlib.util.spec_from_file_location("tessera_bench", os.path.join(HERE, "bench.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = load_bench()
BenchError = bench.BenchError

PASSWORD = "soak-password-0123456789"
ACCESS_TTL = 120
# As short a key schedule as the server accepts: the publish-ahead time must cover the
# JWKS max-age, the refresh interval and the clock leeway (430 s).
PUBLISH_AHEAD = 431
ROTATION_PERIOD = 440
RETIRE_AFTER = 300
DB_CUT_SECONDS = 7
# How long after a fault ends its window lasts: the balancer takes an instance back after
# two good health checks 2 s apart (deploy/haproxy.cfg), once its /healthz is 200 again.
RECOVERY = 10.0
WORKERS = 6


# ---- a TCP proxy in front of PostgreSQL, which the soak can cut ----------------------------

class CuttableProxy:
    """Forwards 127.0.0.1:port to PostgreSQL; `cut(seconds)` closes every connection and
    refuses new ones for that long, as a network partition would."""

    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(256)
        self.port = self.listener.getsockname()[1]
        self.down_until = 0.0
        self.lock = threading.Lock()
        self.conns = set()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if time.monotonic() < self.down_until:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            with self.lock:
                self.conns.discard(src)
                self.conns.discard(dst)

    def cut(self, seconds):
        self.down_until = time.monotonic() + seconds
        with self.lock:
            conns = list(self.conns)
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


# ---- HAProxy ---------------------------------------------------------------------------

def haproxy_config(ports, lb_authz, lb_resource, monitor):
    """deploy/haproxy.cfg, the configuration docker-compose.yml runs, with loopback
    addresses for the compose service names and no Docker DNS."""
    with open(os.path.join(ROOT, "deploy", "haproxy.cfg")) as f:
        text = f.read()
    text = re.sub(r"\nresolvers docker\n(?:    .*\n)+", "\n", text)
    text = text.replace(" resolvers docker resolve-prefer ipv4 init-addr last,libc,none", "")
    text = text.replace("log stdout format raw local0", "log stdout format raw local0 info")
    for bind, port in ((":8080", lb_authz), (":8081", lb_resource), (":8404", monitor)):
        text = text.replace(f"bind {bind}\n", f"bind 127.0.0.1:{port}\n")
    for name, port in ports.items():
        service = name.replace("-", "")
        text = re.sub(rf"server {service} {service}:\d+", f"server {service} 127.0.0.1:{port}",
                      text)
    if "resolvers" in text or ":8080" in text or ":8081" in text:
        raise BenchError("deploy/haproxy.cfg changed shape: the soak cannot adapt it")
    return text


# ---- recording ---------------------------------------------------------------------------

class Recorder:
    def __init__(self):
        self.start = time.monotonic()
        self.lock = threading.Lock()
        self.events = []
        self.faults = []
        self.log = []

    def now(self):
        return time.monotonic() - self.start

    def add(self, event):
        with self.lock:
            self.events.append(event)

    def fault(self, name, start, end, note="", **fields):
        with self.lock:
            self.faults.append({"name": name, "start": start, "end": end, "note": note,
                                **fields})

    def say(self, message):
        line = f"[{self.now():7.1f}s] {message}"
        print(line, flush=True)
        with self.lock:
            self.log.append(line)


class Client:
    """HTTP through the balancer, each exchange recorded."""

    def __init__(self, rec, authz, resource):
        self.rec = rec
        self.bases = {"authz": authz, "resource": resource}
        # Each worker is a client of its own address, as the balancer's trusted
        # X-Forwarded-For tells the servers (their limits are per address).
        self.local = threading.local()

    def call(self, kind, server, method, path, body=None, headers=None, expect="any",
             **fields):
        host, port = self.bases[server]
        headers = dict(headers or {})
        address = getattr(self.local, "address", None)
        if address:
            headers["X-Forwarded-For"] = address
        if isinstance(body, dict):
            body = urllib.parse.urlencode(body)
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        t = self.rec.now()
        status, data, answer = 0, b"", {}
        try:
            conn = http.client.HTTPConnection(host, port, timeout=15)
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            status, data = response.status, response.read()
            answer = {k.lower(): v for k, v in response.getheaders()}
            conn.close()
        except (OSError, http.client.HTTPException):
            pass
        event = {"t": t, "end": self.rec.now(), "kind": kind, "method": method,
                 "path": path.split("?")[0], "status": status,
                 "retry_after": "retry-after" in answer, "error": None, "expect": expect}
        event.update(fields)
        parsed = None
        if data[:1] in (b"{", b"["):
            try:
                parsed = json.loads(data)
            except ValueError:
                parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
            event["error"] = parsed["error"]
        if expect in ("valid", "revoked"):
            if path.startswith("/oauth/introspect") and status == 200 and parsed is not None:
                event["accepted"] = parsed.get("active") is True
                event["refused"] = parsed.get("active") is False
            else:
                event["accepted"] = status == 200
                event["refused"] = status == 401
        self.rec.add(event)
        return status, parsed, answer, data


def basic(client_id, secret):
    raw = f"{urllib.parse.quote(client_id)}:{urllib.parse.quote(secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def bearer(token):
    return {"Authorization": "Bearer " + token}


def kid_of(token):
    """The `kid` of a JWT's header; None for an opaque token."""
    if "." not in token:
        return None
    header = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))).get("kid")


def token_id(token):
    """What the audit log names a token by (the authorization server's `Issued::token_id`)."""
    if "." in token:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return "jti " + claims["jti"]
    return "sha256 " + hashlib.sha256(token.encode()).hexdigest()[:16]


# ---- the traffic --------------------------------------------------------------------------

class Traffic:
    def __init__(self, rec, client, secrets, servers):
        self.rec = rec
        self.c = client
        self.secrets = secrets
        self.servers = servers
        self.lock = threading.Lock()
        self.issued = []           # token ids the soak was given
        self.revoked = []          # (token, revoked_at, kind) to present again later
        self.written = {}          # username -> name the API acknowledged
        self.stop = threading.Event()
        self.counter = 0
        self.victim_secret = secrets["soak-victim"]

    def next_id(self):
        with self.lock:
            self.counter += 1
            return self.counter

    def grant(self, kind, auth, form, expect="issue"):
        status, body, _, _ = self.c.call(kind, "authz", "POST", "/oauth/token", form, auth,
                                         expect=expect)
        if status == 200 and body and "access_token" in body:
            with self.lock:
                self.issued.append(token_id(body["access_token"]))
            return body
        return None

    def use(self, token, kind="me", expect="valid", **fields):
        return self.c.call(kind, "resource", "GET", "/me", headers=bearer(token),
                           expect=expect, kid=kid_of(token), **fields)[0]

    def remember_revoked(self, token, at, how):
        with self.lock:
            self.revoked.append((token, at, how))

    # Each operation is one small story.
    def cc(self, client):
        body = self.grant(f"cc-{client[5:]}", basic(client, self.secrets[client]),
                          {"grant_type": "client_credentials", "scope": "basic"})
        if body:
            self.use(body["access_token"])

    def password_chain(self):
        user = f"user{random.randrange(8)}"
        client = random.choice(["soak-jwt", "soak-opaque"])
        auth = basic(client, self.secrets[client])
        body = self.grant("password", auth, {"grant_type": "password", "username": user,
                                              "password": PASSWORD, "scope": "basic"})
        if not body:
            return
        self.use(body["access_token"])
        refresh = body["refresh_token"]
        spent = []
        for _ in range(random.randint(1, 3)):
            status, new, _, _ = self.c.call("refresh", "authz", "POST", "/oauth/token",
                                            {"grant_type": "refresh_token",
                                             "refresh_token": refresh}, auth,
                                            expect="fresh-refresh")
            if status != 200 or not new:
                return
            with self.lock:
                self.issued.append(token_id(new["access_token"]))
            spent.append(refresh)
            refresh = new["refresh_token"]
            self.use(new["access_token"])
        if random.random() < 0.2:
            # A real reuse: the family is revoked, its newest token with it.
            status, _, _, _ = self.c.call("refresh-reuse", "authz", "POST", "/oauth/token",
                                          {"grant_type": "refresh_token",
                                           "refresh_token": random.choice(spent)}, auth,
                                          expect="reuse")
            if status == 400:
                self.c.call("refresh-after-reuse", "authz", "POST", "/oauth/token",
                            {"grant_type": "refresh_token", "refresh_token": refresh}, auth,
                            expect="after-reuse")

    def code_flow(self):
        verifier = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
        challenge = base64.urlsafe_b64encode(
            hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        user = f"user{random.randrange(8)}"
        params = {"response_type": "code", "client_id": "soak-web",
                  "redirect_uri": "http://127.0.0.1:9/cb", "scope": "openid basic",
                  "state": "s", "code_challenge": challenge, "code_challenge_method": "S256",
                  "prompt": "login"}
        query = urllib.parse.urlencode(params)
        status, _, answer, page = self.c.call("code-login-page", "authz", "GET",
                                              "/oauth/authorize?" + query)
        if status != 200:
            return
        cookies = {}

        def keep(a):
            for k, v in a.items():
                if k == "set-cookie":
                    name, _, rest = v.partition("=")
                    cookies[name] = rest.split(";")[0]

        keep(answer)
        csrf = cookies.get("tessera_csrf", "")
        jar = lambda: {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}  # noqa: E731
        origin = "http://%s:%d" % self.c.bases["authz"]
        form = dict(params, csrf=csrf, username=user, password=PASSWORD)
        status, _, answer, _ = self.c.call("code-login", "authz", "POST",
                                           "/oauth/authorize/login", form,
                                           {**jar(), "Origin": origin})
        if status != 303:
            return
        keep(answer)
        status, _, answer, page = self.c.call("code-consent-page", "authz", "GET",
                                              answer.get("location", "/"), headers=jar())
        location = answer.get("location", "")
        if status == 200:
            m = re.search(rb'name="csrf" value="([^"]+)"', page)
            if not m:
                return
            status, _, answer, _ = self.c.call("code-consent", "authz", "POST",
                                               "/oauth/authorize/consent",
                                               dict(params, csrf=m.group(1).decode(),
                                                    decision="allow"),
                                               {**jar(), "Origin": origin})
            location = answer.get("location", "")
        code = urllib.parse.parse_qs(urllib.parse.urlparse(location).query).get("code")
        if not code:
            return
        body = self.grant("code-redeem", {}, {"grant_type": "authorization_code",
                                              "client_id": "soak-web", "code": code[0],
                                              "redirect_uri": "http://127.0.0.1:9/cb",
                                              "code_verifier": verifier})
        if body:
            self.use(body["access_token"])
            self.c.call("userinfo", "authz", "GET", "/oauth/userinfo",
                        headers=bearer(body["access_token"]), expect="valid")

    def admin_token(self):
        return self.grant("admin-password", basic("soak-jwt", self.secrets["soak-jwt"]),
                          {"grant_type": "password", "username": "admin",
                           "password": PASSWORD, "scope": "admin"})

    def user_api(self):
        body = self.admin_token()
        if not body:
            return
        token = body["access_token"]
        self.c.call("users-list", "resource", "GET", "/companies/acme/users",
                    headers=bearer(token), expect="valid", kid=kid_of(token))
        username = f"soak{self.next_id()}"
        name = f"Soak User {random.randrange(10**6)}"
        status, user, _, _ = self.c.call(
            "users-create", "resource", "POST", "/companies/acme/users",
            json.dumps({"username": username, "password": PASSWORD, "roles": ["user"],
                        "name": name}),
            {**bearer(token), "Content-Type": "application/json"})
        if status == 201 and user:
            with self.lock:
                self.written[username] = name
            renamed = name + " II"
            status, _, _, _ = self.c.call(
                "users-patch", "resource", "PATCH", f"/companies/acme/users/{user['id']}",
                json.dumps({"name": renamed}),
                {**bearer(token), "Content-Type": "application/json"})
            if status == 200:
                with self.lock:
                    self.written[username] = renamed

    def introspect(self):
        client = random.choice(["soak-jwt", "soak-opaque"])
        body = self.grant("cc-introspected", basic(client, self.secrets[client]),
                          {"grant_type": "client_credentials", "scope": "basic"})
        if body:
            self.c.call("introspect", "authz", "POST", "/oauth/introspect",
                        {"token": body["access_token"]},
                        basic("soak-resource", self.secrets["soak-resource"]), expect="valid")

    def revoke(self):
        how = random.choice(["jwt", "opaque", "refresh", "sign-out", "password"])
        if how in ("jwt", "opaque"):
            client = f"soak-{how}"
            auth = basic(client, self.secrets[client])
            body = self.grant(f"cc-{how}", auth, {"grant_type": "client_credentials",
                                                  "scope": "basic"})
            if not body:
                return
            token = body["access_token"]
            self.use(token)
            status, _, _, _ = self.c.call(f"revoke-{how}", "authz", "POST", "/oauth/revoke",
                                          {"token": token}, auth)
            if status == 200:
                self.remember_revoked(token, self.rec.now(), how)
        elif how == "refresh":
            auth = basic("soak-jwt", self.secrets["soak-jwt"])
            body = self.grant("password", auth, {"grant_type": "password",
                                                 "username": f"user{random.randrange(8)}",
                                                 "password": PASSWORD, "scope": "basic"})
            if not body:
                return
            status, _, _, _ = self.c.call("revoke-refresh", "authz", "POST", "/oauth/revoke",
                                          {"token": body["refresh_token"]}, auth)
            if status == 200:
                at = self.rec.now()
                self.remember_revoked(body["access_token"], at, how)
                self.c.call("refresh-revoked", "authz", "POST", "/oauth/token",
                            {"grant_type": "refresh_token",
                             "refresh_token": body["refresh_token"]}, auth,
                            expect="after-reuse")
        else:
            # A user of its own, so that no other story's token is caught by the cutoff.
            admin = self.admin_token()
            if not admin:
                return
            username = f"victim{self.next_id()}"
            status, user, _, _ = self.c.call(
                "users-create", "resource", "POST", "/companies/acme/users",
                json.dumps({"username": username, "password": PASSWORD, "roles": ["user"]}),
                {**bearer(admin["access_token"]), "Content-Type": "application/json"})
            if status != 201 or not user:
                return
            with self.lock:
                self.written[username] = None
            auth = basic("soak-jwt", self.secrets["soak-jwt"])
            body = self.grant("password", auth, {"grant_type": "password",
                                                 "username": username,
                                                 "password": PASSWORD, "scope": "basic"})
            if not body:
                return
            self.use(body["access_token"])
            if how == "sign-out":
                status, _, _, _ = self.c.call(
                    "revoke-sign-out", "resource", "POST",
                    f"/companies/acme/users/{user['id']}/revoke",
                    headers=bearer(admin["access_token"]))
                ok = status == 204
            else:
                status, _, _, _ = self.c.call(
                    "revoke-password", "resource", "PATCH",
                    f"/companies/acme/users/{user['id']}",
                    json.dumps({"password": PASSWORD + "-new"}),
                    {**bearer(admin["access_token"]), "Content-Type": "application/json"})
                ok = status == 200
            if ok:
                self.remember_revoked(body["access_token"], self.rec.now(), how)

    def revoke_client(self):
        """A client's secret rotated with --revoke-tokens: its tokens are cut off."""
        auth = basic("soak-victim", self.victim_secret)
        body = self.grant("cc-victim", auth, {"grant_type": "client_credentials",
                                              "scope": "basic"})
        if not body:
            return
        self.use(body["access_token"])
        out = self.servers.run("client", "rotate-secret", "soak-victim", "--revoke-tokens")
        m = re.search(r"^client_secret: (\S+)$", out, re.M)
        at = self.rec.now()
        if m:
            # The old secret may work for up to a second at an instance that has not seen
            # the change: wait for it, as the documentation says.
            time.sleep(1.2)
            self.victim_secret = m.group(1)
        self.remember_revoked(body["access_token"], at, "client")
        self.rec.say("rotated soak-victim's secret with --revoke-tokens")

    def jwks(self):
        self.c.call("jwks", "authz", "GET", "/.well-known/jwks.json")

    def recheck_revoked(self):
        """Presents tokens revoked earlier again: never accepted past the bound."""
        with self.lock:
            sample = random.sample(self.revoked, min(3, len(self.revoked)))
        for token, at, how in sample:
            self.use(token, kind=f"revoked-{how}", expect="revoked", revoked_at=at)

    def worker(self, seed):
        random.seed(seed)
        self.c.local.address = f"10.0.0.{seed + 1}"
        stories = [
            (self.cc, ("soak-jwt",), 20), (self.cc, ("soak-opaque",), 12),
            (self.password_chain, (), 14), (self.code_flow, (), 6),
            (self.user_api, (), 6), (self.introspect, (), 8), (self.revoke, (), 8),
            (self.jwks, (), 4), (self.recheck_revoked, (), 10),
        ]
        weights = [w for _, _, w in stories]
        while not self.stop.is_set():
            story, args, _ = random.choices(stories, weights)[0]
            try:
                story(*args)
            except Exception as err:  # noqa: BLE001 - a soak keeps going, and says why
                self.rec.say(f"story {story.__name__} failed in the soak itself: {err!r}")
                time.sleep(0.2)


# ---- faults --------------------------------------------------------------------------------

def garbage_burst(rec, base):
    """Junk that must get a 4xx (or a closed connection), never a 5xx or a crash."""
    host, port = base
    junk = [
        b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 64000 + b"\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(200),
        b"POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-"
        b"urlencoded\r\nContent-Length: 2000000\r\n\r\n" + b"a" * 100000,
        b"GET /me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + b"A" * 9000 + b"\r\n\r\n",
        b"BREW /coffee HTCPCP/1.0\r\n\r\n",
        b"GET /oauth/authorize?" + b"%ff" * 3000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    ]
    for payload in junk * 5:
        t = rec.now()
        status = 0
        try:
            with socket.create_connection((host, port), timeout=5) as s:
                s.sendall(payload)
                head = s.recv(64)
                m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
                status = int(m.group(1)) if m else 0
        except OSError:
            status = -1
        # A closed connection is a fine answer to junk; only a 5xx other than 503 is not.
        rec.add({"t": t, "end": rec.now(), "kind": "garbage", "method": "RAW", "path": "-",
                 "status": status if status > 0 else 400, "retry_after": False,
                 "error": None, "expect": "any"})


class Soak:
    def __init__(self, args):
        self.args = args
        self.rec = Recorder()
        self.workdir = tempfile.mkdtemp(prefix="tessera-soak-")
        self.haproxy = None
        self.memory = {}
        self.lives = {}
        self.done = threading.Event()

    def log(self, message):
        self.rec.say(message)

    def server_args(self, name):
        port = self.ports[name]
        common = ["--issuer", self.issuer, "--database-url", self.db_via_proxy,
                  "--access-token-ttl", str(ACCESS_TTL), "--trusted-proxy", "127.0.0.1",
                  "--database-pool-size", "5"]
        if name.startswith("authz"):
            return ["authz", *common, "--authz-addr", f"127.0.0.1:{port}",
                    "--audit-durability", "durable",
                    "--key-rotation-period", f"{ROTATION_PERIOD}s",
                    "--key-publish-ahead", f"{PUBLISH_AHEAD}s",
                    "--key-retire-after", f"{RETIRE_AFTER}s"]
        return ["resource", *common, "--resource-addr", f"127.0.0.1:{port}",
                "--client-id", "soak-resource", "--revocation-wait", "5s",
                "--revocation-max-stale", "60s"]

    def start_server(self, name):
        self.lives[name] = self.lives.get(name, 0) + 1
        life = f"{name}#{self.lives[name]}"
        pid = self.servers.start(life, *self.server_args(name),
                                 env={"TESSERA_CLIENT_SECRET": self.secrets["soak-resource"]}
                                 if name.startswith("resource") else None)
        self.current[name] = life
        bench.wait_ready(f"http://127.0.0.1:{self.ports[name]}/healthz", self.servers, name)
        self.log(f"{name} up (pid {pid})")

    def sample_memory(self):
        while not self.done.is_set():
            for name, life in list(self.current.items()):
                proc = self.servers.procs.get(life)
                if proc and proc.poll() is None:
                    rss = bench.proc_status(proc.pid, "VmRSS")
                    self.memory.setdefault(life, []).append((self.rec.now(), rss))
            self.done.wait(2)

    def run(self):
        a = self.args
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
        binary = os.path.join(target, "release", "tessera")
        if not a.no_build:
            subprocess.run(["cargo", "build", "--release", "--locked", "-p", "tessera-cli"],
                           cwd=ROOT, check=True)
        if not shutil.which("haproxy"):
            raise BenchError("haproxy is needed (apt-get install -y haproxy)")
        if not os.path.exists(binary):
            raise BenchError(f"{binary} is missing: build it, or leave out --no-build")
        url, drop = bench.throwaway_database(a.database_url, self.workdir, "soak")
        self.drop = drop
        parsed = urllib.parse.urlparse(url)
        self.proxy = CuttableProxy(parsed.port or 5432)
        self.db_via_proxy = urllib.parse.urlunparse(
            parsed._replace(netloc=f"{parsed.username or 'postgres'}@127.0.0.1:{self.proxy.port}"))
        self.db_direct = url
        self.servers = bench.Servers(binary, url, self.workdir)
        self.ports = {n: bench.free_port() for n in ("authz-1", "authz-2", "resource-1",
                                                     "resource-2")}
        lb_authz, lb_resource = bench.free_port(), bench.free_port()
        self.issuer = f"http://127.0.0.1:{lb_authz}"
        self.current = {}
        self.secrets = seed(self.servers)
        cfg = os.path.join(self.workdir, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(haproxy_config(self.ports, lb_authz, lb_resource, bench.free_port()))
        try:
            for name in ("authz-1", "authz-2"):
                self.start_server(name)
            self.haproxy = subprocess.Popen(["haproxy", "-f", cfg, "-db"],
                                            stdout=open(os.path.join(self.workdir, "haproxy.log"), "w"),
                                            stderr=subprocess.STDOUT, start_new_session=True)
            for name in ("resource-1", "resource-2"):
                self.start_server(name)
            bench.wait_ready(f"{self.issuer}/healthz", self.servers, "the balancer")
            bench.wait_ready(f"http://127.0.0.1:{lb_resource}/healthz", self.servers,
                             "the balancer")
            time.sleep(5)  # both backends of each pool marked up (two good checks each)
            self.rec.start = time.monotonic()
            self.log(f"load starts: {WORKERS} workers for {a.duration} s through HAProxy")
            client = Client(self.rec, ("127.0.0.1", lb_authz), ("127.0.0.1", lb_resource))
            self.traffic = Traffic(self.rec, client, self.secrets, self.servers)
            threading.Thread(target=self.sample_memory, daemon=True).start()
            workers = [threading.Thread(target=self.traffic.worker, args=(i,), daemon=True)
                       for i in range(WORKERS)]
            for w in workers:
                w.start()
            self.faults(a.duration, ("127.0.0.1", lb_authz), ("127.0.0.1", lb_resource))
            self.traffic.stop.set()
            for w in workers:
                w.join(timeout=30)
            self.log("load stopped")
            return self.verify()
        finally:
            self.done.set()
            if self.haproxy and self.haproxy.poll() is None:
                self.haproxy.terminate()
                self.haproxy.wait(timeout=10)
            self.servers.stop()
            if not a.keep_database:
                try:
                    drop()
                except BenchError as err:
                    print(f"warning: {err}", file=sys.stderr)

    def faults(self, duration, lb_authz, lb_resource):
        # In a 10-minute run the scheduled rotation (440 s after the first key) comes
        # before the emergency one, which would withdraw the key waiting to sign.
        plan = [
            (0.12, "garbage"), (0.25, "db-cut"), (0.40, "kill-authz"),
            (0.52, "revoke-client"), (0.64, "term-resource"), (0.82, "rotate-now"),
            (0.92, "garbage"),
        ]
        for fraction, name in plan:
            at = duration * fraction
            while self.rec.now() < at:
                time.sleep(0.1)
            start = self.rec.now()
            if name == "garbage":
                garbage_burst(self.rec, lb_authz)
                garbage_burst(self.rec, lb_resource)
                self.log("garbage and oversized requests sent to both pools")
                self.rec.fault(name, start, self.rec.now(), "junk, oversized heads and bodies")
            elif name == "db-cut":
                self.log(f"database cut for {DB_CUT_SECONDS} s")
                self.proxy.cut(DB_CUT_SECONDS)
                time.sleep(DB_CUT_SECONDS)
                self.log("database back")
                self.rec.fault(name, start, self.rec.now() + RECOVERY,
                               f"every connection closed, new ones refused for {DB_CUT_SECONDS} s")
            elif name == "kill-authz":
                life = self.current["authz-1"]
                self.servers.procs[life].send_signal(signal.SIGKILL)
                self.servers.procs.pop(life).wait()
                self.log(f"authz-1 killed with SIGKILL ({life})")
                time.sleep(3)
                self.start_server("authz-1")
                self.rec.fault(name, start, self.rec.now() + RECOVERY,
                               "SIGKILL, restarted 3 s later")
            elif name == "term-resource":
                life = self.current["resource-1"]
                self.servers.procs[life].send_signal(signal.SIGTERM)
                stopped = self.servers.procs.pop(life)
                stopped.wait(timeout=30)
                self.log(f"resource-1 stopped with SIGTERM ({life}), exit {stopped.returncode}")
                time.sleep(2)
                self.start_server("resource-1")
                self.rec.fault(name, start, self.rec.now() + RECOVERY,
                               "SIGTERM (graceful), restarted 2 s later")
            elif name == "rotate-now":
                out = self.servers.run("keys", "rotate", "--now")
                self.log("emergency key rotation: " + out.strip().splitlines()[0][:100])
                m = re.search(r"key (\S+) \(", out)
                self.rec.fault(name, start, self.rec.now(), "keys rotate --now",
                               kid=m.group(1) if m else None)
            elif name == "revoke-client":
                self.traffic.revoke_client()
        while self.rec.now() < duration:
            time.sleep(0.1)

    def verify(self):
        rec = self.rec
        time.sleep(3)  # the pools settle
        self.keys_list = self.servers.run("keys", "list")
        violations = []
        violations += inv.check_good_tokens(rec.events, rec.faults)
        violations += inv.check_revoked_tokens(rec.events, rec.faults)
        violations += inv.check_refresh_chains(rec.events)
        violations += inv.check_server_errors(rec.events, rec.faults)
        logs = {}
        for life, path in self.servers.logs.items():
            with open(path, errors="replace") as f:
                logs[life] = f.read()
        violations += inv.check_logs(logs)
        audited = self.audited_ids()
        violations += inv.check_audit(self.traffic.issued, audited)
        violations += inv.check_durable(dict(self.traffic.written),
                                        self.read_back())
        violations += inv.check_memory(self.memory)
        busy = self.busy_connections()
        violations += inv.check_connections(busy)
        self.write_report(violations, busy)
        with open(os.path.join(self.workdir, "events.json"), "w") as f:
            json.dump({"events": rec.events, "faults": rec.faults}, f)
        for v in violations[:50]:
            print(f"VIOLATION {v['invariant']}: {v['message']}"
                  + (f"  [{json.dumps(v['event'])[:300]}]" if v.get("event") else ""))
        print(f"{len(rec.events)} requests, {len(rec.faults)} faults, "
              f"{len(violations)} violations; report: {self.args.report}")
        return 1 if violations else 0

    def audited_ids(self):
        out = bench.psql(self.db_direct, "COPY (SELECT target FROM audit_events "
                         "WHERE kind = 'token.issued' AND target IS NOT NULL) TO STDOUT")
        return [line for line in out.splitlines() if line]

    def read_back(self):
        out = bench.psql(self.db_direct, "COPY (SELECT username, name FROM users) TO STDOUT")
        found = {}
        for line in out.splitlines():
            username, _, name = line.partition("\t")
            found[username] = None if name == "\\N" else name
        return found

    def busy_connections(self):
        name = urllib.parse.urlparse(self.db_direct).path.lstrip("/")
        out = bench.psql(self.db_direct, "COPY (SELECT count(*) FROM pg_stat_activity "
                         f"WHERE datname = '{name}' AND state NOT IN ('idle') "
                         "AND pid <> pg_backend_pid()) TO STDOUT")
        return int(out.strip() or 0)

    def write_report(self, violations, busy):
        rec, a = self.rec, self.args
        by_kind = {}
        for e in rec.events:
            row = by_kind.setdefault(e["kind"], {})
            row[e["status"]] = row.get(e["status"], 0) + 1
        lines = [
            "# Reliability under faults",
            "",
            "Written by `python3 bench/soak.py` (do not edit by hand). Two authorization "
            "servers and two resource servers on one PostgreSQL database, behind HAProxy, "
            "under mixed traffic, with faults injected on a schedule; every answer checked "
            "against the invariants in `bench/soak_invariants.py` (their checkers are tested "
            "on violating recordings in `bench/test_soak_invariants.py`).",
            "",
            f"- Command: `python3 bench/soak.py --duration {a.duration}"
            f"{' --smoke' if a.smoke else ''}`",
            f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
            f"- Machine: {machine_line()}",
            f"- Requests: {len(rec.events)}; faults: {len(rec.faults)}; "
            f"**violations: {len(violations)}**",
            "",
            "## Requests by kind and outcome",
            "",
            "| kind | answers by status |",
            "|---|---|",
        ]
        for kind in sorted(by_kind):
            statuses = ", ".join(f"{s or 'none'}: {n}" for s, n in sorted(by_kind[kind].items()))
            lines.append(f"| {kind} | {statuses} |")
        excused = sum(1 for e in rec.events if e.get("expect") == "valid" and e.get("refused")
                      and inv.stated_window(e, rec.faults))
        lines += ["", f"Tokens of the new key refused inside the emergency rotation's stated "
                  f"window ({inv.EMERGENCY_ROTATION_WINDOW:.0f} s, docs/keys.md), not counted "
                  f"as violations: {excused}."]
        lines += ["", "## Faults", "", "| at (s) | until (s) | fault | what |", "|---:|---:|---|---|"]
        for f in rec.faults:
            lines.append(f"| {f['start']:.1f} | {f['end']:.1f} | {f['name']} | {f['note']} |")
        lines += ["", "## Invariants", ""]
        names = {1: "a good token is never refused", 2: "a revoked token is never accepted "
                 "past the bound", 3: "refresh chains: no false reuse, a real reuse revokes",
                 4: "no 5xx but 503 (in fault windows), no panic", 5: "tokens audited once, "
                 "writes durable", 6: "memory bounded, connections idle after the run"}
        for n, what in names.items():
            count = sum(1 for v in violations if v["invariant"] == n)
            lines.append(f"{n}. {what}: **{count}** violation{'s' if count != 1 else ''}")
        if violations:
            lines += ["", "### Violations", ""]
            for v in violations[:100]:
                lines.append(f"- ({v['invariant']}) {v['message']}"
                             + (f": `{json.dumps(v['event'])[:240]}`" if v.get("event") else ""))
        lines += ["", "## Memory (resident, MiB)", "", "| process | start | peak | end |",
                  "|---|---:|---:|---:|"]
        for life, points in sorted(self.memory.items()):
            rss = [r for _, r in points]
            lines.append(f"| {life} | {rss[0] / 2**20:.0f} | {max(rss) / 2**20:.0f} | "
                         f"{rss[-1] / 2**20:.0f} |")
        lines += ["", f"Database connections not idle after the run: {busy}.", "",
                  "## Signing keys at the end", "",
                  "The schedule rotates every 440 s (the shortest the server accepts: keys "
                  "are published 431 s ahead); `keys rotate --now` adds an emergency "
                  "rotation.", "", "```", self.keys_list.strip(), "```", "",
                  "## Log", "", "```", *rec.log, "```", ""]
        with open(a.report, "w") as f:
            f.write("\n".join(line for line in lines if line is not None) + "\n")


def machine_line():
    m = bench.machine(None)
    return (f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}; "
            f"commit {m['commit']}")


def seed(servers):
    servers.run("migrate")
    servers.run("company", "add", "acme", "--name", "Acme Corporation")
    servers.run("user", "add", "admin", "--company", "acme", "--role", "admin",
                stdin=PASSWORD + "\n")
    for i in range(8):
        servers.run("user", "add", f"user{i}", "--company", "acme", "--role", "user",
                    stdin=PASSWORD + "\n")
    secrets = {}
    for client, fmt, grants, scopes in [
        ("soak-jwt", "jwt", ["client_credentials", "password", "refresh_token"],
         ["basic", "admin"]),
        ("soak-opaque", "opaque", ["client_credentials", "password", "refresh_token"],
         ["basic"]),
        ("soak-resource", "jwt", [], ["basic"]),
        ("soak-victim", "jwt", ["client_credentials"], ["basic"]),
    ]:
        args = ["client", "add", client, "--token-format", fmt]
        for s in scopes:
            args += ["--scope", s]
        for g in grants:
            args += ["--grant", g]
        out = servers.run(*args)
        m = re.search(r"^client_secret: (\S+)$", out, re.M)
        if not m:
            raise BenchError(f"no client_secret printed for {client}")
        secrets[client] = m.group(1)
    servers.run("client", "add", "soak-web", "--public", "--grant", "authorization_code",
                "--grant", "refresh_token", "--scope", "openid", "--scope", "basic",
                "--redirect-uri", "http://127.0.0.1:9/cb")
    return secrets


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=int, default=600, help="seconds of load (default 600)")
    p.add_argument("--smoke", action="store_true", help="60 seconds, the report in the work dir")
    p.add_argument("--database-url", default=os.environ.get(
        "TESSERA_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="a PostgreSQL server to make the throwaway database on")
    p.add_argument("--no-build", action="store_true", help="use target/release/tessera as is")
    p.add_argument("--report", default=os.path.join(ROOT, "docs", "reliability.md"))
    p.add_argument("--keep-database", action="store_true")
    a = p.parse_args()
    if a.smoke:
        a.duration = 60
        if a.report == os.path.join(ROOT, "docs", "reliability.md"):
            a.report = os.path.join(tempfile.gettempdir(), "tessera-soak-smoke.md")
    try:
        sys.exit(Soak(a).run())
    except BenchError as err:
        print(f"soak: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
