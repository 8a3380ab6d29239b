"""HTTP load for `benchmarks/bench.py`'s `http-p99` figure: the server under test, a light load generator in its own
process, and the in-process decider at the same concurrency, so that the figures can be read both ways.

- The load: ``wrk`` (C, one event-loop thread, OpenSSL) with 16 keep-alive TLS connections, each a closed loop (the
  next request leaves when the answer is in), every request carrying its own fresh presentation (a Lua script
  walks a file of pre-built requests; no presentation is sent twice, so no answer is a replay denial). The client's
  CPU is a small fraction of the server's and is not in the server's process. Without ``wrk`` on the PATH the old
  load (16 `requests` threads in the benchmark's own process) is used and the figure says so.
- The in-process reference at the same concurrency: as many processes as the server has workers, each with its own
  decider (the per-process memory replay store) and 16 / workers threads, all deciding at once in a closed loop; the
  latency of each ``decide`` call is recorded. The ratio of the HTTP p99 to this p99 is what the server adds (TLS,
  HTTP parsing, WSGI and Flask, the Redis replay round trip, the answer's JSON) once queueing for the two cores is
  the same on both sides.

The queueing floor (docs/performance.md): with N closed-loop clients on c cores and S seconds of CPU per request,
a saturated server completes c / S requests a second, so by Little's law each request takes N * S / c: 8 S for 16
clients on 2 cores, even with no overhead at all (S = one decision). The p99 is above that mean.
"""
from __future__ import annotations

import multiprocessing
import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time

CLIENTS = 16
# wrk stops some time after the Lua script says ``count`` requests were answered, and the requests it sends
# meanwhile must still be fresh presentations (one used twice is a replay, denied): give this many beyond ``count``
# (16 per connection: at ~900 requests/s granian answered about 100 more before wrk stopped)
OVERSHOOT = 16 * CLIENTS

WRK_SCRIPT = r"""
local reqs, i, n, limit, statuses, think = {}, 0, 0, 0, {}, 0
local threads = {}
setup = function(thread) table.insert(threads, thread) end
init = function(args)
  local f = assert(io.open(args[1], "rb"))
  local data = f:read("*a")
  f:close()
  for r in string.gmatch(data, "(.-\r\n\r\n)") do reqs[#reqs + 1] = r end
  limit = tonumber(args[2])
  think = tonumber(args[3]) or 0
end
delay = function()
  -- a client's pause before its next request (ms): exponential with mean `think`; 0 for the closed loop
  if think > 0 then return math.floor(-math.log(1 - math.random()) * think) end
  return 0
end
request = function()
  i = i + 1
  if i > #reqs then i = 1 end
  return reqs[i]
end
response = function(status, headers, body)
  n = n + 1
  statuses[status] = (statuses[status] or 0) + 1
  if n == limit then
    local parts = {}
    for k, v in pairs(statuses) do parts[#parts + 1] = k .. "=" .. v end
    io.write("LIMIT " .. table.concat(parts, ",") .. "\n")
    io.flush()
  end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d %d\n", summary.requests, e.status,
           e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99), latency.max,
           summary.duration))
end
"""


def server_files(w, tmp: str) -> None:
    """A test CA, the server's certificate for localhost and 127.0.0.1 (``key.pem``, ``cert.pem``, ``ca.pem``) and
    the world's trust policy (``policy.json``), written into ``tmp`` for a benchmarked ``cead verifier serve``."""
    import json

    import trustme
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.private_key_pem.write_to_path(f"{tmp}/key.pem")
    cert.cert_chain_pems[0].write_to_path(f"{tmp}/cert.pem")
    ca.cert_pem.write_to_path(f"{tmp}/ca.pem")
    with open(f"{tmp}/policy.json", "w") as f:
        json.dump(w.policy_data(caches={"status_lists": {"size": 64, "ttl": 3600}}), f)


def start_server(tmp: str, server: str | None = None):
    """``cead verifier serve`` on the files ``server_files`` wrote (TLS, the Redis replay store; ``server``:
    granian or gunicorn, else the default), once it answers ``/healthz``: ``(process, base URL)``. RuntimeError if
    it does not start within a minute (the process is stopped)."""
    import requests

    from cead.processes import free_port, python_argv
    port = free_port()
    proc = subprocess.Popen(python_argv("verifier", "serve", *(["--server", server] if server else []), "--policy",
                                        f"{tmp}/policy.json", "--port", str(port), "--tls-cert", f"{tmp}/cert.pem",
                                        "--tls-key", f"{tmp}/key.pem", "--replay-store", "redis://127.0.0.1:6379/13"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"https://localhost:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            requests.get(base + "/healthz", verify=f"{tmp}/ca.pem", timeout=2)
            return proc, base
        except requests.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.terminate()
                proc.wait(30)
                raise RuntimeError(f"the verifier ({server or 'the default server'}) did not start") from None
            time.sleep(0.2)


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def raw_request(path: str, host: str, headers: dict[str, str]) -> str:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}"] + [f"{k}: {v}" for k, v in headers.items()]
    return "\r\n".join(lines) + "\r\n\r\n"


def wrk(base: str, requests: list[str], count: int, clients: int = CLIENTS, timeout: int = 600,
        think: float = 0.0) -> dict:
    """Send about ``count`` requests (raw HTTP/1.1 from ``requests``, each used once: give a few dozen more than
    ``count``: ``OVERSHOOT``) over ``clients`` keep-alive connections with one wrk thread, then stop wrk (SIGINT:
    it reports on the requests made so far, some beyond ``count``); latency figures in seconds. ``statuses``: the
    status counts of the first ``count`` answers. ``think``: each client pauses a random time (exponential, this
    mean in seconds) after an answer before its next request, so the server is offered less than it can do (0: a
    closed loop, the server saturated)."""
    with tempfile.TemporaryDirectory() as tmp:
        with open(f"{tmp}/load.lua", "w") as f:
            f.write(WRK_SCRIPT)
        with open(f"{tmp}/requests.txt", "w") as f:
            f.write("".join(requests))
        proc = subprocess.Popen(["wrk", "-t1", f"-c{clients}", f"-d{timeout}s", "--timeout", "30s", "-s",
                                 f"{tmp}/load.lua", base + "/authz", "--", f"{tmp}/requests.txt", str(count),
                                 str(think * 1000)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        statuses = ""
        for line in proc.stdout:          # wrk's main thread sleeps -d; the Lua script says when count is reached
            if line.startswith("LIMIT "):
                statuses = line.split(None, 1)[1].strip()
                proc.send_signal(signal.SIGINT)
                break
        rest, err = proc.communicate(timeout=120)
    found = re.search(r"^RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)$", rest, re.M)
    if not found:
        raise RuntimeError(f"wrk gave no result: {rest[-500:]} {err[-500:]}")
    n, bad, errors, p50, p99, worst, duration = map(int, found.groups())
    return {"requests": n, "non_2xx": bad, "socket_errors": errors, "p50": p50 / 1e6, "p99": p99 / 1e6,
            "max": worst / 1e6, "seconds": duration / 1e6, "rate": n / (duration / 1e6), "statuses": statuses}


def _decide_worker(w, make_decider, make_presenter, threads: int, per_thread: int, barrier, results) -> None:
    """One process: its own decider, ``threads`` closed-loop threads deciding fresh presentations."""
    decider = make_decider(w)
    present = make_presenter(w)
    work = [[(r, present(r)) for r in (w.request() for _ in range(per_thread))] for _ in range(threads)]
    for request, vp in [(r, present(r)) for r in (w.request() for _ in range(20))]:
        assert decider.decide(vp, request).allowed    # warm: status lists, contexts, schemas
    latencies: list[float] = []
    lock = threading.Lock()
    local_barrier = threading.Barrier(threads)

    def run(items) -> None:
        local_barrier.wait()
        mine = []
        for request, vp in items:
            t = time.perf_counter()
            decision = decider.decide(vp, request)
            mine.append(time.perf_counter() - t)
            assert decision.allowed
        with lock:
            latencies.extend(mine)

    barrier.wait()
    started = time.perf_counter()
    pool = [threading.Thread(target=run, args=(items,)) for items in work]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    results.put((latencies, time.perf_counter() - started))


def in_process_concurrent(w, make_decider, make_presenter, processes: int, per_client: int,
                          clients: int = CLIENTS) -> dict:
    """The in-process decision under the server's concurrency: ``processes`` forked processes (as the server's
    workers) x ``clients / processes`` threads, closed loop; latency of each decide() in seconds."""
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(processes), context.Queue()
    threads = max(clients // processes, 1)
    procs = [context.Process(target=_decide_worker, args=(w, make_decider, make_presenter, threads, per_client,
                                                                   barrier, results))
             for _ in range(processes)]
    for p in procs:
        p.start()
    latencies, longest = [], 0.0
    for _ in procs:
        got, seconds = results.get(timeout=600)
        latencies += got
        longest = max(longest, seconds)
    for p in procs:
        p.join(60)
    latencies.sort()
    return {"requests": len(latencies), "p50": statistics.median(latencies),
            "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], "rate": len(latencies) / longest,
            "layout": f"{processes} processes x {threads} threads"}


__all__ = ["have_wrk", "raw_request", "wrk", "in_process_concurrent", "CLIENTS"]
