"""gunicorn and granian behind `cead verifier serve`, measured alternately under the same load as bench.py's
`http-p99` (wrk, 16 keep-alive TLS clients, a fresh presentation per request, Redis replay store).

    .venv/bin/python benchmarks/http_servers.py [--rounds 4] [--http 150]

Each round starts one server, then the other (the order alternates between rounds), each for: a warm-up, a closed
loop (p50, p99, requests/s, and the server's CPU per request: user + system time of the server's processes, read
from /proc, over the closed loop's requests), then the same 16 clients with think time at a fixed offered load
(each client pausing a random time with mean 2 x 16 / the first server's closed-loop rate in that round, so both
servers are offered the same requests a second: about half of what gunicorn manages). Medians over the rounds are
printed last. The CPU per request is the figure least disturbed by other work on a shared machine.
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests"), os.path.join(ROOT, "benchmarks")]

from bench import fast_presenter  # noqa: E402
from transfer_world import world  # noqa: E402

SERVERS = ("gunicorn", "granian")


def _tree_cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its child processes (as now alive)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except FileNotFoundError:
            continue
    return total


def one(w, server: str, per_client: int, think: float | None, tmp: str) -> dict:
    from httpload import CLIENTS, OVERSHOOT, raw_request, start_server, wrk
    from test_verifier_service import authz_headers

    present = fast_presenter(w)
    proc, base = start_server(tmp, server)
    port = base.rsplit(":", 1)[1]
    try:
        def batch(count):
            return [raw_request("/authz", f"localhost:{port}", authz_headers(w, r, vp=present(r)))
                    for r in (w.request() for _ in range(count))]
        total, extra = CLIENTS * per_client, OVERSHOOT
        warm = wrk(base, batch(8 * CLIENTS + extra), 8 * CLIENTS)
        assert warm["statuses"] == "200=128", warm
        work = batch(total + extra)
        before = _tree_cpu(proc.pid)
        closed = wrk(base, work, total)
        cpu = (_tree_cpu(proc.pid) - before) / closed["requests"]
        assert closed["non_2xx"] == 0 and closed["socket_errors"] == 0, closed
        think = think if think is not None else 2 * CLIENTS / closed["rate"]
        half = wrk(base, batch(total + extra), total, think=think)
        assert half["non_2xx"] == 0 and half["socket_errors"] == 0, half
        return {"p50": closed["p50"], "p99": closed["p99"], "rate": closed["rate"], "cpu": cpu,
                "half_p50": half["p50"], "half_p99": half["p99"], "half_rate": half["rate"], "think": think}
    finally:
        proc.terminate()
        proc.wait(60)


def main() -> int:
    from httpload import have_wrk, server_files
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--http", type=int, default=150, help="requests per client in each closed loop")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)   # the world's status-list server
    if not have_wrk():
        print("wrk is not on the PATH")
        return 1
    runs: dict[str, list[dict]] = {s: [] for s in SERVERS}
    with world() as w, tempfile.TemporaryDirectory() as tmp:
        server_files(w, tmp)
        for i in range(args.rounds):
            order = SERVERS if i % 2 == 0 else SERVERS[::-1]
            think = None
            for server in order:
                got = one(w, server, args.http, think, tmp)
                think = got["think"]
                runs[server].append(got)
                print(f"round {i + 1} {server:<9} closed: p99 {got['p99'] * 1e3:6.1f} ms, p50 "
                      f"{got['p50'] * 1e3:5.1f} ms, {got['rate']:4.0f} req/s, CPU {got['cpu'] * 1e3:.2f} ms/request"
                      f" | think {got['think'] * 1e3:3.0f} ms: {got['half_rate']:3.0f} req/s, p99 "
                      f"{got['half_p99'] * 1e3:5.1f} ms, p50 {got['half_p50'] * 1e3:4.1f} ms "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
    print("medians over", args.rounds, "rounds:")
    for server in SERVERS:
        r = runs[server]

        def med(key):
            return statistics.median(x[key] for x in r)
        print(f"  {server:<9} closed: p99 {med('p99') * 1e3:6.1f} ms, p50 {med('p50') * 1e3:5.1f} ms, "
              f"{med('rate'):4.0f} req/s, CPU {med('cpu') * 1e3:.2f} ms/request | fixed offered load: "
              f"p99 {med('half_p99') * 1e3:5.1f} ms, p50 {med('half_p50') * 1e3:4.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
