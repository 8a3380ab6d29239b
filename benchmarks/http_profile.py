"""Where a request's time goes in `cead verifier serve` under the http-p99 load: a sampling profiler in each server
worker (every thread's stack, sampled every millisecond through sys._current_frames; no py-spy here), the load from
wrk as in `bench.py --only http`.

    .venv/bin/python benchmarks/http_profile.py [--requests 1500] [--top 40] [--workers 2] [--threads 8]
                                                [--server granian|gunicorn]

Prints the share of samples (of the threads that were running Python, idle waits left out) per function, inclusive
and exclusive. A sampler needs the GIL, so time in C code that holds it is charged to the Python line that called it.
"""
from __future__ import annotations

import argparse
import collections
import json
import multiprocessing
import os
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests"), os.path.join(ROOT, "benchmarks")]

IDLE = ("select", "poll", "wait", "_wait_for_tstate_lock", "accept", "sleep", "_worker", "run_for_one",
        "wait_for_and_dispatch_connections", "_sample")


def _sampler(out: str, interval: float = 0.001) -> None:
    """Sample every thread's stack (but this one's) until the process ends; write counts every 2 s."""
    me = threading.get_ident()
    inclusive: collections.Counter = collections.Counter()
    exclusive: collections.Counter = collections.Counter()
    total = [0]

    def name(code) -> str:
        return f"{os.path.relpath(code.co_filename, ROOT) if code.co_filename.startswith(ROOT) else os.path.basename(code.co_filename)}:{code.co_name}"

    def run() -> None:
        last = time.monotonic()
        while True:
            time.sleep(interval)
            for ident, frame in sys._current_frames().items():
                if ident == me or frame.f_code.co_name in IDLE:
                    continue
                total[0] += 1
                exclusive[name(frame.f_code)] += 1
                seen = set()
                while frame is not None:
                    label = name(frame.f_code)
                    if label not in seen:
                        inclusive[label] += 1
                        seen.add(label)
                    frame = frame.f_back
            if time.monotonic() - last > 2:
                last = time.monotonic()
                with open(out, "w") as f:
                    json.dump({"total": total[0], "inclusive": inclusive, "exclusive": exclusive}, f)

    thread = threading.Thread(target=run, daemon=True, name="_sample")
    me = None
    thread.start()
    me = thread.ident


def _tree(root: int) -> list[int]:
    """``root`` and its descendants (from /proc)."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    children[int(f.read().rsplit(")", 1)[1].split()[1])].append(int(entry))
            except OSError:
                pass
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def _cpu(pids) -> float:
    """CPU seconds (user + system) used so far by ``pids``."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / os.sysconf("SC_CLK_TCK")


def _redis_pids() -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() == "redis-server":
                        out.append(int(entry))
            except OSError:
                pass
    return out


def _cprofile(out: str) -> None:
    """cProfile (thread CPU time) around each connection's handling (gthread's ThreadWorker.handle: reading, parsing, the app,
    writing); stats written to ``out`` every 2 s."""
    import cProfile

    from gunicorn.workers import gthread
    profiler, handle, last = cProfile.Profile(time.thread_time), gthread.ThreadWorker.handle, [time.monotonic()]
    lock = threading.Lock()

    def profiled(self, conn):
        with lock:           # one request profiled at a time (cProfile is per thread): use --threads 1
            profiler.enable()
            try:
                return handle(self, conn)
            finally:
                profiler.disable()
                if time.monotonic() - last[0] > 2:
                    last[0] = time.monotonic()
                    profiler.dump_stats(out)
    gthread.ThreadWorker.handle = profiled


def _null_app(environ, start_response):
    """No decision: what the server costs around an app that answers at once (an allow-sized answer)."""
    body = b'{"allowed":true,"reasons":[]}' + b" " * 600
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _serve(policy: str, tmp: str, port: int, workers: int, threads: int, sample: bool = True, tls: bool = True,
           store: str | None = "redis://127.0.0.1:6379/13", null: bool = False, cprofile: bool = False, early: bool = False, switch: float | None = None,
           server: str = "granian") -> None:
    from verifier.cli import _decider
    from verifier.app import create_app
    from verifier.serving import serve_wsgi
    if early:   # as before this round: ask Redis whether the presentation was seen, then record it
        from verifier.replay import RedisReplayStore
        RedisReplayStore.early = True
    decider = _decider(policy, store)
    decide, spent = decider.decide, [0.0, 0]

    def timed(*a, **k):    # the decision's own CPU in the worker, written beside the samples
        c = time.thread_time()
        try:
            return decide(*a, **k)
        finally:
            spent[0] += time.thread_time() - c
            spent[1] += 1
            if spent[1] % 100 == 0:
                with open(f"{tmp}/decide-{os.getpid()}.json", "w") as f:
                    json.dump(spent, f)
    decider.decide = timed
    app = _null_app if null else create_app(decider)
    cert, key = (f"{tmp}/cert.pem", f"{tmp}/key.pem") if tls else (None, None)
    hook = ((lambda: _cprofile(f"{tmp}/cprofile-{os.getpid()}.prof")) if cprofile else
            (lambda: _sampler(f"{tmp}/samples-{os.getpid()}.json")) if sample else (lambda: None))

    def post_fork():
        if switch:
            sys.setswitchinterval(switch)
        hook()
    serve_wsgi(app, "127.0.0.1", port, cert, key, workers=workers, threads=threads, post_fork=post_fork,
               server=server)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--no-sample", action="store_true", help="CPU accounting only (no sampler in the workers)")
    parser.add_argument("--plain", action="store_true", help="no TLS")
    parser.add_argument("--cprofile", action="store_true", help="cProfile each connection's handling (use --threads 1)")
    parser.add_argument("--memory-store", action="store_true", help="each worker's own replay store, not Redis")
    parser.add_argument("--early-seen", action="store_true", help="ask Redis before the decision too (as before)")
    parser.add_argument("--switch", type=float, default=None, help="sys.setswitchinterval in each worker (s)")
    parser.add_argument("--null-app", action="store_true", help="an app that answers at once (server cost alone)")
    parser.add_argument("--server", choices=["granian", "gunicorn"], default="granian")
    args = parser.parse_args()
    if args.cprofile and args.server != "gunicorn":
        parser.error("--cprofile hooks gunicorn's gthread worker: give --server gunicorn")
    import requests

    from bench import fast_presenter
    from cead.processes import free_port
    from httpload import CLIENTS, raw_request, server_files, wrk
    from test_verifier_service import authz_headers
    from transfer_world import world

    with world() as w, tempfile.TemporaryDirectory() as tmp:
        server_files(w, tmp)
        port = free_port()
        server = multiprocessing.get_context("fork").Process(
            target=_serve, args=(f"{tmp}/policy.json", tmp, port, args.workers, args.threads,
                                                       not args.no_sample, not args.plain,
                                                       None if args.memory_store else "redis://127.0.0.1:6379/13",
                                                       args.null_app, args.cprofile, args.early_seen,
                                                       args.switch, args.server))
        server.start()
        base = f"{'http' if args.plain else 'https'}://localhost:{port}"
        for _ in range(300):
            try:
                requests.get(base + "/healthz", verify=f"{tmp}/ca.pem", timeout=2).raise_for_status()
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        present = fast_presenter(w)

        def batch(count):
            return [raw_request("/authz", f"localhost:{port}", authz_headers(w, r, vp=present(r)))
                    for r in (w.request() for _ in range(count))]
        wrk(base, batch(8 * CLIENTS + 64), 8 * CLIENTS)
        time.sleep(2.5)
        before = {}
        for name in os.listdir(tmp):
            if name.startswith("samples-"):
                with open(f"{tmp}/{name}") as f:
                    before[name] = json.load(f)
        work = batch(args.requests + 64)

        def decided():
            out = [0.0, 0]
            for name in os.listdir(tmp):
                if name.startswith("decide-"):
                    with open(f"{tmp}/{name}") as f:
                        got = json.load(f)
                    out = [out[0] + got[0], out[1] + got[1]]
            return out
        decided_before = decided()
        servers, redis_pids = _tree(server.pid), _redis_pids()
        cpu_server, cpu_redis = _cpu(servers), _cpu(redis_pids)
        cpu_self, cpu_children = os.times()[0] + os.times()[1], os.times()[2] + os.times()[3]
        got = wrk(base, work, args.requests)
        cpu_server, cpu_redis = _cpu(servers) - cpu_server, _cpu(redis_pids) - cpu_redis
        cpu_wrk = os.times()[2] + os.times()[3] - cpu_children
        cpu_self = os.times()[0] + os.times()[1] - cpu_self
        time.sleep(0.5)
        decided_after = decided()
        spent_deciding = decided_after[0] - decided_before[0]
        count_decided = max(decided_after[1] - decided_before[1], 1)
        time.sleep(2)
        if args.cprofile:
            import pstats
            profiles = [f"{tmp}/{name}" for name in os.listdir(tmp) if name.startswith("cprofile-")]
            stats = pstats.Stats(*profiles, stream=sys.stdout) if profiles else None
        inclusive: collections.Counter = collections.Counter()
        exclusive: collections.Counter = collections.Counter()
        total = 0
        for name in os.listdir(tmp):
            if name.startswith("samples-"):
                with open(f"{tmp}/{name}") as f:
                    now = json.load(f)
                old = before.get(name, {"total": 0, "inclusive": {}, "exclusive": {}})
                total += now["total"] - old["total"]
                inclusive.update({k: v - old["inclusive"].get(k, 0) for k, v in now["inclusive"].items()})
                exclusive.update({k: v - old["exclusive"].get(k, 0) for k, v in now["exclusive"].items()})
        server.terminate()
        server.join(40)
    print(f"{got['requests']} requests, {got['rate']:.0f}/s, p50 {got['p50'] * 1e3:.1f} ms, p99 "
          f"{got['p99'] * 1e3:.1f} ms; {total} samples of busy threads")
    n = got["requests"]
    print(f"CPU per request: server ({args.server} processes) {cpu_server / n * 1e3:.2f} ms, redis-server "
          f"{cpu_redis / n * 1e3:.3f} ms, wrk {cpu_wrk / n * 1e3:.3f} ms, this process (status lists) "
          f"{cpu_self / n * 1e3:.3f} ms; {got['seconds']:.1f} s wall; of the server's, Decider.decide "
          f"{spent_deciding / count_decided * 1e3:.2f} ms (thread CPU, {count_decided} decisions counted)")
    if args.cprofile and stats:     # warm-up included
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumtime").print_stats(args.top)
    if not total:
        return 0
    print("inclusive:")
    for label, count in inclusive.most_common(args.top):
        print(f"  {100 * count / total:5.1f}%  {label}")
    print("exclusive:")
    for label, count in exclusive.most_common(args.top):
        print(f"  {100 * count / total:5.1f}%  {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
