#!/usr/bin/env python3
"""Tessera's HTTP benchmark: real servers on loopback, a throwaway database, wrk or oha.

    python3 bench/bench.py                    # SQLite, c=16 and 64, writes docs/benchmarks.md
    python3 bench/bench.py --database-url postgres://postgres@127.0.0.1:5432/postgres
    python3 bench/bench.py --smoke            # every row for 1 s at c=16, checks, writes nothing

The full report, as docs/benchmarks.md shows it (PEER_RESULTS_DIR: a results directory of
the peer harness run on this machine; PEERS: the harness's own directory):

    python3 bench/bench.py --duration 5 --warmup 2 --concurrency 64 --load-generator oha \
        --peers PEER_RESULTS_DIR --stock-actix PEERS/rust-ceiling/target/release/actix \
        --postgres-url postgres://postgres@127.0.0.1:5432/postgres \
        --propagation-database-url postgres://postgres@127.0.0.1:5432/postgres

It builds the release binary, seeds a fresh database with the `tessera` admin commands,
starts one authorization server and six resource servers (JWT cache off, cache on,
opaque tokens by introspection without and with an answer cache, and JWT cache off and on
following the revocation feed, which holds 10,000 entries) as separate processes, and
measures each row at each concurrency for a fixed time after a warm-up: requests/s,
p50/p99 latency, the CPU every Tessera process used (in cores, and in microseconds a
request, which holds steady when something else shares the machine), the peak resident
memory of the server under test, and errors. Just before the issuance rows it measures the
signing limit of this machine with `openssl speed -multi` on all cores (`--signing-limit`,
off with --smoke), and shows JWT issuance as a fraction of it.

With `--stock-actix BINARY` it also starts the peer harness's stock actix-web +
jsonwebtoken server, trusting Tessera's keys, and measures it and Tessera's `GET /me` with
the same JWT in alternation, at c=64 with oha. With `--postgres-url` it then runs every
row again on PostgreSQL, with servers of their own, reported beside SQLite's. With
`--peers` it compares the rows with the peer harness's and checks the performance targets.

Then, on a database of its own (`--propagation-database-url`, else `--database-url`, else
SQLite), two authorization servers and two resource servers, each following another
authorization server's revocation feed: their resident memory before and after 100,000
revocations reach them, and, with both under load, how long each revoked JWT keeps working
at each of them (100 revocations, polling every 5 ms).

Rate limits are off. Only loopback is ever contacted. Every process it starts is stopped
by its PID. Python's standard library and wrk (Debian package `wrk`) are all it needs;
`psql` for PostgreSQL, oha with `--load-generator oha` or `--stock-actix`, and `openssl`
for the signing limit (without it the report says it was not measured).
"""

import argparse
import base64
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.client import HTTPConnection, HTTPException

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LUA = os.path.join(ROOT, "bench", "requests.lua")
CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
FORM = "application/x-www-form-urlencoded"
PASSWORD = "bench-password-0123456789"
JWT_TOKENS = 1000
INTROSPECTION_CACHE_TTL = 5
# Revocation entries in force while the feed's cost is measured.
FEED_ENTRIES = 10_000
# Revocations made while the propagation is measured, and the load on each resource server.
PROPAGATION_REVOCATIONS = 100
PROPAGATION_CONCURRENCY = 64
POLL_INTERVAL = 0.005
PROPAGATION_TIMEOUT = 10
# Entries in force when the resident memory of the list is measured.
MEMORY_ENTRIES = 100_000
FAR_UNTIL = "2099-01-01T00:00:00+00:00"
# The rows without and with the feed, measured again in alternation this many times each.
FEED_PAIRS = [("me-jwt1", "me-jwt1-feed"), ("me-jwt1-cached", "me-jwt1-cached-feed")]
FEED_PAIR_ROUNDS = 4
# openssl speed's names of the signature algorithms behind RS256, ES256 and EdDSA.
SIGNING = {"rsa2048": ("RSA-2048", "issue-rs256"), "ecdsap256": ("ECDSA P-256", "issue-es256"),
           "ed25519": ("Ed25519", "issue-eddsa")}
SIGNING_SECONDS = 3
# The stock actix-web server against Tessera's GET /me: at the peer harness's concurrency.
STOCK_CONCURRENCY = 64


class BenchError(Exception):
    pass


# ---- processes -------------------------------------------------------------------------

class Servers:
    """The Tessera processes of one run (or another server's, without a database), stopped
    by PID whatever happens."""

    def __init__(self, binary, database_url, workdir):
        self.binary = binary
        self.database_url = database_url
        self.backend = backend_name(database_url)
        self.workdir = workdir
        self.procs = {}  # name -> Popen
        self.peaks = {}  # name -> the highest VmHWM read before a reset
        self.logs = {}
        # Nothing from the caller's TESSERA_* settings: a stray TESSERA_JWKS_URL or
        # TESSERA_TOKEN_CACHE_SIZE would change what a row measures, or where keys come from.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
        self.env.update(TESSERA_LOG="warn", NO_COLOR="1")
        if database_url is not None:
            self.env.update(TESSERA_DATABASE_URL=database_url)

    def run(self, *args, stdin=None):
        p = subprocess.run([self.binary, *args], input=stdin, capture_output=True, text=True,
                           env=self.env, timeout=120, check=False)
        if p.returncode != 0:
            raise BenchError(f"tessera {' '.join(args[:3])} failed: {p.stderr.strip()[-500:]}")
        return p.stdout

    def start(self, name, *args, env=None):
        """Starts `tessera ARGS` as `name`, with `env` (secrets, kept off the command line
        where `ps` shows them) added to the environment."""
        log = open(os.path.join(self.workdir, name + ".log"), "w")
        self.logs[name] = log.name
        self.procs[name] = subprocess.Popen([self.binary, *args], stdout=log, stderr=log,
                                            env={**self.env, **(env or {})},
                                            start_new_session=True)
        return self.procs[name].pid

    def pid(self, name):
        return self.procs[name].pid

    def check_alive(self):
        for name, p in self.procs.items():
            if p.poll() is not None:
                raise BenchError(f"the {name} server exited ({p.returncode}); "
                                 f"its log: {self.logs[name]}\n" + tail(self.logs[name]))

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for p in self.procs.values():
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def backend_name(database_url):
    if database_url is None:
        return None
    return "SQLite" if database_url.startswith("sqlite://") else "PostgreSQL"


def tail(path, lines=20):
    try:
        with open(path) as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu(pid):
    """utime + stime of a process, all threads, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def proc_status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def per_request_us(cpu_seconds, requests):
    """Server CPU microseconds a request, None without requests."""
    return cpu_seconds / requests * 1e6 if requests else None


def reset_peak(pid):
    """Restarts VmHWM (peak RSS) at the current RSS; False where the kernel refuses."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# ---- HTTP helpers (setup only; the load is wrk's) ---------------------------------------

def http(method, url, body=None, headers=None, timeout=10):
    assert urllib.parse.urlparse(url).hostname == "127.0.0.1", url
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def basic(client_id, secret):
    raw = f"{urllib.parse.quote(client_id)}:{urllib.parse.quote(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def token_request(authz, auth, form):
    status, body, _ = http("POST", authz + "/oauth/token", urllib.parse.urlencode(form),
                           {"Authorization": auth, "Content-Type": FORM})
    if status != 200:
        raise BenchError(f"token request {form.get('grant_type')} answered {status}: "
                         f"{body[:300]!r}")
    return json.loads(body)


def jwt_part(token, index):
    """The JSON of a JWT's header (0) or payload (1), not verified."""
    part = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def jwt_alg(token):
    return jwt_part(token, 0)["alg"]


def wait_ready(url, servers, what, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        servers.check_alive()
        try:
            status, _, _ = http("GET", url, timeout=2)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise BenchError(f"{what} did not become ready at {url}")


def healthz(base):
    status, body, _ = http("GET", base + "/healthz")
    if status != 200:
        raise BenchError(f"{base}/healthz answered {status}: {body[:300]!r}")
    return json.loads(body)


def wait_feed(base, servers, what, entries, timeout=60):
    """Waits until the resource server at `base` holds exactly `entries` revocations from
    its feed, and its list is up to date."""
    deadline = time.monotonic() + timeout
    feed = None
    while time.monotonic() < deadline:
        servers.check_alive()
        feed = healthz(base).get("revocation_feed")
        if feed is None:
            raise BenchError(f"{what} follows no revocation feed")
        if feed.get("state") == "ok" and feed.get("entries") == entries:
            return feed
        time.sleep(0.1)
    raise BenchError(f"{what} did not get {entries:,} revocations from its feed: {feed}")


# ---- the load ---------------------------------------------------------------------------

def requests_file(workdir, name, lines):
    path = os.path.join(workdir, name + ".requests")
    with open(path, "w") as f:
        for method, target, body, headers in lines:
            fields = [method, target, body or ""] + [f"{k}: {v}" for k, v in headers.items()]
            assert all("\t" not in x and "\n" not in x for x in fields)
            f.write("\t".join(fields) + "\n")
    return path


def wrk_command(base_url, reqfile, concurrency, seconds):
    return ["wrk", "-t2", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "10s",
            "-s", LUA, base_url, "--", reqfile]


def wrk_result(returncode, stdout, stderr):
    line = next((ln for ln in stdout.splitlines() if ln.startswith("TESSERA_BENCH ")), None)
    if returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({returncode}): {stderr.strip()[-500:]}")
    return json.loads(line[len("TESSERA_BENCH "):])


def wrk(base_url, reqfile, concurrency, seconds):
    p = subprocess.run(wrk_command(base_url, reqfile, concurrency, seconds), capture_output=True,
                       text=True, timeout=seconds + 60, check=False)
    return wrk_result(p.returncode, p.stdout, p.stderr)


def oha_command(base_url, reqfile, concurrency, seconds):
    """oha's command line for a file of exactly one request."""
    with open(reqfile) as f:
        method, target, body, *headers = f.readline().rstrip("\n").split("\t")
    cmd = ["oha", "--no-tui", "-z", f"{seconds}s", "-c", str(concurrency), "--output-format",
           "json", "-m", method]
    content_type = None
    for h in headers:
        if h.lower().startswith("content-type:"):
            content_type = h.split(":", 1)[1].strip()
        else:
            cmd += ["-H", h]
    if body:
        cmd += ["-T", content_type or FORM, "-d", body]
    cmd.append(base_url + target)
    return cmd


def oha_result(returncode, stdout, stderr):
    if returncode != 0:
        raise BenchError(f"oha failed ({returncode}): {stderr.strip()[-500:]}")
    j = json.loads(stdout)
    codes = {int(k): v for k, v in j.get("statusCodeDistribution", {}).items()}
    # Requests still in flight when the time is up are cut off, not failed.
    failures = sum(v for k, v in j.get("errorDistribution", {}).items()
                   if "deadline" not in k)
    lp = j.get("latencyPercentiles", {})
    total = sum(codes.values())
    return {
        "requests": total,
        "duration_us": int(j["summary"]["total"] * 1e6),
        "errors": {"status": sum(v for c, v in codes.items() if c >= 400), "connect": failures,
                   "read": 0, "write": 0, "timeout": 0},
        "latency_us": {"p50": (lp.get("p50") or 0) * 1e6, "p99": (lp.get("p99") or 0) * 1e6},
    }


def oha(base_url, reqfile, concurrency, seconds):
    """The same measurement with oha, for a file of exactly one request."""
    p = subprocess.run(oha_command(base_url, reqfile, concurrency, seconds), capture_output=True,
                       text=True, timeout=seconds + 60, check=False)
    return oha_result(p.returncode, p.stdout, p.stderr)


def load(row, concurrency, seconds, generator):
    """oha when asked for and the row has one request; wrk otherwise."""
    if generator == "oha" and row["requests"] == 1:
        return oha(row["base"], row["file"], concurrency, seconds), "oha"
    return wrk(row["base"], row["file"], concurrency, seconds), "wrk"


def measure(row, concurrency, args, servers):
    if args.warmup > 0:
        load(row, concurrency, args.warmup, args.load_generator)
    pids = {name: servers.pid(name) for name in servers.procs}
    target = servers.pid(row["server"])
    # Keep the peak since the last reset before starting a new one.
    servers.peaks[row["server"]] = max(servers.peaks.get(row["server"], 0),
                                       proc_status(target, "VmHWM"))
    peak_reset = reset_peak(target)
    database = database_pids(servers)
    db0 = processes_cpu(database)
    cpu0 = {n: proc_cpu(p) for n, p in pids.items()}
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    result, generator = load(row, concurrency, args.duration, args.load_generator)
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu1 = {n: proc_cpu(p) for n, p in pids.items()}
    db1 = processes_cpu(database)
    servers.check_alive()
    seconds = result["duration_us"] / 1e6
    errors = sum(result["errors"].values())
    cpu = sum(cpu1[n] - cpu0[n] for n in pids)
    return {
        "key": row["key"],
        "label": row["label"],
        "group": row["group"],
        "c": concurrency,
        "rps": result["requests"] / seconds if seconds else 0.0,
        "requests": result["requests"],
        "p50_ms": result["latency_us"]["p50"] / 1000,
        "p99_ms": result["latency_us"]["p99"] / 1000,
        "errors": errors,
        "error_kinds": {k: v for k, v in result["errors"].items() if v},
        "server_cores": cpu / wall,
        # What a request costs the servers, whatever share of the cores they got: steadier
        # than req/s when something else runs on the machine.
        "server_us": per_request_us(cpu, result["requests"]),
        # The server under test alone, as another server's single process is measured.
        "target_us": per_request_us(cpu1[row["server"]] - cpu0[row["server"]],
                                    result["requests"]),
        "cores_by_server": {n: round((cpu1[n] - cpu0[n]) / wall, 3) for n in pids},
        "loadgen_cores": ((ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)) / wall,
        "peak_rss": proc_status(target, "VmHWM"),
        "peak_since_start": not peak_reset,
        "server": row["server"],
        "generator": generator,
        "backend": servers.backend,
        # PostgreSQL's own work is in its processes, not in server_us (SQLite's is in it).
        "database_us": None if not database else per_request_us(
            sum(db1[p] - db0[p] for p in db1 if p in db0), result["requests"]),
    }


def database_pids(servers):
    """The PostgreSQL server's processes on this machine (every process named `postgres`;
    the database is on loopback), none for SQLite, which runs inside Tessera's."""
    if servers.backend != "PostgreSQL":
        return []
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() == "postgres":
                    pids.append(int(entry))
        except (OSError, ValueError):
            continue
    return pids


def processes_cpu(pids):
    """utime + stime of each process still running, in seconds."""
    out = {}
    for pid in pids:
        try:
            out[pid] = proc_cpu(pid)
        except (OSError, IndexError, ValueError):
            continue
    return out


# ---- the run ----------------------------------------------------------------------------

def signing_limit():
    """Signatures a second on all cores by `openssl speed -multi`, measured now: what no
    issuance of RS256, ES256 or EdDSA tokens can exceed on this machine in this run."""
    if not shutil.which("openssl"):
        return {"error": "openssl is not installed"}
    cores = os.cpu_count() or 1
    cmd = ["openssl", "speed", "-seconds", str(SIGNING_SECONDS), "-multi", str(cores), *SIGNING]
    print(f"  signing limit: {' '.join(cmd)}", flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60 + 10 * SIGNING_SECONDS,
                       check=False)
    if p.returncode != 0:
        raise BenchError(f"openssl speed failed ({p.returncode}): {p.stderr.strip()[-300:]}")
    rates = openssl_sign_rates(p.stdout)
    missing = [a for a in SIGNING if a not in rates]
    if missing:
        raise BenchError(f"no sign/s for {', '.join(missing)} in openssl speed's output:\n"
                         + p.stdout[-1500:])
    version = subprocess.run(["openssl", "version"], capture_output=True, text=True,
                             check=False).stdout.strip()
    print("  signing limit: " + ", ".join(f"{SIGNING[a][0]} {rates[a]:,.0f}/s" for a in SIGNING),
          flush=True)
    return {"sign_per_s": rates, "cores": cores, "seconds": SIGNING_SECONDS,
            "openssl": version.split(" (")[0], "command": " ".join(cmd)}


def openssl_sign_rates(output):
    """sign/s by algorithm from `openssl speed -multi`: the summed table it prints last,
    else the sum of the children's `+F` lines (machine-readable, one per child)."""
    rows = {"rsa2048": r"^rsa\s+2048\s+bits\b", "ecdsap256": r"\(nistp256\)",
            "ed25519": r"\(Ed25519\)"}
    rates, header = {}, None
    for line in output.splitlines():
        if "sign/s" in line:
            header = line.split()
            continue
        for algorithm, pattern in rows.items():
            if header and re.search(pattern, line.strip()) and algorithm not in rates:
                # The last len(header) fields are the header's columns, whatever the name
                # before them (OpenSSL 3.2 added RSA encryption columns).
                cells = line.split()[-len(header):]
                try:
                    rates[algorithm] = float(cells[header.index("sign/s")])
                except (ValueError, IndexError):
                    pass
    if len(rates) == len(rows):
        return rates
    # +F2:index:bits:sign/s:verify/s (RSA), +F4:index:bits:sign/s:verify/s (ECDSA),
    # +F6:index:bits:name:sign/s:verify/s (EdDSA).
    sums = {}
    for m in re.finditer(r"\+F([246]):(\d+):(\d+):([^\s]*)", output):
        kind, bits, rest = m.group(1), m.group(3), m.group(4).split(":")
        algorithm = {("2", "2048"): "rsa2048", ("4", "256"): "ecdsap256"}.get((kind, bits))
        if kind == "6" and rest and rest[0] == "Ed25519":
            algorithm, rest = "ed25519", rest[1:]
        if algorithm is None or not rest:
            continue
        try:
            sums[algorithm] = sums.get(algorithm, 0.0) + float(rest[0])
        except ValueError:
            continue
    return {**sums, **rates}


def psql(url, sql):
    p = subprocess.run(["psql", "-w", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
                       capture_output=True, text=True, timeout=120, check=False)
    if p.returncode != 0:
        raise BenchError(f"PostgreSQL: {p.stderr.strip()[-300:]}")
    return p.stdout


def throwaway_database(url, workdir, name="bench", flag="--database-url"):
    """A fresh database and a function that drops it."""
    if url is None:
        return "sqlite://" + os.path.join(workdir, name + ".db"), lambda: None
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("postgres", "postgresql"):
        raise BenchError(f"{flag} must be a postgres:// URL (SQLite is the default)")
    if parsed.hostname not in ("127.0.0.1", "localhost", "::1") or parsed.query or parsed.params:
        raise BenchError("the benchmark only talks to loopback: use a PostgreSQL on 127.0.0.1, "
                         "with no query parameters in the URL")
    if not shutil.which("psql"):
        raise BenchError("psql is needed to create the throwaway PostgreSQL database")
    db_name = f"tessera_{name}_{os.getpid()}"
    admin = urllib.parse.urlunparse(parsed)
    psql(admin, f'CREATE DATABASE "{db_name}"')
    db = urllib.parse.urlunparse(parsed._replace(path="/" + db_name))
    return db, lambda: psql(admin, f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


def insert_revocations(database_url, count):
    """`count` revocations of random `jti`s, in force until 2099, written straight into the
    revocations table (as the authorization server would, one entry each)."""
    if database_url.startswith("sqlite://"):
        now = datetime.datetime.now(datetime.timezone.utc).isoformat()
        db = sqlite3.connect(database_url[len("sqlite://"):], timeout=30)
        try:
            with db:
                db.executemany(
                    "INSERT INTO revocations (kind, value, until, created_at) "
                    "VALUES ('jti', ?, ?, ?)",
                    ((str(uuid.uuid4()), FAR_UNTIL, now) for _ in range(count)))
        finally:
            db.close()
    else:
        psql(database_url, "INSERT INTO revocations (kind, value, until, created_at) "
             "SELECT 'jti', gen_random_uuid()::text, "
             f"'{FAR_UNTIL}'::timestamptz, now() FROM generate_series(1, {int(count)})")


def seed(servers):
    servers.run("migrate")
    servers.run("company", "add", "acme", "--name", "Acme Corporation")
    servers.run("user", "add", "alice", "--company", "acme", "--role", "admin",
                stdin=PASSWORD + "\n")
    for i in range(5):
        servers.run("user", "add", f"user{i}", "--company", "acme", "--role", "user",
                    stdin=PASSWORD + "\n")
    secrets = {}
    for client, fmt, grants in [
        ("bench-jwt", "jwt", ["client_credentials", "password", "refresh_token"]),
        ("bench-opaque", "opaque", ["client_credentials", "password", "refresh_token"]),
        ("bench-resource", "jwt", ["client_credentials"]),
    ]:
        args = ["client", "add", client, "--scope", "basic", "--scope", "admin",
                "--token-format", fmt]
        for g in grants:
            args += ["--grant", g]
        out = servers.run(*args)
        m = re.search(r"^client_secret: (\S+)$", out, re.M)
        if not m:
            raise BenchError(f"no client_secret printed for {client}")
        secrets[client] = m.group(1)
    return secrets


def machine(load_generator):
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                       "")
    except OSError:
        pass
    mem = proc_meminfo("MemTotal")
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True,
                                 check=False).stdout.split("\n")[0].split(" [")[0].strip()
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, check=False).stdout.strip()
    return {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gib": round(mem / 2**30, 1) if mem else None,
        "kernel": platform.release(),
        "wrk": wrk_version,
        "oha": subprocess.run(["oha", "--version"], capture_output=True, text=True,
                              check=False).stdout.strip() if load_generator == "oha" else None,
        "commit": (commit or "unknown") + (" (with local changes)" if dirty else ""),
        "load_before": os.getloadavg()[0],
        "measured_at": f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
    }


def proc_meminfo(key):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def run(args):
    if not shutil.which("wrk"):
        raise BenchError("wrk is not installed: apt-get install wrk")
    if args.load_generator == "oha" and not shutil.which("oha"):
        raise BenchError("oha is not installed: cargo install --locked oha")
    if args.stock_actix:
        if not shutil.which("oha"):
            raise BenchError("--stock-actix measures with oha, which is not installed: "
                             "cargo install --locked oha")
        if not os.access(args.stock_actix, os.X_OK):
            raise BenchError(f"--stock-actix: no executable at {args.stock_actix}")
    binary = args.binary
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    if binary is None and args.no_build:
        binary = os.path.join(target, "release", "tessera")
    if binary is None:
        print("building the release binary (cargo build --release --locked -p tessera-cli)",
              flush=True)
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "tessera-cli"],
                       cwd=ROOT, check=True)
        binary = os.path.join(target, "release", "tessera")
    if not os.access(binary, os.X_OK):
        raise BenchError(f"no tessera binary at {binary}")
    started = time.monotonic()
    info = machine(args.load_generator)
    extra = {}  # what is measured besides the rows: the signing limit, the stock server
    workdir = tempfile.mkdtemp(prefix="tessera-bench-")
    try:
        results, memory = measure_pass(args, binary, workdir, args.database_url, "bench",
                                       "--database-url", True, extra)
        # Its own servers and database, after the others have stopped.
        selected = lambda key: args.only is None or re.search(args.only, key)  # noqa: E731
        propagation = {} if selected("revocation-propagation") else None
        list_memory = {} if selected("revocation-memory") else None
        if propagation is not None or list_memory is not None:
            row = revocation_phase(args, binary, workdir, propagation, list_memory)
            if row:
                results.append(row)
            if list_memory:
                memory["revocation-list"] = list_memory
        if args.postgres_url:
            print("the same rows on PostgreSQL (--postgres-url)", flush=True)
            again, memory["postgresql"] = measure_pass(args, binary, workdir, args.postgres_url,
                                                       "pg", "--postgres-url", False)
            results += again
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - started
    return info, results, memory, extra, elapsed


def measure_pass(args, binary, workdir, url, name, flag, first_pass, extra=None):
    """Every selected row on a throwaway database at `url` (SQLite without one), with
    servers of its own. The alternating pairs and the signing limit are measured in the
    first pass only, into `extra`."""
    database_url, drop_database = throwaway_database(url, workdir, name, flag)
    servers = Servers(binary, database_url, workdir)
    try:
        return measure_all(args, servers, workdir, first_pass, extra if first_pass else {})
    finally:
        servers.stop()
        drop_database()


def measure_all(args, servers, workdir, first_pass, extra):
    secrets = seed(servers)
    # The list the feed servers follow, in the database before anything starts.
    insert_revocations(servers.database_url, FEED_ENTRIES)
    port = {n: free_port() for n in ["authz", "jwt", "jwt-cached", "introspection",
                                     "introspection-cached", "jwt-feed", "jwt-cached-feed"]}
    authz = f"http://127.0.0.1:{port['authz']}"
    common = ["--rate-limit", "off", "--access-token-ttl", "3600", "--issuer", authz]
    servers.start("authz", "authz", "--authz-addr", f"127.0.0.1:{port['authz']}",
                  "--key-algorithm", "RS256", *common)
    wait_ready(authz + "/healthz", servers, "the authorization server")
    resource_flags = [*common, "--benchmark-open-listing"]
    secret_env = {"TESSERA_CLIENT_SECRET": secrets["bench-resource"]}
    servers.start("jwt", "resource", "--resource-addr", f"127.0.0.1:{port['jwt']}",
                  "--token-cache-size", "0", *resource_flags)
    servers.start("jwt-cached", "resource", "--resource-addr",
                  f"127.0.0.1:{port['jwt-cached']}", *resource_flags)
    servers.start("introspection", "resource", "--resource-addr",
                  f"127.0.0.1:{port['introspection']}", "--opaque-validation", "introspection",
                  "--introspection-client-id", "bench-resource", *resource_flags, env=secret_env)
    servers.start("introspection-cached", "resource", "--resource-addr",
                  f"127.0.0.1:{port['introspection-cached']}", "--opaque-validation",
                  "introspection", "--introspection-client-id", "bench-resource",
                  "--introspection-cache-ttl", f"{INTROSPECTION_CACHE_TTL}s", *resource_flags,
                  env=secret_env)
    # The JWT servers again, following the feed as the confidential client bench-resource.
    feed_flags = ["--client-id", "bench-resource"]
    servers.start("jwt-feed", "resource", "--resource-addr", f"127.0.0.1:{port['jwt-feed']}",
                  "--token-cache-size", "0", *feed_flags, *resource_flags, env=secret_env)
    servers.start("jwt-cached-feed", "resource", "--resource-addr",
                  f"127.0.0.1:{port['jwt-cached-feed']}", *feed_flags, *resource_flags,
                  env=secret_env)
    rs = {n: f"http://127.0.0.1:{port[n]}"
          for n in ["jwt", "jwt-cached", "introspection", "introspection-cached", "jwt-feed",
                    "jwt-cached-feed"]}
    for name, url in rs.items():
        wait_ready(url + "/healthz", servers, f"the resource server ({name})")
    # The servers without client credentials follow no feed; the others hold the whole list.
    for name in ["jwt", "jwt-cached"]:
        if "revocation_feed" in healthz(rs[name]):
            raise BenchError(f"the {name} resource server follows a revocation feed; its rows "
                             "are the ones without")
    for name in ["jwt-feed", "jwt-cached-feed", "introspection", "introspection-cached"]:
        wait_feed(rs[name], servers, f"the resource server ({name})", FEED_ENTRIES)
    time.sleep(1)
    memory = {name: {"idle_rss": proc_status(servers.pid(name), "VmRSS")}
              for name in servers.procs}

    jwt_auth = basic("bench-jwt", secrets["bench-jwt"])
    opaque_auth = basic("bench-opaque", secrets["bench-opaque"])
    resource_auth = basic("bench-resource", secrets["bench-resource"])
    password_form = {"grant_type": "password", "username": "alice", "password": PASSWORD,
                     "scope": "basic admin"}
    # Admin tokens for alice: one password grant, then refreshes (each a new, distinct
    # access token) instead of a thousand password hashes.
    first = token_request(authz, jwt_auth, password_form)
    jwts, refresh = [first["access_token"]], first["refresh_token"]
    while len(jwts) < JWT_TOKENS:
        t = token_request(authz, jwt_auth, {"grant_type": "refresh_token",
                                            "refresh_token": refresh})
        jwts.append(t["access_token"])
        refresh = t["refresh_token"]
    if len(set(jwts)) != JWT_TOKENS:
        raise BenchError("the refreshed tokens are not distinct")
    opaque = token_request(authz, opaque_auth, password_form)["access_token"]
    users = "/companies/acme/users"
    for name in rs:
        for tok in (jwts[0], opaque):
            status, body, headers = http("GET", rs[name] + users,
                                         headers={"Authorization": "Bearer " + tok})
            if status != 200 or len(json.loads(body)) != 6:
                raise BenchError(f"{name} {users} answered {status}: {body[:200]!r}")

    def get_lines(tokens, path=users):
        return [("GET", path, None, {"Authorization": "Bearer " + t}) for t in tokens]

    def post_lines(path, auth, form):
        return [("POST", path, urllib.parse.urlencode(form),
                 {"Authorization": auth, "Content-Type": FORM})]

    cc = {"grant_type": "client_credentials", "scope": "basic admin"}
    counts = {}

    def f(name, lines):
        path = requests_file(workdir, name, lines)
        counts[path] = len(lines)
        return path

    rows = [
        dict(key="ceiling", group="api", label="GET users, no authorization (ceiling)",
             server="jwt-cached", base=rs["jwt-cached"],
             file=f("open", [("GET", "/open/companies/acme/users", None, {})])),
        dict(key="jwt1", group="api", label="GET users, JWT, one token, verified every time",
             server="jwt", base=rs["jwt"], file=f("jwt1", get_lines(jwts[:1]))),
        dict(key="jwt1000", group="api",
             label=f"GET users, JWT, {JWT_TOKENS:,} tokens, verified every time",
             server="jwt", base=rs["jwt"], file=f("jwt1000", get_lines(jwts))),
        dict(key="jwt1-cached", group="api", label="GET users, JWT, one token, cache",
             server="jwt-cached", base=rs["jwt-cached"], file=f("jwt1c", get_lines(jwts[:1]))),
        dict(key="jwt1000-cached", group="api",
             label=f"GET users, JWT, {JWT_TOKENS:,} tokens, cache",
             server="jwt-cached", base=rs["jwt-cached"], file=f("jwt1000c", get_lines(jwts))),
        dict(key="opaque-store", group="api", label="GET users, opaque token, token store",
             server="jwt-cached", base=rs["jwt-cached"], file=f("opq", get_lines([opaque]))),
        dict(key="opaque-introspection", group="api",
             label="GET users, opaque token, introspection",
             server="introspection", base=rs["introspection"],
             file=f("opqi", get_lines([opaque]))),
        dict(key="opaque-introspection-cached", group="api",
             label=f"GET users, opaque token, introspection, {INTROSPECTION_CACHE_TTL} s answer cache",
             server="introspection-cached", base=rs["introspection-cached"],
             file=f("opqic", get_lines([opaque]))),
        dict(key="me-jwt1", group="me", label="GET /me, JWT, verified every time",
             server="jwt", base=rs["jwt"], file=f("me1", get_lines(jwts[:1], "/me"))),
        dict(key="me-jwt1-feed", group="me",
             label=f"GET /me, JWT, verified every time, feed with {FEED_ENTRIES:,} entries",
             server="jwt-feed", base=rs["jwt-feed"], file=f("me1f", get_lines(jwts[:1], "/me"))),
        dict(key="me-jwt1-cached", group="me", label="GET /me, JWT, one token, cache",
             server="jwt-cached", base=rs["jwt-cached"], file=f("me1c", get_lines(jwts[:1], "/me"))),
        dict(key="me-jwt1-cached-feed", group="me",
             label=f"GET /me, JWT, one token, cache, feed with {FEED_ENTRIES:,} entries",
             server="jwt-cached-feed", base=rs["jwt-cached-feed"],
             file=f("me1cf", get_lines(jwts[:1], "/me"))),
        dict(key="me-jwt1000-cached", group="me",
             label=f"GET /me, JWT, {JWT_TOKENS:,} tokens, cache", server="jwt-cached",
             base=rs["jwt-cached"], file=f("me1000c", get_lines(jwts, "/me"))),
        dict(key="me-opaque-store", group="me", label="GET /me, opaque token, token store",
             server="jwt-cached", base=rs["jwt-cached"], file=f("meo", get_lines([opaque], "/me"))),
        dict(key="issue-rs256", group="issue", label="issue: client_credentials, JWT RS256",
             server="authz", base=authz, file=f("cc", post_lines("/oauth/token", jwt_auth, cc))),
        dict(key="issue-opaque", group="issue",
             label="issue: client_credentials, opaque (stored)", server="authz", base=authz,
             file=f("cco", post_lines("/oauth/token", opaque_auth, cc))),
        dict(key="issue-password", group="issue",
             label="issue: password grant, JWT RS256 (argon2id)", server="authz", base=authz,
             file=f("pw", post_lines("/oauth/token", jwt_auth, password_form))),
        dict(key="introspect", group="issue", label="introspection endpoint (opaque, active)",
             server="authz", base=authz,
             file=f("intro", post_lines("/oauth/introspect", resource_auth,
                                        {"token": opaque, "token_type_hint": "access_token"}))),
        dict(key="jwks", group="issue", label="JWKS", server="authz", base=authz,
             file=f("jwks", [("GET", "/.well-known/jwks.json", None, {})])),
    ]
    later = {
        "ES256": dict(key="issue-es256", group="issue",
                      label="issue: client_credentials, JWT ES256", server="authz", base=authz,
                      file=f("cc", post_lines("/oauth/token", jwt_auth, cc))),
        "EdDSA": dict(key="issue-eddsa", group="issue",
                      label="issue: client_credentials, JWT EdDSA", server="authz", base=authz,
                      file=f("cc", post_lines("/oauth/token", jwt_auth, cc))),
    }
    me_jwt = next(r for r in rows if r["key"] == "me-jwt1")
    if args.only:
        rows = [r for r in rows if re.search(args.only, r["key"])]
        later = {a: r for a, r in later.items() if re.search(args.only, r["key"])}
    with_stock = first_pass and args.stock_actix and (
        args.only is None or re.search(args.only, "stock-actix") or me_jwt in rows)

    for row in [*rows, *later.values(), me_jwt]:
        row["requests"] = counts[row["file"]]
    results = []

    def go(row):
        # Just before the rows it bounds, on the same machine in the same state.
        if first_pass and args.signing_limit and row["group"] == "issue" and \
                "signing_limit" not in extra:
            extra["signing_limit"] = signing_limit()
        for c in args.concurrency:
            r = measure(row, c, args, servers)
            results.append(r)
            flag = "" if r["errors"] == 0 else f"  ERRORS {r['error_kinds']}"
            label = r["label"] if first_pass else f"{r['backend']}: {r['label']}"
            print(f"  {label:<52} c={c:<3} {r['rps']:>9,.0f} req/s  p50 {r['p50_ms']:6.2f} ms"
                  f"  p99 {r['p99_ms']:7.2f} ms  cpu {r['server_cores']:.2f}"
                  f"  {fmt_us(r.get('server_us'))} µs/req{flag}", flush=True)

    for row in rows:
        go(row)
    # The feed's cost is a few percent at most, less than what one row varies by from one
    # measurement to the next on two shared cores: measure each pair again, alternately.
    keyed = {row["key"]: row for row in rows}
    # The servers are warm by now: a second of warm-up before each measurement is enough.
    again = argparse.Namespace(**dict(vars(args), warmup=min(args.warmup, 1)))
    # The feed is in memory, whatever the database: its cost is measured once.
    for off, on in FEED_PAIRS if first_pass else []:
        if off not in keyed or on not in keyed:
            continue
        for c in args.concurrency:
            rounds = []
            for i in range(1 if args.smoke else FEED_PAIR_ROUNDS):
                order = [off, on] if i % 2 == 0 else [on, off]
                got = {key: measure(keyed[key], c, again, servers) for key in order}
                rounds.append([got[off]["rps"], got[on]["rps"]])
            ratios_ = [b / a for a, b in rounds if a]
            paired = {"rounds": rounds, "warmup_s": again.warmup,
                      "ratio": statistics.median(ratios_) if ratios_ else float("nan")}
            for r in results:
                if r["key"] == on and r["c"] == c:
                    r["paired"] = paired
            print(f"  {keyed[on]['label']:<52} c={c:<3} feed / none, alternating: "
                  + ", ".join(f"{b / a:.3f}" for a, b in rounds)
                  + f" (median {paired['ratio']:.3f})", flush=True)
    # Before the key rotations below: the stock server is given the RS256 key.
    if with_stock:
        extra["stock_actix"] = stock_actix(args, servers, workdir, authz, me_jwt, jwts[0])
    for algorithm, row in later.items():
        servers.run("keys", "rotate", "--now", "--key-algorithm", algorithm)
        deadline = time.monotonic() + 40
        while jwt_alg(token_request(authz, jwt_auth, cc)["access_token"]) != algorithm:
            if time.monotonic() > deadline:
                raise BenchError(f"the authorization server did not switch to {algorithm}")
            time.sleep(0.5)
        go(row)
    for name in servers.procs:
        memory[name]["peak_rss_run"] = max(servers.peaks.get(name, 0),
                                           proc_status(servers.pid(name), "VmHWM"))
        memory[name]["rss_end"] = proc_status(servers.pid(name), "VmRSS")
    return results, memory


# ---- the stock actix-web server, interleaved with Tessera's GET /me -----------------------

def stock_actix(args, servers, workdir, authz, me_row, token):
    """The peer harness's stock actix-web + jsonwebtoken server, trusting Tessera's keys,
    issuer and audience, and Tessera's `GET /me` (verified every time), both with the same
    admin JWT, measured in alternation with oha: the ratio of two servers on the same cores
    at nearly the same moment, which the machine's noise moves far less than either rate."""
    status, body, _ = http("GET", authz + "/.well-known/jwks.json")
    if status != 200:
        raise BenchError(f"the authorization server's JWKS answered {status}: {body[:200]!r}")
    jwks = os.path.join(workdir, "stock-jwks.json")
    with open(jwks, "wb") as f:
        f.write(body)
    aud = jwt_part(token, 1)["aud"]
    audiences = aud if isinstance(aud, list) else [aud]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    stock = Servers(args.stock_actix, None, workdir)
    try:
        stock.start("stock", env={"PORT": str(port), "JWKS_FILE": jwks, "ISSUER": authz,
                                  "AUDIENCES": ",".join(audiences), "WORKERS": "2"})
        wait_ready(base + "/open/companies/acme/users", stock, "the stock actix-web server")
        users = "/companies/acme/users"
        status, body, _ = http("GET", base + users, headers={"Authorization": "Bearer " + token})
        if status != 200:
            raise BenchError(f"the stock actix-web server answered {status} to Tessera's JWT "
                             f"at {users} (issuer {authz}, audiences {audiences}): "
                             f"{body[:300]!r}")
        stock_row = dict(key="stock-actix", group="stock",
                         label="stock actix-web + jsonwebtoken, RS256 JWT", server="stock",
                         base=base, requests=1,
                         file=requests_file(workdir, "stock", [
                             ("GET", users, None, {"Authorization": "Bearer " + token})]))
        # Both warm by now (Tessera's rows, the check above and each warm-up); oha for both,
        # as the peer harness.
        again = argparse.Namespace(**dict(vars(args), warmup=min(args.warmup, 1),
                                          load_generator="oha"))
        rounds = []
        for i in range(1 if args.smoke else FEED_PAIR_ROUNDS):
            order = ["tessera", "stock"] if i % 2 == 0 else ["stock", "tessera"]
            got = {who: measure(me_row, STOCK_CONCURRENCY, again, servers) if who == "tessera"
                   else measure(stock_row, STOCK_CONCURRENCY, again, stock) for who in order}
            ratio = got["tessera"]["rps"] / got["stock"]["rps"] if got["stock"]["rps"] else None
            rounds.append({"first": order[0], "tessera": got["tessera"], "stock": got["stock"],
                           "ratio": ratio})
    finally:
        stock.stop()
    median = lambda values: statistics.median(values) if values else None  # noqa: E731
    summary = {
        "binary": args.stock_actix, "concurrency": STOCK_CONCURRENCY, "warmup_s": again.warmup,
        "issuer": authz, "audiences": audiences, "rounds": rounds,
        "ratio": median([r["ratio"] for r in rounds if r["ratio"] is not None]),
        **{f"{who}_{what}": median([r[who][field] for r in rounds
                                    if r[who].get(field) is not None])
           for who in ("tessera", "stock")
           for what, field in (("rps", "rps"), ("us", "target_us"), ("p99_ms", "p99_ms"))},
    }
    print(f"  {'GET /me, JWT, verified every time / stock actix-web':<52} "
          f"c={STOCK_CONCURRENCY:<3} alternating: "
          + ", ".join(f"{r['ratio']:.3f}" for r in rounds if r["ratio"] is not None)
          + (f" (median {summary['ratio']:.3f}); stock {summary['stock_rps']:,.0f} req/s, "
             f"{fmt_us(summary['stock_us'])} µs/req" if summary["ratio"] else ""), flush=True)
    return summary


# ---- revocation: propagation under load, and the list's memory ---------------------------

class Poller:
    """`GET /me` with one token at one resource server, over one kept-alive connection."""

    def __init__(self, base):
        parsed = urllib.parse.urlparse(base)
        assert parsed.hostname == "127.0.0.1", base
        self.host, self.port = parsed.hostname, parsed.port
        self.conn = None
        self.requests = 0

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def status(self, token):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = HTTPConnection(self.host, self.port, timeout=10)
            try:
                self.conn.request("GET", "/me", headers={"Authorization": "Bearer " + token})
                r = self.conn.getresponse()
                r.read()
                self.requests += 1
                if (r.getheader("Connection") or "").lower() == "close":
                    self.close()
                return r.status
            except (OSError, HTTPException):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def until_revoked(self, token, revoked_at, out, key):
        """Polls every POLL_INTERVAL until `token` gets 401; puts the seconds from
        `revoked_at` to that answer in out[key] (None: not within PROPAGATION_TIMEOUT)."""
        try:
            deadline = revoked_at + PROPAGATION_TIMEOUT
            while True:
                sent = time.monotonic()
                status = self.status(token)
                now = time.monotonic()
                if status == 401:
                    out[key] = now - revoked_at
                    return
                if status != 200:
                    raise BenchError(f"GET /me with a token being revoked answered {status}")
                if now > deadline:
                    out[key] = None
                    return
                time.sleep(max(0.0, POLL_INTERVAL - (time.monotonic() - sent)))
        except Exception as e:  # noqa: BLE001 - reported by the caller's thread
            out[key] = e


class BackgroundLoad:
    """The load generator on one request, running until stopped (SIGINT: both print their
    summary of the run so far)."""

    def __init__(self, base_url, reqfile, concurrency, generator, bound):
        self.generator = generator
        cmd = (oha_command if generator == "oha" else wrk_command)(base_url, reqfile,
                                                                   concurrency, bound)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True)

    def running(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            out, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
            raise BenchError(f"{self.generator} did not stop on SIGINT")
        parse = oha_result if self.generator == "oha" else wrk_result
        return parse(self.proc.returncode, out, err)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


def percentile(values, p):
    """Nearest rank: the smallest value with at least p% of the values at or below it."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[max(0, min(len(ordered) - 1, -(-len(ordered) * p // 100) - 1))]


def revocation_phase(args, binary, workdir, propagation, memory):
    """Two authorization servers and two resource servers on a database of their own, each
    resource server following another authorization server's feed."""
    url = args.propagation_database_url or args.database_url
    if url is None:
        print("  revocation propagation on SQLite (no --propagation-database-url or "
              "--database-url): the documented number comes from PostgreSQL", flush=True)
    database_url, drop_database = throwaway_database(url, workdir, "feed")
    servers = Servers(binary, database_url, workdir)
    try:
        return measure_revocation(args, servers, workdir, propagation, memory,
                                  "SQLite" if url is None else "PostgreSQL")
    finally:
        servers.stop()
        drop_database()


def measure_revocation(args, servers, workdir, propagation, memory, database):
    secrets = seed(servers)
    names = ["authz-a", "authz-b", "rs-a", "rs-b"]
    port = {n: free_port() for n in names}
    url = {n: f"http://127.0.0.1:{port[n]}" for n in names}
    # One issuer, as two instances behind a load balancer would have.
    common = ["--rate-limit", "off", "--access-token-ttl", "3600", "--issuer", url["authz-a"]]
    for n in ["authz-a", "authz-b"]:
        servers.start(n, "authz", "--authz-addr", f"127.0.0.1:{port[n]}", "--key-algorithm",
                      "RS256", *common)
        wait_ready(url[n] + "/healthz", servers, f"the authorization server ({n})")
    feed_flags = ["--client-id", "bench-resource"]
    secret_env = {"TESSERA_CLIENT_SECRET": secrets["bench-resource"]}
    servers.start("rs-a", "resource", "--resource-addr", f"127.0.0.1:{port['rs-a']}",
                  *feed_flags, *common, env=secret_env)
    servers.start("rs-b", "resource", "--resource-addr", f"127.0.0.1:{port['rs-b']}",
                  "--revocation-feed-url", url["authz-b"] + "/oauth/revocations",
                  "--jwks-url", url["authz-b"] + "/.well-known/jwks.json", *feed_flags, *common,
                  env=secret_env)
    rs = {n: url[n] for n in ["rs-a", "rs-b"]}
    follows = {"rs-a": "authz-a", "rs-b": "authz-b"}
    for n in rs:
        wait_ready(rs[n] + "/healthz", servers, f"the resource server ({n})")
        wait_feed(rs[n], servers, f"the resource server ({n})", 0)

    count = 10 if args.smoke else PROPAGATION_REVOCATIONS
    jwt_auth = basic("bench-jwt", secrets["bench-jwt"])
    first = token_request(url["authz-a"], jwt_auth,
                          {"grant_type": "password", "username": "alice", "password": PASSWORD,
                           "scope": "basic admin"})
    # One token for the load, one for each revocation: refreshes, each a new access token.
    tokens, refresh = [first["access_token"]], first["refresh_token"]
    while len(tokens) < count + 1:
        t = token_request(url["authz-a"], jwt_auth, {"grant_type": "refresh_token",
                                                     "refresh_token": refresh})
        tokens.append(t["access_token"])
        refresh = t["refresh_token"]
    for n in rs:
        status, body, _ = http("GET", rs[n] + "/me",
                               headers={"Authorization": "Bearer " + tokens[0]})
        if status != 200:
            raise BenchError(f"{n} GET /me answered {status}: {body[:200]!r}")

    entries = 0
    if memory is not None:
        time.sleep(1)
        before = {n: proc_status(servers.pid(n), "VmRSS") for n in rs}
        entries = 10_000 if args.smoke else MEMORY_ENTRIES
        insert_revocations(servers.database_url, entries)
        for n in rs:
            wait_feed(rs[n], servers, f"the resource server ({n})", entries, timeout=120)
        time.sleep(1)
        after = {n: proc_status(servers.pid(n), "VmRSS") for n in rs}
        memory.update(entries=entries, database=database, servers={
            n: {"before": before[n], "after": after[n]} for n in rs})
        per_entry = sum(after[n] - before[n] for n in rs) / len(rs) / entries
        print(f"  revocation list: {entries:,} entries, resident "
              + ", ".join(f"{n} {fmt_bytes(before[n])} -> {fmt_bytes(after[n])}" for n in rs)
              + f" ({per_entry:.0f} bytes an entry)", flush=True)
    if propagation is None:
        return

    generator = args.load_generator
    load_file = requests_file(workdir, "revocation-load",
                              [("GET", "/me", None, {"Authorization": "Bearer " + tokens[0]})])
    pollers = {n: Poller(rs[n]) for n in rs}
    samples = {n: [] for n in rs}
    # Revoked at the authorization server the resource server follows, or at the other one.
    paths = {"same": [], "other": []}
    timeouts = 0
    pids = {n: servers.pid(n) for n in servers.procs}
    for n in rs:
        reset_peak(pids[n])
    loads = {n: BackgroundLoad(rs[n], load_file, PROPAGATION_CONCURRENCY, generator, 3600)
             for n in rs}
    try:
        time.sleep(max(1, args.warmup))
        cpu0 = {n: proc_cpu(p) for n, p in pids.items()}
        t0 = time.monotonic()
        for i, token in enumerate(tokens[1:]):
            for n in rs:
                status = pollers[n].status(token)
                if status != 200:
                    raise BenchError(f"{n}: GET /me with a fresh token answered {status}")
            at = ["authz-a", "authz-b"][i % 2]
            status, body, _ = http("POST", url[at] + "/oauth/revoke",
                                   urllib.parse.urlencode({"token": token,
                                                           "token_type_hint": "access_token"}),
                                   {"Authorization": jwt_auth, "Content-Type": FORM})
            revoked_at = time.monotonic()
            if status != 200:
                raise BenchError(f"POST /oauth/revoke at {at} answered {status}: {body[:200]!r}")
            out = {}
            threads = [threading.Thread(target=pollers[n].until_revoked,
                                        args=(token, revoked_at, out, n)) for n in rs]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for n in rs:
                if isinstance(out[n], Exception):
                    raise BenchError(f"polling {n}: {out[n]}")
                if out[n] is None:
                    timeouts += 1
                else:
                    samples[n].append(out[n] * 1000)
                    paths["same" if follows[n] == at else "other"].append(out[n] * 1000)
            for n, load_gen in loads.items():
                if not load_gen.running():
                    raise BenchError(f"the load generator on {n} stopped: "
                                     f"{load_gen.proc.stderr.read()[-300:]}")
        wall = time.monotonic() - t0
        cpu1 = {n: proc_cpu(p) for n, p in pids.items()}
    except BaseException:
        for load_gen in loads.values():
            load_gen.kill()
        raise
    done = {n: loads[n].stop() for n in rs}
    servers.check_alive()
    for n in rs:
        status = pollers[n].status(tokens[0])
        if status != 200:
            raise BenchError(f"{n}: the load's token answered {status} after the revocations")
        pollers[n].close()
    load = {}
    for n, r in done.items():
        seconds = r["duration_us"] / 1e6
        load[n] = {"rps": r["requests"] / seconds if seconds else 0.0,
                   "requests": r["requests"], "p50_ms": r["latency_us"]["p50"] / 1000,
                   "p99_ms": r["latency_us"]["p99"] / 1000,
                   "errors": sum(r["errors"].values()),
                   "error_kinds": {k: v for k, v in r["errors"].items() if v}}
    every = [v for n in rs for v in samples[n]]
    propagation.update(
        database=database, revocations=count, timeouts=timeouts, entries_in_force=entries,
        warmup_s=max(1, args.warmup),
        concurrency=PROPAGATION_CONCURRENCY, poll_interval_ms=POLL_INTERVAL * 1000,
        polls=sum(p.requests for p in pollers.values()), loop_s=wall, follows=follows,
        samples_ms=samples, load=load,
        stats={name: {"n": len(v), "p50": percentile(v, 50), "p99": percentile(v, 99),
                      "max": max(v) if v else float("nan")}
               for name, v in [*samples.items(), ("all", every), *paths.items()]})
    errors = sum(x["errors"] for x in load.values()) + timeouts
    kinds = {}
    for x in load.values():
        for k, v in x["error_kinds"].items():
            kinds[k] = kinds.get(k, 0) + v
    if timeouts:
        kinds["not revoked in time"] = timeouts
    stats = propagation["stats"]["all"]
    row = {
        "key": "revocation-propagation",
        "label": "GET /me, JWT, cache, 2 servers following, revoking",
        "group": "revocation",
        "c": PROPAGATION_CONCURRENCY,
        "rps": sum(x["rps"] for x in load.values()),
        "requests": sum(x["requests"] for x in load.values()),
        "p50_ms": max(x["p50_ms"] for x in load.values()),
        "p99_ms": max(x["p99_ms"] for x in load.values()),
        "errors": errors,
        "error_kinds": kinds,
        "server_cores": sum(cpu1[n] - cpu0[n] for n in pids) / wall,
        # The load ran before and after the loop: its requests within the loop are estimated
        # from its rate, and the loop's own requests added.
        "server_us": per_request_us(sum(cpu1[n] - cpu0[n] for n in pids),
                                    sum(x["rps"] for x in load.values()) * wall
                                    + propagation["polls"]),
        "cores_by_server": {n: round((cpu1[n] - cpu0[n]) / wall, 3) for n in pids},
        "loadgen_cores": None,
        "peak_rss": max(proc_status(pids[n], "VmHWM") for n in rs),
        "peak_since_start": False,
        "server": "rs-a",
        "generator": generator,
        "backend": servers.backend,
        "database_us": None,
        "propagation": propagation,
    }
    print(f"  revocation propagation ({database}): {count} revocations, revoked after "
          f"p50 {stats['p50']:.0f} ms, p99 {stats['p99']:.0f} ms, max {stats['max']:.0f} ms; "
          f"load {row['rps']:,.0f} req/s in all"
          + ("" if not errors else f"  ERRORS {kinds}"), flush=True)
    return row


# ---- the report -------------------------------------------------------------------------

def without_password(url):
    """`url` with any password replaced, for showing."""
    parsed = urllib.parse.urlparse(url)
    if parsed.password is None:
        return url
    netloc = parsed.netloc.replace(":" + parsed.password + "@", ":PASSWORD@", 1)
    return urllib.parse.urlunparse(parsed._replace(netloc=netloc))


def by_key(results):
    return {(r["key"], r["c"]): r for r in results}


def ratios(results, concurrency):
    """Ratios of rows measured in this run with the same load generator (a ratio across
    generators would measure the generators too, so it is left out)."""
    k = by_key(results)
    out = []
    for c in concurrency:
        for num, den, what in [
            ("jwt1", "ceiling", "JWT (one token, verified every time) / no authorization"),
            ("jwt1-cached", "ceiling", "JWT (one token, cache) / no authorization"),
            ("jwt1000", "ceiling", f"JWT ({JWT_TOKENS:,} tokens, verified every time) / no authorization"),
            ("jwt1000-cached", "ceiling", f"JWT ({JWT_TOKENS:,} tokens, cache) / no authorization"),
            ("jwt1-cached", "jwt1", "JWT cache / no cache (one token)"),
            ("jwt1000-cached", "jwt1000", f"JWT cache / no cache ({JWT_TOKENS:,} tokens)"),
            ("jwt1", "opaque-store", "JWT (verified every time) / opaque, token store"),
            ("jwt1", "opaque-introspection", "JWT (verified every time) / opaque, introspection"),
            ("opaque-introspection-cached", "opaque-introspection",
             "opaque, introspection: answer cache / none"),
            ("me-jwt1", "me-opaque-store", "GET /me: JWT (verified every time) / opaque, token store"),
            ("me-jwt1-cached", "me-jwt1", "GET /me: JWT cache / no cache (one token)"),
            ("me-jwt1-feed", "me-jwt1",
             f"GET /me, verified every time: feed ({FEED_ENTRIES:,} entries) / no feed"),
            ("me-jwt1-cached-feed", "me-jwt1-cached",
             f"GET /me, cache: feed ({FEED_ENTRIES:,} entries) / no feed"),
            ("me-jwt1000-cached", "me-jwt1", f"GET /me: JWT cache ({JWT_TOKENS:,} tokens) / no cache"),
            ("issue-es256", "issue-rs256", "issuance ES256 / RS256"),
            ("issue-eddsa", "issue-rs256", "issuance EdDSA / RS256"),
        ]:
            a, b = k.get((num, c)), k.get((den, c))
            if a and b and a["rps"] and b["rps"] and a["generator"] == b["generator"]:
                out.append((c, what, a["rps"] / b["rps"]))
    return out


def fmt_bytes(n):
    return f"{n / 2**20:.1f} MB"


def fmt_us(us):
    """Microseconds a request; blank where not measured (results saved before it was)."""
    return "" if us is None else f"{us:,.0f}"


def svg_chart(results, concurrency):
    """Horizontal bars of requests/s, one group per row, one bar per concurrency."""
    labels = []
    for r in results:
        if r["label"] not in labels:
            labels.append(r["label"])
    k = {(r["label"], r["c"]): r["rps"] for r in results}
    top = max([v for v in k.values()] + [1])
    colors = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759"]
    left, width, bar, gap = 360, 520, 12, 10
    group_h = bar * len(concurrency) + gap
    height = 40 + group_h * len(labels) + 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 90}" '
           f'height="{height}" font-family="sans-serif" font-size="11">',
           f'<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{left}" y="18" font-size="13" font-weight="bold">requests/s '
           f'(higher is better)</text>']
    for i, c in enumerate(concurrency):
        x = left + 230 + i * 70
        out.append(f'<rect x="{x}" y="8" width="10" height="10" fill="{colors[i % 4]}"/>'
                   f'<text x="{x + 14}" y="17">c={c}</text>')
    # grid
    step = nice_step(top)
    v = 0
    while v <= top:
        x = left + width * v / top
        out.append(f'<line x1="{x:.1f}" y1="30" x2="{x:.1f}" y2="{height - 30}" '
                   f'stroke="#ddd"/><text x="{x:.1f}" y="{height - 16}" '
                   f'text-anchor="middle" fill="#555">{v:,.0f}</text>')
        v += step
    for gi, label in enumerate(labels):
        y0 = 36 + gi * group_h
        out.append(f'<text x="{left - 8}" y="{y0 + bar * len(concurrency) / 2 + 4:.1f}" '
                   f'text-anchor="end">{xml_escape(label)}</text>')
        for i, c in enumerate(concurrency):
            val = k.get((label, c))
            if val is None:
                continue
            w = max(1.0, width * val / top)
            y = y0 + i * bar
            out.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar - 2}" '
                       f'fill="{colors[i % 4]}"/><text x="{left + w + 4:.1f}" y="{y + bar - 3}" '
                       f'fill="#333">{val:,.0f}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def nice_step(top):
    raw = top / 6
    mag = 10 ** max(0, len(str(int(raw))) - 1)
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def xml_escape(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# (our row, peer scenario, what the peer is) for the comparison, all at c=64.
PEER_PAIRS = [
    ("issue-rs256", "A.token.rs256.c64", "client_credentials, RS256 JWT", "node-oidc-provider"),
    ("issue-es256", "A.token.es256.c64", "client_credentials, ES256 JWT", "node-oidc-provider"),
    ("issue-eddsa", "A.token.eddsa.c64", "client_credentials, EdDSA JWT", "node-oidc-provider"),
    ("issue-opaque", "A.token.opaque.c64",
     "client_credentials, opaque (Tessera: stored durably; peer: in memory)", "node-oidc-provider"),
    ("introspect", "A.introspect.opaque.c64", "introspection endpoint", "node-oidc-provider"),
    ("jwks", "A.jwks.c64", "JWKS", "node-oidc-provider"),
    ("me-jwt1", "B.auth.rs256.c64",
     "RS256 JWT verified per request (Tessera: `GET /me`; peer: static list)", "fastify + jose"),
    ("me-jwt1", "X.auth.rs256.c64",
     "RS256 JWT verified per request (Tessera: `GET /me`; peer: static list)",
     "actix-web + jsonwebtoken"),
    ("jwt1", "B.auth.rs256.c64",
     "RS256 JWT verified per request (Tessera: users from the database)", "fastify + jose"),
    ("jwt1", "X.auth.rs256.c64",
     "RS256 JWT verified per request (Tessera: users from the database)",
     "actix-web + jsonwebtoken"),
    ("me-jwt1-cached", "X.auth.rs256.c64",
     "JWT, Tessera with its cache (`GET /me`)", "actix-web + jsonwebtoken"),
    ("ceiling", "B.noauth.c64",
     "no authorization (Tessera: users from the database; peer: static list)",
     "fastify"),
    ("ceiling", "X.noauth.c64",
     "no authorization (Tessera: users from the database; peer: static list)", "actix-web"),
]


STOCK_WHAT = ("RS256 JWT verified per request: Tessera GET /me vs stock actix-web + "
              "jsonwebtoken (same run, interleaved, median)")


def peer_rows(results, peers, stock=None):
    k = by_key(results)
    rows = []
    if stock and stock.get("ratio"):
        rows.append([STOCK_WHAT, "actix-web + jsonwebtoken, this run",
                     f"{stock['tessera_rps']:,.0f}", f"{stock['stock_rps']:,.0f}",
                     f"{stock['ratio']:.2f}×", f"{stock['tessera_p99_ms']:.1f}",
                     f"{stock['stock_p99_ms']:.1f}", fmt_us(stock.get("tessera_us")),
                     fmt_us(stock.get("stock_us"))])
    for ours, theirs, what, who in PEER_PAIRS:
        a, b = k.get((ours, 64)), peers.get(theirs)
        # The peers are measured with oha: compare only rows this run measured with it.
        if not a or not b or not b.get("rps_ok") or a["generator"] != "oha":
            continue
        rows.append([what, who, f"{a['rps']:,.0f}", f"{b['rps_ok']:,.0f}",
                     f"{a['rps'] / b['rps_ok']:.2f}×", f"{a['p99_ms']:.1f}",
                     f"{b['p99_ms']:.1f}", fmt_us(a.get("server_us")),
                     fmt_us(peer_us(b))])
    return rows


def peer_us(row):
    """The peer's server CPU microseconds a successful request, from the harness's cores
    (CPU over the run's wall time) and successful requests a second."""
    cores, rps = row.get("server_cores"), row.get("rps_ok")
    return cores / rps * 1e6 if cores is not None and rps else None


# The performance targets, all at c=64: (what, Tessera's row, the reference, the least
# ratio). A row is (backend, key); a reference is a peer scenario, this run's signing limit,
# or another Tessera row. The stock server's target takes the interleaved median instead.
TARGET_C = 64
TARGETS = [
    ("client_credentials ES256 (SQLite) / node-oidc-provider ES256",
     ("SQLite", "issue-es256"), ("peer", "A.token.es256.c64"), 5),
    ("client_credentials EdDSA (SQLite) / node-oidc-provider EdDSA",
     ("SQLite", "issue-eddsa"), ("peer", "A.token.eddsa.c64"), 5),
    ("client_credentials RS256 (SQLite) / this run's RSA-2048 signing limit (openssl, all "
     "cores)", ("SQLite", "issue-rs256"), ("signing", "rsa2048"), 0.8),
    ("opaque issuance, stored durably (SQLite) / node-oidc-provider opaque (in memory)",
     ("SQLite", "issue-opaque"), ("peer", "A.token.opaque.c64"), 2),
    ("introspection endpoint (SQLite) / node-oidc-provider introspection",
     ("SQLite", "introspect"), ("peer", "A.introspect.opaque.c64"), 3),
    ("GET /me, RS256 JWT verified every time / stock actix-web + jsonwebtoken (interleaved, "
     "median)", ("stock", None), ("stock", None), 0.9),
    ("introspection endpoint (PostgreSQL) / node-oidc-provider introspection",
     ("PostgreSQL", "introspect"), ("peer", "A.introspect.opaque.c64"), 1.5),
    ("client_credentials ES256 (PostgreSQL) / node-oidc-provider ES256",
     ("PostgreSQL", "issue-es256"), ("peer", "A.token.es256.c64"), 3),
    ("GET /me, opaque token, token store (PostgreSQL) / GET /me, JWT verified every time "
     "(PostgreSQL)", ("PostgreSQL", "me-opaque-store"), ("PostgreSQL", "me-jwt1"), 0.4),
]


def targets(results, peers, extra):
    """(what, Tessera's value, the reference's, their ratio, the least ratio, met) for each
    target; a value is text, the ratio None where either side was not measured."""
    rows = {(r.get("backend"), r["key"], r["c"]): r for r in results
            if r["group"] != "revocation"}
    limit = (extra.get("signing_limit") or {}).get("sign_per_s", {})
    stock = extra.get("stock_actix") or {}
    measured = {backend for backend, _, _ in rows}
    missing = {"PostgreSQL": "not measured (no --postgres-url)", "SQLite": "not measured (no "
               "SQLite run)", "stock": "not measured (no --stock-actix)"}
    out = []
    for what, (backend, key), (kind, ref), least in TARGETS:
        if backend == "stock":
            ratio = stock.get("ratio")
            ours = f"{stock['tessera_rps']:,.0f} req/s" if ratio else missing["stock"]
            theirs = f"{stock['stock_rps']:,.0f} req/s" if ratio else "not measured"
            out.append((what, ours, theirs, ratio, least))
            continue
        r = rows.get((backend, key, TARGET_C))
        if kind == "peer":
            b = (peers or {}).get(ref) or {}
            value, theirs = b.get("rps_ok"), (f"{b['rps_ok']:,.0f} req/s" if b.get("rps_ok")
                                              else "not in the peers' results")
            # The peers are measured with oha: a rate from another generator would not compare.
            comparable = r is not None and r["generator"] == "oha"
        elif kind == "signing":
            value = limit.get(ref)
            theirs = f"{value:,.0f} signatures/s" if value else "not measured"
            comparable = True
        else:
            b = rows.get((kind, ref, TARGET_C))
            value = b["rps"] if b else None
            theirs = f"{value:,.0f} req/s" if b else "not measured"
            comparable = b is not None and r is not None and b["generator"] == r["generator"]
        if r is None:
            ours = "not measured" if backend in measured else missing[backend]
        elif not comparable:
            ours = f"{r['rps']:,.0f} req/s (by {r['generator']}: not comparable)"
        else:
            ours = f"{r['rps']:,.0f} req/s"
        ratio = r["rps"] / value if r is not None and comparable and value else None
        out.append((what, ours, theirs, ratio, least))
    return [(what, ours, theirs, ratio, least, None if ratio is None else ratio >= least)
            for what, ours, theirs, ratio, least in out]


def targets_section(results, peers, extra):
    lines = ["", "## Targets", "",
             f"All at c={TARGET_C}; the peers' figures from the peer harness's results, "
             "measured on this machine with oha; PostgreSQL rows need `--postgres-url` (or a "
             "run with `--database-url`).", "",
             "| target | Tessera | reference | ratio | target | met |",
             "|---|---:|---:|---:|---:|---|"]
    for what, ours, theirs, ratio, least, met in targets(results, peers, extra):
        lines.append(f"| {what} | {ours} | {theirs} | "
                     f"{'' if ratio is None else f'{ratio:.2f}×'} | ≥ {least:g}× | "
                     f"{'' if met is None else 'yes' if met else '**no**'} |")
    return lines


def markdown(info, results, memory, extra, args, elapsed, command, chart_name, peers=None):
    results, postgres = split_passes(results, args.database_url)
    k = by_key(results)
    cs = args.concurrency
    info = dict(info, wrk=info["wrk"].split(" [")[0])
    db = "SQLite (a file in a temporary directory)" if args.database_url is None else \
        "PostgreSQL (a throwaway database on the server given)"
    if postgres:
        db += ("; then the same rows again on PostgreSQL (a throwaway database on the server "
               "given, servers of their own), [side by side](#sqlite-and-postgresql)")
    lines = [
        "# Benchmarks",
        "",
        "Written by `bench/bench.py`; do not edit by hand. Rerun it to measure your own "
        "machine:",
        "",
        "```",
        command,
        "```",
        "",
        f"- measured from {info['measured_at']}, commit {info['commit']}, "
        f"{elapsed / 60:.1f} minutes in all",
        f"- machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, "
        f"Linux {info['kernel']}; load average {info['load_before']:.2f} before the run",
        (f"- load generator: {info['oha']} for every row of one request (as the peer "
         f"harness), {info['wrk']} (2 threads) for the rows rotating {JWT_TOKENS:,} tokens; "
         "on the **same cores** as the servers" if info.get("oha") else
         f"- load generator: {info['wrk']} (2 threads), on the **same cores** as the servers"),
        f"- database: {db}; rate limits off; release build",
        *signing_header(extra.get("signing_limit"), args),
        f"- every row: {args.warmup} s of warm-up, then {args.duration} s measured at each "
        f"concurrency (connections kept alive)",
        "- servers: one authorization server and six resource servers, each its own "
        "process: JWT cache off (`--token-cache-size 0`), JWT cache on (the default), "
        "opaque tokens by introspection, and the same with a "
        f"{INTROSPECTION_CACHE_TTL} s answer cache (`--introspection-cache-ttl`); the API "
        "rows call "
        "`GET /companies/acme/users` (6 users from the database, as an admin of `acme`). "
        "The first two follow no revocation feed (no client credentials); two more, JWT "
        "cache off and on, follow it (`--client-id`/`--client-secret`), as do the "
        "introspection servers, whose credentials are the feed's too; the feed holds "
        f"{FEED_ENTRIES:,} revocations throughout. The propagation and memory rows have "
        "servers and a database of their own ([below](#revocation-feed))",
        "- *server CPU* is the CPU time all Tessera processes used during the row, in cores "
        "(introspection rows include the authorization server answering); *server µs/req* "
        "is that CPU time divided by the requests completed, what a request costs the "
        "servers whatever share of the cores they got (steadier than req/s on a busy "
        "machine); *peak RSS* is the peak resident memory of the server under test during "
        "the row",
        "- on a shared two-core machine the rows that read the database vary by up to about "
        "20% from one run to the next; compare rows within one run (the ratios below), and "
        "rerun for a second sample",
        "",
        f"![requests per second by row and concurrency]({chart_name})",
        "",
        "| row | c | req/s | p50 ms | p99 ms | server CPU | server µs/req | peak RSS | errors "
        "| load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(f"| {r['label']} | {r['c']} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | "
                     f"{r['p99_ms']:.2f} | {r['server_cores']:.2f} | "
                     f"{fmt_us(r.get('server_us'))} | "
                     f"{fmt_bytes(r['peak_rss'])} | {r['errors']} | {r['generator']} |")
    lines += signing_section(k, cs, extra.get("signing_limit"))
    lines += ["", "## Ratios (same run)", "", "| c | ratio | value |", "|---:|---|---:|"]
    for c, what, v in ratios(results, cs):
        lines.append(f"| {c} | {what} | {v:.2f} |")
    if postgres:
        lines += backends_section(results, postgres)
    lines += ["", "## Memory", "",
              "| server | idle RSS | RSS after the run | peak RSS over the run |",
              "|---|---:|---:|---:|"]
    names = {"authz": "authorization server", "jwt": "resource server, JWT cache off",
             "jwt-cached": "resource server, JWT cache on",
             "introspection": "resource server, introspection",
             "introspection-cached": "resource server, introspection with answer cache"}
    names.update({"jwt-feed": "resource server, JWT cache off, following the feed",
                  "jwt-cached-feed": "resource server, JWT cache on, following the feed"})
    for name, m in memory.items():
        if "idle_rss" not in m:
            continue
        lines.append(f"| {names.get(name, name)} | {fmt_bytes(m['idle_rss'])} | "
                     f"{fmt_bytes(m.get('rss_end', 0))} | {fmt_bytes(m.get('peak_rss_run', 0))} |")
    for name, m in memory.get("postgresql", {}).items():
        lines.append(f"| {names.get(name, name)}, PostgreSQL run | {fmt_bytes(m['idle_rss'])} | "
                     f"{fmt_bytes(m.get('rss_end', 0))} | {fmt_bytes(m.get('peak_rss_run', 0))} |")
    lines += revocation_section(results, memory, cs)
    lines += stock_section(extra.get("stock_actix"))
    if peers:
        lines += ["", "## Against other servers (c=64, same machine)", "",
                  "The peer harness (panva's node-oidc-provider, fastify + jose, and stock "
                  "actix-web + jsonwebtoken on aws-lc) ran on this machine just before this "
                  "run, with the same concurrency and durations, `oha` as its load generator "
                  "sharing the two cores with the server (see the load column above for "
                  "this run's). The "
                  "peers' resource routes return a fixed list; Tessera's list users from the "
                  "database, so the like-for-like authorization rows are `GET /me`, which "
                  "reads nothing but the token. Server µs/req: Tessera's as in the table "
                  "above (in the stock server's row, its resource server process alone, "
                  "as [above](#against-stock-actix-web--jsonwebtoken-same-run-interleaved)); "
                  "the peer's is the harness's server CPU divided by its successful "
                  "requests.", "",
                  "| what | peer | Tessera req/s | peer req/s | ratio | Tessera p99 ms | "
                  "peer p99 ms | Tessera server µs/req | peer server µs/req |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for row in peer_rows(results, peers, extra.get("stock_actix")):
            lines.append("| " + " | ".join(row) + " |")
    if peers:
        lines += targets_section([*results, *postgres], peers, extra)
    lines += profile_section(args.profile)
    lines += ["", explanation(k, cs, memory, extra.get("signing_limit")), ""]
    return "\n".join(lines)


def profile_section(paths):
    """The tables of `bench/profile.py --json` runs, if any were given."""
    if not paths:
        return []
    # bench/profile.py, loaded by its path: plain `import profile` would find the standard
    # library's module of that name whenever this directory is not first on the path.
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "tessera_bench_profile", os.path.join(ROOT, "bench", "profile.py"))
    callgrind_profile = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(callgrind_profile)
    lines = ["", "## Where the CPU goes", "",
             "Measured by `bench/profile.py` (callgrind: instructions, which do not depend on "
             "what else the machine runs), one request at a time over a kept-alive connection "
             "after a warm-up. *whole process* is every instruction the server executed in user "
             "space, split by the crate or C library of the function that executed it; the "
             "kernel's share (system calls, context switches, the socket and file I/O) is not "
             "in it, and is the difference between these counts and the *server µs/req* above "
             "(`user` and `sys` time of the process). An ES256 signature under valgrind runs "
             "millions of instructions in aws-lc (its CPU-feature and random-number paths "
             "differ under emulation), far from its 24 µs on the hardware (`cargo bench -p "
             "tessera-core --bench signing`): read that column without the aws-lc line. The "
             "RS256 verification in the last column draws no randomness and is "
             "representative. The PostgreSQL line "
             "is the CPU time of the database's own processes per request, requests sent one "
             "at a time (so each opaque token is a commit and a disk sync of its own)."]
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        lines += ["", f"{data['backend']}, {data['requests']:,} requests a scenario:", "",
                  callgrind_profile.markdown(data["results"], data["backend"])]
    return lines


def stock_section(stock):
    """Tessera's GET /me against the stock actix-web server, round by round."""
    if not stock:
        return []
    lines = ["", "## Against stock actix-web + jsonwebtoken (same run, interleaved)", "",
             "The peer harness's stock actix-web 4 + jsonwebtoken server (aws-lc-rs, 2 "
             "workers), started by this run with Tessera's JWKS, issuer and audience, checks "
             "a JWT's RS256 signature, `typ` `at+jwt`, issuer, audience and expiry, then "
             "scope `admin` and the `company` claim, and answers a fixed list of users; "
             "Tessera's `GET /me` verifies the signature, type, issuer, audience and expiry "
             "too, then scope `basic`, and answers from the token's claims. "
             "The stock server and Tessera's `GET /me, JWT, verified every time` "
             "were measured with the same admin JWT, oha at "
             f"c={stock['concurrency']}, one after the other in each round, the first "
             "alternating, with "
             f"{stock['warmup_s']} s of warm-up each: both see nearly the same machine, so "
             "their ratio holds steadier than either rate. Server µs/req: the CPU time of "
             "Tessera's resource server process, and of the stock server's, divided by the "
             "requests each answered.", "",
             "| round | first | Tessera req/s | stock req/s | Tessera / stock | Tessera server "
             "µs/req | stock server µs/req | Tessera p99 ms | stock p99 ms |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for i, r in enumerate(stock["rounds"], 1):
        t, st = r["tessera"], r["stock"]
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}×"
        lines.append(f"| {i} | {'Tessera' if r['first'] == 'tessera' else 'stock'} | "
                     f"{t['rps']:,.0f} | {st['rps']:,.0f} | {ratio} | "
                     f"{fmt_us(t.get('target_us'))} | {fmt_us(st.get('target_us'))} | "
                     f"{t['p99_ms']:.2f} | {st['p99_ms']:.2f} |")
    if stock.get("ratio"):
        lines.append(f"| median | | {stock['tessera_rps']:,.0f} | {stock['stock_rps']:,.0f} | "
                     f"**{stock['ratio']:.2f}×** | {fmt_us(stock.get('tessera_us'))} | "
                     f"{fmt_us(stock.get('stock_us'))} | {stock['tessera_p99_ms']:.2f} | "
                     f"{stock['stock_p99_ms']:.2f} |")
    return lines


def signing_header(limit, args):
    """The report's line on the signing limit measured in this run."""
    if limit is None:
        return ["- signing limit: not measured (no issuance row in this run)"] \
            if args.signing_limit else []
    if "error" in limit:
        return [f"- signing limit: not measured, {limit['error']}"]
    rates = limit["sign_per_s"]
    return [f"- signing limit, this run, just before the issuance rows (`{limit['command']}`, "
            f"{limit['openssl']}, all {limit['cores']} cores): "
            + ", ".join(f"{SIGNING[a][0]} {rates[a]:,.0f}" for a in SIGNING if a in rates)
            + " signatures/s"]


def signing_fractions(k, cs, limit):
    """(row, c, req/s, the signing limit, req/s as a fraction of it) for each JWT issuance
    row: a token is one signature, so no issuance runs faster than openssl signs."""
    rates = (limit or {}).get("sign_per_s", {})
    out = []
    for algorithm, (_, key) in SIGNING.items():
        for c in cs:
            r = k.get((key, c))
            if r and rates.get(algorithm):
                out.append((r, algorithm, rates[algorithm], r["rps"] / rates[algorithm]))
    return out


def signing_section(k, cs, limit):
    if limit is not None and "error" in limit:
        return ["", f"**Against the signing limit.** Not measured: {limit['error']}."]
    rows = signing_fractions(k, cs, limit)
    if not rows:
        return []
    lines = ["", "**Against the signing limit.** Each JWT issued is one signature: issuance "
             "as a fraction of the signatures a second `openssl speed` made on all cores "
             "just before the issuance rows (the ceiling of a server that did nothing but "
             "sign, with no load generator beside it). Tessera signs with aws-lc, not "
             "OpenSSL: where aws-lc's RSA is the faster, a fraction above 1 says so, not that "
             "issuance outran signing:", "",
             "| row | c | req/s | signatures/s (openssl, all cores) | of the limit |",
             "|---|---:|---:|---:|---:|"]
    for r, algorithm, rate, fraction in rows:
        lines.append(f"| {r['label']} | {r['c']} | {r['rps']:,.0f} | {SIGNING[algorithm][0]} "
                     f"{rate:,.0f} | {fraction:.2f} of the limit |")
    return lines


def split_passes(results, database_url):
    """The first run's rows, with the revocation phase's, and the rows of the PostgreSQL run
    that --postgres-url adds after a SQLite one."""
    first = "SQLite" if database_url is None else "PostgreSQL"
    again = [r for r in results
             if r.get("backend", first) != first and r["group"] != "revocation"]
    return [r for r in results if not any(r is x for x in again)], again


def backends_section(sqlite, postgres):
    """The PostgreSQL run's rows beside the SQLite run's."""
    k = by_key(sqlite)
    lines = ["", "## SQLite and PostgreSQL", "",
             "The same rows on the same machine, measured in the same way, first on SQLite "
             "and then on PostgreSQL (a throwaway database, servers and seeding of their own; "
             "the alternating pairs are measured on SQLite only, as the feed lives in "
             "memory). *server µs/req* counts Tessera's processes: SQLite runs inside them, "
             "PostgreSQL in processes of its own, whose CPU time a request (every `postgres` "
             "process on the machine, during the row) is in the last column but one.", "",
             "| row | c | SQLite req/s | PostgreSQL req/s | PostgreSQL / SQLite | SQLite server "
             "µs/req | PostgreSQL server µs/req | PostgreSQL's own µs/req | PostgreSQL p99 ms "
             "| PostgreSQL errors |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p in postgres:
        s = k.get((p["key"], p["c"]))
        # A ratio across load generators would measure the generators too.
        ratio = f"{p['rps'] / s['rps']:.2f}×" if s and s["rps"] and \
            s["generator"] == p["generator"] else ""
        cells = [p["label"], str(p["c"]), f"{s['rps']:,.0f}" if s else "not measured",
                 f"{p['rps']:,.0f}", ratio, fmt_us(s.get("server_us")) if s else "",
                 fmt_us(p.get("server_us")), fmt_us(p.get("database_us")),
                 f"{p['p99_ms']:.2f}", str(p["errors"])]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def revocation_section(results, memory, cs):
    """The feed's cost, propagation and memory, as measured in this run."""
    k = by_key(results)
    lines = []
    cost = []
    rounds, warmup = 0, 0
    for off, on in FEED_PAIRS:
        what = "verified every time" if "cached" not in on else "cache"
        for c in cs:
            a, b = k.get((on, c)), k.get((off, c))
            if not (a and b and a["rps"] and b["rps"] and a["generator"] == b["generator"]):
                continue
            cells = [str(c), what, f"{b['rps']:,.0f}", f"{a['rps']:,.0f}",
                     f"{a['rps'] / b['rps']:.2f}×"]
            paired = a.get("paired")
            if paired:
                rounds = max(rounds, len(paired["rounds"]))
                warmup = paired.get("warmup_s", 0)
                cells += [", ".join(f"{y / x:.2f}" for x, y in paired["rounds"]),
                          f"**{paired['ratio']:.2f}×**"]
            else:
                cells += ["", ""]
            cost.append("| " + " | ".join(cells) + " |")
    prop = next((r for r in results if r["key"] == "revocation-propagation"), None)
    mem = memory.get("revocation-list")
    if not (cost or prop or mem):
        return lines
    lines += ["", "## Revocation feed", ""]
    if cost:
        lines += [f"**Cost.** `GET /me` (one token) at the resource servers following the feed "
                  f"with {FEED_ENTRIES:,} entries in force, against the same servers without a "
                  "feed: req/s in the rows above, their ratio, and then the ratios of "
                  f"{rounds} more measurement{'s' if rounds != 1 else ''} of each pair in "
                  "alternation (no feed first, then the feed first, and so on, with "
                  f"{warmup} s of warm-up each), and their "
                  "median. One measurement varies by up to about 20% from the next here, as "
                  "the load generator and the server share the two cores differently from one "
                  "run to the next; the median of the alternating pairs is the cost:", "",
                  "| c | JWT | no feed req/s | feed req/s | feed / no feed | alternating pairs "
                  "| median |", "|---:|---|---:|---:|---:|---|---:|", *cost, ""]
    if prop:
        p = prop["propagation"]
        st = p["stats"]
        load = p["load"]
        names = {"rs-a": "resource server A", "rs-b": "resource server B"}
        follows = {"authz-a": "authorization server A", "authz-b": "authorization server B"}
        lines += [f"**Propagation.** {p['database']}; two authorization servers (A and B, one "
                  "issuer, one database) and two resource servers, A following A's feed and B "
                  f"following B's, with {p['entries_in_force']:,} entries in force. Each "
                  f"resource server is under load ({prop['generator']}, c={p['concurrency']}, "
                  "`GET /me` with a valid JWT, verified-token cache on) while "
                  f"{p['revocations']} JWTs are revoked one after another, alternately at A "
                  "and at B (`POST /oauth/revoke` by the client the token was issued to); "
                  "each token is used at both resource servers just before, so that it is "
                  "in their caches. The time is from the revoke's `200` to the first `401` "
                  f"from each resource server, polling every {p['poll_interval_ms']:.0f} ms "
                  "over a kept-alive connection:", "",
                  "| resource server | revocations | p50 ms | p99 ms | max ms | load req/s | "
                  "load p99 ms | load errors |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for n in ["rs-a", "rs-b"]:
            x, ld = st[n], load[n]
            lines.append(f"| {names[n]} (follows {follows[p['follows'][n]]}) | {x['n']} | "
                         f"{x['p50']:.0f} | {x['p99']:.0f} | {x['max']:.0f} | "
                         f"{ld['rps']:,.0f} | {ld['p99_ms']:.1f} | {ld['errors']} |")
        x = st["all"]
        lines.append(f"| both | {x['n']} | {x['p50']:.0f} | {x['p99']:.0f} | {x['max']:.0f} | "
                     f"{sum(v['rps'] for v in load.values()):,.0f} | | "
                     f"{sum(v['errors'] for v in load.values())} |")
        for path, what in [("same", "revoked at the authorization server it follows"),
                           ("other", "revoked at the other one")]:
            x = st.get(path)
            if x and x["n"]:
                lines.append(f"| either, {what} | {x['n']} | {x['p50']:.0f} | {x['p99']:.0f} | "
                             f"{x['max']:.0f} | | | |")
        lines += ["", f"Not revoked within {PROPAGATION_TIMEOUT} s: {p['timeouts']}. The loop "
                  f"took {p['loop_s']:.1f} s and sent {p['polls']:,} requests of its own to the "
                  "resource servers (the checks before each revocation and the polling), on "
                  "top of the load; the load rate counts the whole time its generator ran, "
                  f"including the {p['warmup_s']} s before the first revocation. Server "
                  f"CPU over the loop: {prop['server_cores']:.2f} cores for the four servers.",
                  ""]
    if mem:
        rows = []
        for n in ["rs-a", "rs-b"]:
            m = mem["servers"].get(n)
            if m:
                delta = m["after"] - m["before"]
                rows.append(f"| resource server {n[-1].upper()} | {fmt_bytes(m['before'])} | "
                            f"{fmt_bytes(m['after'])} | {fmt_bytes(delta)} | "
                            f"{delta / mem['entries']:.0f} |")
        lines += [f"**Memory.** Resident memory (VmRSS) of the two resource servers above, idle, "
                  "with an empty list and then once "
                  f"{mem['entries']:,} revocations (random `jti`s) have reached them through "
                  "the feed:", "",
                  f"| server | no entries | {mem['entries']:,} entries | difference | bytes an "
                  "entry |", "|---|---:|---:|---:|---:|", *rows, ""]
    return lines


def explanation(k, cs, memory=None, limit=None):
    c = max(cs)

    def rate(key):
        r = k.get((key, c))
        return r["rps"] if r else float("nan")

    def cpu(key):
        r = k.get((key, c))
        us = r.get("server_us") if r else None
        return float("nan") if us is None else us

    # One token in each row: the same load generator measured all of these.
    ceiling, jwt1 = rate("ceiling"), rate("jwt1")
    cached, store, intro = rate("jwt1-cached"), rate("opaque-store"), rate("opaque-introspection")
    me_jwt, me_cached, me_store = rate("me-jwt1"), rate("me-jwt1-cached"), rate("me-opaque-store")
    many, many_cached = rate("jwt1000"), rate("jwt1000-cached")
    intro_cached = rate("opaque-introspection-cached")
    per_req = lambda r: 1e6 / r if r == r and r > 0 else float("nan")  # noqa: E731
    return f"""## Reading the numbers

Every API row runs the same handler over the same data: it lists the six users of `acme`
from the database. The rows differ only in how the caller is authorized, so the gaps
between them are the price of each way. Each cost per request is given at c={c} twice: in
server CPU (the `server µs/req` column: the CPU time of the Tessera processes divided by
the requests, which holds steady whatever else runs on the machine), then in wall time
(one second over req/s, which the load generator and anything else on the same cores
share):

- **No authorization** ({ceiling:,.0f} req/s; {cpu("ceiling"):.0f} µs of server CPU a
  request, {per_req(ceiling):.0f} µs of wall time) is the ceiling: the listing itself,
  with its one database query.
- **A JWT verified on every request** ({jwt1:,.0f} req/s) adds one signature
  verification and the claim checks, and nothing else: no database, no network. That is
  {cpu("jwt1") - cpu("ceiling"):.0f} µs of server CPU a request
  ({per_req(jwt1) - per_req(ceiling):.0f} µs of wall time).
- **A JWT with the verified-token cache** ({cached:,.0f} req/s): a token seen before
  costs a SHA-256 digest and a map lookup, so the difference with the ceiling all but
  vanishes ({cached / ceiling:.0%} of it). With {JWT_TOKENS:,} distinct tokens in rotation
  (a load generator that can rotate them, so compare these two with each other only) the
  cache serves {many_cached:,.0f} req/s against {many:,.0f} without it. The cache holds a
  token until it expires and never past the removal of its key, so it changes no answer;
  it helps whenever clients reuse their tokens, which is what access tokens are for.
- **An opaque token in the token store** ({store:,.0f} req/s) means one more
  database round trip per request: the token by its digest, joined with its user for the
  company and roles that a JWT carries in its claims.
- **An opaque token by introspection** ({intro:,.0f} req/s) replaces the token lookup
  with an HTTP call to the authorization server, which authenticates the resource server
  and looks the token up itself, and then still reads the user: the most work per request,
  spread over two processes. The optional answer cache (`--introspection-cache-ttl`, off by
  default; {intro_cached:,.0f} req/s with {INTROSPECTION_CACHE_TTL} s) removes the call for
  tokens seen within its lifetime, at a price: a token revoked at the issuer keeps working
  on that resource server until its answer ages out.

`GET /me` answers from the token alone, so it shows the price of each way with nothing
else in the request (server CPU, then wall time, a request): a JWT verified on every
request ({me_jwt:,.0f} req/s, {cpu("me-jwt1"):.0f} µs, {per_req(me_jwt):.0f} µs), the same
with the cache ({me_cached:,.0f} req/s, {cpu("me-jwt1-cached"):.0f} µs,
{per_req(me_cached):.0f} µs), and an opaque token looked up in the store ({me_store:,.0f}
req/s, {cpu("me-opaque-store"):.0f} µs, {per_req(me_store):.0f} µs): the lookup an
opaque token needs costs {cpu("me-opaque-store") - cpu("me-jwt1"):.0f} µs of server CPU a
request more than a signature check ({per_req(me_store) - per_req(me_jwt):.0f} µs of
wall time), and {cpu("me-opaque-store") - cpu("me-jwt1-cached"):.0f} µs more than a
cached JWT ({per_req(me_store) - per_req(me_cached):.0f} µs of wall time). That is the
seed's argument in one number: a lookup per request is the expensive part, and with a
cache in front of the signature check, JWT authorization costs next to nothing.

Issuance rows measure `POST /oauth/token` and friends on the authorization server. An
RS256 signature is the most expensive step of a JWT (RSA-2048 signing, which the
`signing` criterion benchmark measures on the same machine{signing_note(k, c, limit)});
ES256 and EdDSA sign in a fraction of that. Opaque issuance stores the token's digest durably before answering;
concurrent issuances share one transaction and one disk sync (group commit), so the
disk's sync rate does not cap them. The password grant is dominated by argon2id, by
design: it is what makes a stolen password hash slow to crack; it runs on a few threads of
its own (one per CPU), each reusing one buffer: a login flood competes for the CPU but
never holds a request worker, and does not grow memory. Every issued token is also written to
the audit log, in batches.
""" + feed_explanation(k, cs, memory or {})


def signing_note(k, c, limit):
    """RS256 issuance against this run's RSA-2048 signing limit, for the prose."""
    rate = (limit or {}).get("sign_per_s", {}).get("rsa2048")
    r = k.get(("issue-rs256", c))
    if not rate:
        return ""
    text = f", and `openssl speed` at {rate:,.0f} signatures/s on all cores in this run"
    if r:
        text += (f": RS256 client_credentials issuance ran at {r['rps'] / rate:.2f} of that "
                 f"limit at c={c}, {r['server_us']:,.0f} µs of server CPU a token against "
                 f"{limit['cores'] * 1e6 / rate:,.0f} µs of CPU a signature"
                 if r.get("server_us") else f": RS256 issuance ran at {r['rps'] / rate:.2f} "
                 f"of that limit at c={c}")
    return text


def feed_explanation(k, cs, memory):
    c = max(cs)

    def ratio(on, off):
        """The median of the alternating pairs, else the rows' own ratio."""
        a, b = k.get((on, c)), k.get((off, c))
        if a and a.get("paired"):
            return f"{a['paired']['ratio']:.2f}×"
        if a and b and a["rps"] and b["rps"] and a["generator"] == b["generator"]:
            return f"{a['rps'] / b['rps']:.2f}×"
        return "not measured"

    prop = k.get(("revocation-propagation", PROPAGATION_CONCURRENCY))
    mem = memory.get("revocation-list")
    how = ", the median of alternating measurements" if any(
        (k.get((on, c)) or {}).get("paired") for _, on in FEED_PAIRS) else ""
    text = f"""
**Revocation feed.** A resource server given client credentials (`--client-id`,
`--client-secret`) follows the authorization server's `GET /oauth/revocations` with one
long-poll at a time and checks every JWT, verified-token cache hits included, against the
list in memory: hash lookups of the token's `jti`, `sid`, `sub` and `client_id`, no database
and no network on the request path. With {FEED_ENTRIES:,} entries in force, `GET /me` runs at
{ratio("me-jwt1-feed", "me-jwt1")} the rate of the same server without a feed when every
token is verified, and at {ratio("me-jwt1-cached-feed", "me-jwt1-cached")} with the cache
(c={c}{how}; the aim is at least 0.97×)."""
    if prop:
        p = prop["propagation"]
        st = p["stats"]
        same, other = st.get("same"), st.get("other")
        text += f""" Under load ({prop['rps']:,.0f} req/s of `GET /me` across two resource
servers, c={p['concurrency']} each, on {p['database']}), a revoked JWT was refused by both
within p50 {st['all']['p50']:.0f} ms, p99 {st['all']['p99']:.0f} ms, at most
{st['all']['max']:.0f} ms after the revocation's `200` ({st['all']['n']} measurements;
{p['timeouts']} not in time)."""
        if same and other and same["n"] and other["n"]:
            text += f""" Where the revocation was made at the authorization server the
resource server follows, that server wakes its waiting long-poll at once (p50
{same['p50']:.0f} ms); at the other one it is seen at that server's next read of the feed's
head, every 250 ms (p50 {other['p50']:.0f} ms, p99 {other['p99']:.0f} ms)."""
        text += f""" The measurement adds load of its own: before each revocation the
token is used at both resource servers, and each is then polled every
{p['poll_interval_ms']:.0f} ms until it answers `401` ({p['polls']:,} requests in all), so the
times include a poll's latency under load."""
    if mem:
        per = sum(m["after"] - m["before"] for m in mem["servers"].values()) / \
            len(mem["servers"]) / mem["entries"]
        text += f""" In memory, {mem['entries']:,} entries took {per:.0f} bytes each
of a resource server's resident memory, end to end (what the allocator kept from reading the
answer included)."""
    text += """ The list alone, measured by `cargo bench -p tessera-guard --bench revocation
-- --quick`, is about 13.4 MiB for 100,000 entries, about 140 bytes an entry.
A resource server that has had no answer from its feed for 60 s (`--revocation-max-stale`)
refuses JWTs with `503` until the feed answers again, rather than accept tokens revoked
meanwhile (`--revocation-on-stale open` keeps serving instead). Without client credentials a
resource server follows no feed and says so in its log: a revoked JWT then works there until
it expires."""
    return "\n" + textwrap.fill(" ".join(text.split()), width=92, break_on_hyphens=False,
                                break_long_words=False) + "\n"


# What a run measures besides its rows, saved with --json beside them.
EXTRA = ("signing_limit", "stock_actix")
def peers_path(path):
    """A path into the peer harness as PEERS/..., wherever this machine keeps it."""
    parts = os.path.normpath(path).split(os.sep)
    if "rust-ceiling" in parts:
        return "/".join(["PEERS", *parts[parts.index("rust-ceiling"):]])
    return "STOCK_ACTIX_BINARY"


DATABASE_FLAGS = ("--database-url", "--postgres-url", "--propagation-database-url")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", help="a postgres:// URL on 127.0.0.1 (a throwaway "
                    "database is created there and dropped); default SQLite")
    ap.add_argument("--postgres-url", help="a postgres:// URL on 127.0.0.1: after the "
                    "SQLite run, the same rows again on a throwaway database there, reported "
                    "side by side with SQLite's (not with --database-url)")
    ap.add_argument("--propagation-database-url", help="a postgres:// URL on 127.0.0.1 for "
                    "the revocation propagation and memory phase alone (default: "
                    "--database-url, else SQLite)")
    ap.add_argument("--duration", type=int, default=4, help="measured seconds per run")
    ap.add_argument("--warmup", type=int, default=1, help="warm-up seconds per run")
    ap.add_argument("--concurrency", default="16,64", help="comma-separated connections")
    ap.add_argument("--out", help="the Markdown report (default docs/benchmarks.md; none "
                    "with --smoke); the chart is written beside it as .svg")
    ap.add_argument("--json", help="also write the raw results here")
    ap.add_argument("--binary", help="a tessera binary to run instead of building one")
    ap.add_argument("--no-build", action="store_true",
                    help="run the release binary already built (target/release/tessera)")
    ap.add_argument("--only", help="only rows whose key matches this regular expression "
                    "(the revocation phase: revocation-propagation, revocation-memory; the "
                    "stock server's pairs: me-jwt1 or stock-actix)")
    ap.add_argument("--smoke", action="store_true",
                    help="every row for 1 s at c=16 without warm-up, 10 revocations and "
                    "10,000 entries in the revocation phase; fails on any error")
    ap.add_argument("--signing-limit", action=argparse.BooleanOptionalAction,
                    help="measure RSA-2048, ECDSA P-256 and Ed25519 signatures a second on all "
                    "cores (openssl speed -multi) before the issuance rows, and report issuance "
                    "against them (default: on, off with --smoke)")
    ap.add_argument("--stock-actix", metavar="BINARY", help="the peer harness's stock "
                    "actix-web + jsonwebtoken server (rust-ceiling/target/release/actix): "
                    "started with Tessera's keys and measured against GET /me with the same "
                    "JWT, alternately, at c=64 with oha")
    ap.add_argument("--keep", action="store_true", help="keep the working directory (logs)")
    ap.add_argument("--load-generator", choices=["wrk", "oha"], default="wrk",
                    help="oha (cargo install --locked oha) for every row of one request, as "
                    "the peer harness uses; rows rotating many tokens always use wrk")
    ap.add_argument("--from-json", metavar="FILE",
                    help="measure nothing: write the report from the results a run saved "
                    "with --json (give it the flags that run had)")
    ap.add_argument("--profile", metavar="JSON", action="append",
                    help="add the breakdown of a `bench/profile.py --json` run to the report "
                         "(once per backend)")
    ap.add_argument("--peers", metavar="DIR", help="a results directory of the peer harness "
                    "(results.json) measured on this machine: adds the comparison table")
    args = ap.parse_args()
    # Stopped from outside, still stop every server this run started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.smoke:
        args.duration, args.warmup, args.concurrency = 1, 0, "16"
    if args.signing_limit is None:
        args.signing_limit = not args.smoke
    try:
        args.concurrency = [int(c) for c in args.concurrency.split(",")]
    except ValueError:
        ap.error("--concurrency takes numbers separated by commas, e.g. 16,64")
    if args.duration < 1 or args.warmup < 0 or any(c < 1 or c > 1024 for c in args.concurrency):
        ap.error("--duration must be at least 1, --warmup at least 0, concurrency 1 to 1024")
    if args.postgres_url and args.database_url:
        ap.error("--postgres-url adds a PostgreSQL run to the SQLite one; with --database-url "
                 "the whole run is on PostgreSQL already")
    out = args.out or (None if args.smoke else os.path.join(ROOT, "docs", "benchmarks.md"))
    # The command as a reader would rerun it: where this run put its raw results or found
    # its binary is of no use to them.
    shown, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
            continue
        if a in ("--json", "--binary", "--from-json"):
            skip = True
            continue
        if a.split("=", 1)[0] in ("--json", "--binary", "--from-json", "--no-build"):
            continue
        if shown and shown[-1] == "--peers":
            a = "PEER_RESULTS_DIR"
        elif a.startswith("--peers="):
            a = "--peers=PEER_RESULTS_DIR"
        elif shown and shown[-1] == "--stock-actix":
            a = peers_path(a)
        elif a.startswith("--stock-actix="):
            a = "--stock-actix=" + peers_path(a.split("=", 1)[1])
        elif shown and shown[-1] in DATABASE_FLAGS:
            a = without_password(a)
        elif a.split("=", 1)[0] in DATABASE_FLAGS and "=" in a:
            flag, value = a.split("=", 1)
            a = flag + "=" + without_password(value)
        shown.append(a)
    command = " ".join(["python3 bench/bench.py", *shown])
    peers = None
    if args.peers:
        try:
            with open(os.path.join(args.peers, "results.json")) as f:
                peers = {row["name"]: row for row in json.load(f)}
        except (OSError, ValueError, KeyError, TypeError) as e:
            ap.error(f"--peers: cannot read results.json in {args.peers}: {e}")
    if args.from_json:
        try:
            with open(args.from_json) as f:
                saved = json.load(f)
            info, results, memory = saved["machine"], saved["results"], saved["memory"]
            extra = {k: saved[k] for k in EXTRA if k in saved}
            # Saved before results named their backend: the run's own.
            for r in results:
                r.setdefault("backend", "SQLite" if args.database_url is None else "PostgreSQL")
            elapsed = saved.get("elapsed_s", 0.0)
        except (OSError, ValueError, KeyError) as e:
            ap.error(f"--from-json: cannot read {args.from_json}: {e}")
    else:
        try:
            info, results, memory, extra, elapsed = run(args)
        except BenchError as e:
            print(f"benchmark failed: {e}", file=sys.stderr)
            return 1
    failed = [r for r in results if r["errors"] or r["requests"] == 0]
    failed += [r for pair in (extra.get("stock_actix") or {}).get("rounds", [])
               for r in (pair["tessera"], pair["stock"]) if r["errors"] or r["requests"] == 0]
    for path in (args.json, out):
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "results": results, "memory": memory, **extra,
                       "elapsed_s": elapsed}, f, indent=1)
    first_run, _ = split_passes(results, args.database_url)
    if out:
        chart = os.path.splitext(out)[0] + ".svg"
        with open(chart, "w") as f:
            f.write(svg_chart(first_run, args.concurrency))
        with open(out, "w") as f:
            f.write(markdown(info, results, memory, extra, args, elapsed, command,
                             os.path.basename(chart), peers))
        print(f"wrote {os.path.relpath(out)} and {os.path.relpath(chart)}")
    print(f"{len(results)} runs in {elapsed:.0f} s")
    for c, what, v in ratios(first_run, args.concurrency):
        print(f"  c={c:<3} {what:<62} {v:6.2f}")
    for r, algorithm, rate, fraction in signing_fractions(by_key(first_run), args.concurrency,
                                                           extra.get("signing_limit")):
        print(f"  c={r['c']:<3} {r['label'] + ' / ' + SIGNING[algorithm][0] + ' signing limit':<62}"
              f" {fraction:6.2f}")
    for line in peer_rows(first_run, peers or {}, extra.get("stock_actix")):
        print("  " + " | ".join(line))
    for what, ours, theirs, ratio, least, met in targets(results, peers, extra) if peers else []:
        print(f"  target: {what}: {ours} against {theirs}"
              + ("" if ratio is None else f", {ratio:.2f}× (at least {least:g}×: "
                 f"{'met' if met else 'NOT met'})"))
    if failed:
        for r in failed:
            print(f"errors in {r['label']} c={r['c']}: {r['error_kinds'] or 'no requests'}",
                  file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
