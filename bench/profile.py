#!/usr/bin/env python3
"""Where a request's CPU goes: instructions per request, by crate, under callgrind.

    python3 bench/profile.py --binary target/release/tessera
    python3 bench/profile.py --binary target/release/tessera \\
        --database-url postgres://postgres@127.0.0.1:5432/postgres

For each scenario it starts the server under test in `valgrind --tool=callgrind` with
collection off, warms it up, switches collection on for a fixed number of requests (sent
one after another over a kept-alive connection, so nothing else runs meanwhile), and reads
the profile: the instructions the whole process executed per request, split by the crate
(or C library) of the function that executed them. Instruction counts do not depend on
what else the machine is doing, so two runs of the same binary agree to a fraction of a
percent, where timings on a shared two-core machine vary by a fifth.

With PostgreSQL it also reads the CPU time the database's own processes used over the
measured requests (from /proc): callgrind sees only Tessera's side of a round trip.

Scenarios: client_credentials with an ES256 JWT, with an opaque token (stored), the
introspection endpoint (an opaque token), `GET /me` with an opaque token looked up in the
store, and `GET /me` with an RS256 JWT verified on every request. Only loopback is ever
contacted; every process started is stopped by its PID. Needs valgrind (callgrind_control,
callgrind_annotate) and the benchmark's seeding (bench/bench.py, imported).
"""

import argparse
import collections
import glob
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

# Function-name prefixes and the group they count under; the first match wins. C
# functions are told apart by their names, Rust ones by their crate path.
GROUPS = [
    ("sqlite3", "SQLite (C library)"),
    ("sqlx_sqlite", "sqlx: SQLite driver"),
    ("sqlx_postgres", "sqlx: PostgreSQL driver"),
    ("sqlx_core", "sqlx: pool and statements"),
    ("aws_lc", "aws-lc: signatures, digests"),
    ("jsonwebtoken", "jsonwebtoken"),
    ("actix", "actix-web and actix-http"),
    ("tokio", "tokio: runtime, channels, I/O"),
    ("mio", "tokio: runtime, channels, I/O"),
    ("serde_json", "serde_json"),
    ("serde", "serde_json"),
    ("tessera_store", "Tessera: store"),
    ("tessera_guard", "Tessera: guard"),
    ("tessera_web", "Tessera: web (metrics, limits, headers)"),
    ("tessera_", "Tessera: servers"),
    ("chrono", "chrono, uuid, time"),
    ("uuid", "chrono, uuid, time"),
    ("malloc", "allocator"),
    ("free", "allocator"),
    ("realloc", "allocator"),
    ("calloc", "allocator"),
    ("_int_", "allocator"),
    ("cfree", "allocator"),
    ("core::", "Rust core/alloc (copies, formatting, hashing)"),
    ("alloc::", "Rust core/alloc (copies, formatting, hashing)"),
    ("std::", "Rust std (threads, sync)"),
    ("hashbrown", "Rust core/alloc (copies, formatting, hashing)"),
    ("mem", "libc: memory copies"),
    ("__mem", "libc: memory copies"),
    ("pthread", "libc: threads, futex, syscalls"),
    ("__lll", "libc: threads, futex, syscalls"),
    ("syscall", "libc: threads, futex, syscalls"),
]
OTHER = "other"


def group_of(function):
    name = function.lstrip("<&*( ")
    for prefix, group in GROUPS:
        if name.startswith(prefix):
            return group
    return OTHER


def annotate(path):
    """Self cost (instructions) per function, from callgrind_annotate."""
    out = subprocess.run(["callgrind_annotate", "--threshold=100", "--inclusive=no", "--auto=no", path],
                         capture_output=True, text=True, check=True).stdout
    costs = {}
    total = None
    for line in out.splitlines():
        m = re.match(r"^\s*([\d,]+)\s.*PROGRAM TOTALS", line)
        if m:
            total = int(m.group(1).replace(",", ""))
            continue
        # "  1,234 (12.34%)  file:function [object]", the file "???" when unknown.
        m = re.match(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(?:\?\?\?|[^\s:]+):(?!:)(.+?)"
                     r"(?:\s+\[[^\]]*\])?$", line)
        if m:
            name = m.group(2).strip()
            costs[name] = costs.get(name, 0) + int(m.group(1).replace(",", ""))
    return total, costs


def postgres_cpu():
    """CPU seconds used so far by every PostgreSQL server process on this machine."""
    total = 0.0
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                text = f.read()
        except OSError:
            continue
        name = text[text.find("(") + 1:text.rfind(")")]
        if name.startswith("postgres"):
            fields = text.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / bench.CLK
    return total


def send(base, request, count):
    """`count` requests over one kept-alive connection; each must answer 200."""
    parsed = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
    method, path, body, headers = request
    try:
        for _ in range(count):
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            if response.status != 200:
                raise bench.BenchError(f"{method} {path} answered {response.status}: "
                                       f"{data[:200]!r}")
    finally:
        conn.close()


def callgrind(binary, args, env, workdir, name):
    out = os.path.join(workdir, f"{name}.callgrind")
    log = open(os.path.join(workdir, f"{name}.log"), "w")
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
         binary, *args], stdout=log, stderr=log, env=env, start_new_session=True)
    return proc, out


def control(pid, *flags):
    subprocess.run(["callgrind_control", *flags, str(pid)], capture_output=True, check=True)


def profile_one(name, base, request, proc, out, count, warmup, postgres):
    send(base, request, warmup)
    control(proc.pid, "-i", "on")
    pg_before = postgres_cpu() if postgres else None
    started = time.monotonic()
    send(base, request, count)
    elapsed = time.monotonic() - started
    pg_used = postgres_cpu() - pg_before if postgres else None
    control(proc.pid, "-i", "off")
    control(proc.pid, "-d")
    proc.terminate()
    proc.wait(timeout=60)
    dumps = sorted(glob.glob(out + "*"))
    by_group = collections.Counter()
    total = 0
    for dump in dumps:
        t, costs = annotate(dump)
        total += t or 0
        for function, value in costs.items():
            by_group[group_of(function)] += value
    return {
        "name": name,
        "requests": count,
        "instructions_per_request": total / count,
        "groups": {g: v / count for g, v in by_group.most_common()},
        "postgres_cpu_us_per_request": None if pg_used is None else pg_used * 1e6 / count,
        "seconds_under_callgrind": elapsed,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", required=True, help="a release build of tessera")
    ap.add_argument("--database-url", help="a postgres:// URL on 127.0.0.1 (SQLite otherwise)")
    ap.add_argument("--requests", type=int, default=1000, help="measured requests per scenario")
    ap.add_argument("--warmup", type=int, default=200, help="requests before measuring")
    ap.add_argument("--only", help="scenarios whose name matches this regular expression")
    ap.add_argument("--json", help="write the results here too")
    ap.add_argument("--keep", action="store_true", help="keep the working directory")
    args = ap.parse_args()
    for tool in ("valgrind", "callgrind_control", "callgrind_annotate"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is not installed (Debian package valgrind)")
    workdir = tempfile.mkdtemp(prefix="tessera-profile-")
    database_url, drop = bench.throwaway_database(args.database_url, workdir, "profile")
    servers = bench.Servers(os.path.abspath(args.binary), database_url, workdir)
    results = []
    try:
        secrets = bench.seed(servers)
        port = bench.free_port()
        authz = f"http://127.0.0.1:{port}"
        common = ["--rate-limit", "off", "--access-token-ttl", "3600", "--issuer", authz]
        authz_args = ["authz", "--authz-addr", f"127.0.0.1:{port}", *common]
        servers.start("authz", *authz_args, "--key-algorithm", "RS256")
        bench.wait_ready(authz + "/healthz", servers, "the authorization server")
        jwt_auth = bench.basic("bench-jwt", secrets["bench-jwt"])
        opaque_auth = bench.basic("bench-opaque", secrets["bench-opaque"])
        resource_auth = bench.basic("bench-resource", secrets["bench-resource"])
        password = {"grant_type": "password", "username": "alice", "password": bench.PASSWORD,
                    "scope": "basic admin"}
        jwt = bench.token_request(authz, jwt_auth, password)["access_token"]
        opaque = bench.token_request(authz, opaque_auth, password)["access_token"]
        cc = urllib.parse.urlencode({"grant_type": "client_credentials", "scope": "basic admin"})
        form = bench.FORM
        scenarios = [
            ("issue: client_credentials, JWT ES256", "authz-es256",
             ("POST", "/oauth/token", cc, {"Authorization": jwt_auth, "Content-Type": form})),
            ("issue: client_credentials, opaque (stored)", "authz",
             ("POST", "/oauth/token", cc, {"Authorization": opaque_auth, "Content-Type": form})),
            ("introspection endpoint (opaque, active)", "authz",
             ("POST", "/oauth/introspect", urllib.parse.urlencode({"token": opaque}),
              {"Authorization": resource_auth, "Content-Type": form})),
            ("GET /me, opaque token, token store", "resource",
             ("GET", "/me", None, {"Authorization": "Bearer " + opaque})),
            ("GET /me, JWT RS256, verified every time", "resource",
             ("GET", "/me", None, {"Authorization": "Bearer " + jwt})),
        ]
        env = dict(servers.env)
        for name, server, request in scenarios:
            if args.only and not re.search(args.only, name):
                continue
            own = bench.free_port()
            base = f"http://127.0.0.1:{own}"
            if server.startswith("authz"):
                algorithm = "ES256" if server == "authz-es256" else "RS256"
                # A second authorization server on the same database and keys, under
                # callgrind (the running one keeps serving the resource servers' keys).
                server_args = ["authz", "--authz-addr", f"127.0.0.1:{own}", "--rate-limit",
                               "off", "--access-token-ttl", "3600", "--issuer", authz,
                               "--key-algorithm", algorithm]
            else:
                server_args = ["resource", "--resource-addr", f"127.0.0.1:{own}",
                               "--token-cache-size", "0", *common]
            proc, out = callgrind(os.path.abspath(args.binary), server_args, env, workdir,
                                  re.sub(r"\W+", "-", name))
            try:
                deadline = time.monotonic() + 180
                while True:
                    if proc.poll() is not None:
                        raise bench.BenchError(f"{name}: the server exited; see {workdir}")
                    try:
                        status, _, _ = bench.http("GET", base + "/healthz", timeout=5)
                        if status == 200:
                            break
                    except OSError:
                        pass
                    if time.monotonic() > deadline:
                        raise bench.BenchError(f"{name}: the server did not start")
                    time.sleep(0.5)
                result = profile_one(name, base, request, proc, out, args.requests,
                                     args.warmup, args.database_url is not None)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            results.append(result)
            print(f"{name}: {result['instructions_per_request']:,.0f} instructions a request",
                  flush=True)
    finally:
        servers.stop()
        drop()
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    backend = "PostgreSQL" if args.database_url else "SQLite"
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"backend": backend, "requests": args.requests, "results": results}, f,
                      indent=2)
    print(markdown(results, backend))


def markdown(results, backend):
    groups = []
    for r in results:
        for g, v in r["groups"].items():
            if g not in groups and v >= 1000:
                groups.append(g)
    head = "| " + backend + ", thousands of instructions a request | " + \
        " | ".join(r["name"] for r in results) + " |"
    lines = [head, "|---" + "|---:" * len(results) + "|"]
    lines.append("| **whole process** | " + " | ".join(
        f"**{r['instructions_per_request'] / 1000:,.0f}**" for r in results) + " |")
    for g in groups:
        lines.append(f"| {g} | " + " | ".join(
            f"{r['groups'].get(g, 0) / 1000:,.0f}" for r in results) + " |")
    if any(r["postgres_cpu_us_per_request"] is not None for r in results):
        lines.append("| PostgreSQL server, CPU µs a request | " + " | ".join(
            f"{r['postgres_cpu_us_per_request']:,.0f}" for r in results) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    try:
        main()
    except bench.BenchError as e:
        raise SystemExit(f"profile: {e}")
