"""The data provider's API that `cead demo` starts (nodes run the real `cead issuer serve`), serving HTTPS on
127.0.0.1 with the demo CA's certificate.

``python -m cead.demo_api api --config FILE``
    A data provider's API: a few CSV endpoints behind ``verifier.middleware.CeadMiddleware`` with the run's trust
    policy. Every response carries ``Cead-Demo-Verify-Ms`` (time spent before the answer started).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

VERIFY_TIME_HEADER = "Cead-Demo-Verify-Ms"


def _serve(app, port: int, cert: str, key: str) -> None:
    from verifier.serving import serve_wsgi
    serve_wsgi(app, "127.0.0.1", port, cert, key)


class _Timed:
    """Outermost WSGI layer: adds how long the request took until its answer started (the decision, mostly)."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        started = time.perf_counter()

        def timed_start(status, headers, exc_info=None):
            ms = (time.perf_counter() - started) * 1000
            return start_response(status, [*headers, (VERIFY_TIME_HEADER, f"{ms:.1f}")], exc_info)
        return self.app(environ, timed_start)


def data_app(config: dict):
    """The data API of one provider. ``config``: {"policy": {...}, "routes": {path: {"dataset", "payloads",
    "outputs"}}}; ``outputs``: a folder of computation outputs served as ``?output=<name>`` (``<name>.csv``)."""
    from flask import Flask, Response, abort, request

    from verifier.decision import Decider
    from verifier.middleware import ENVIRON_KEY, CeadMiddleware
    from verifier.policy import parse_policy

    routes: dict[str, dict] = config["routes"]
    examples = Path(config["examples"])
    app = Flask("cead.demo.data")

    def serve(path: str):
        route = routes[path]
        payloads = route.get("payloads")
        if route.get("outputs") and request.args.get("output"):
            # a computation's output this node holds (a compute party's copy of a pooled table), released by the
            # gateway only with the run attestation that covers these exact bytes
            name = request.args["output"]
            if not (name.isascii() and name.replace("-", "").isalnum() and len(name) <= 64):
                abort(404)
            file = Path(route["outputs"]) / f"{name}.csv"
            if not file.is_file():
                abort(404)
            return Response(file.read_bytes(), mimetype="text/csv")
        if payloads:
            name = payloads.get(request.args.get("table", ""))
            if name is None:
                abort(404)
            return Response((examples / name).read_bytes(), mimetype="text/csv")
        decision = request.environ.get(ENVIRON_KEY)
        manifest = (decision.manifest if decision is not None else None) or {}
        columns = [str(c) for c in manifest.get("columns") or []]
        rows = min(int(manifest.get("rowCount") or 3), 3)   # a synthetic sample: the demo moves no real data
        counts = set(manifest.get("countColumns") or ["count"])
        lines = [",".join(columns)] + [",".join(str(100 + 17 * i) if c in counts else f"{c}-{i}" for c in columns)
                                       for i in range(1, rows + 1)]
        return Response("\n".join(lines) + "\n", mimetype="text/csv")

    for path in routes:
        app.add_url_rule(path, path, lambda path=path: serve(path))

    ledger = None
    if config.get("ledger"):   # the data owner's privacy-budget ledger, in its node's database
        from issuer import db
        from issuer.ledger import SqlLedger
        ledger = SqlLedger(db.migrate(config["ledger"]))
    decider = Decider(parse_policy(config["policy"]), ledger=ledger)
    if config.get("node_home"):   # the provider's node signs, stores and logs every receipt (issue 15)
        from .demo_evidence import attach
        attach(decider, config["node_home"], config.get("receipt_spool"))
    app.wsgi_app = CeadMiddleware(app.wsgi_app, decider,
                                  dataset_for=lambda environ: routes.get(environ.get("PATH_INFO", ""), {}).get(
                                      "dataset"))
    return _Timed(app)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cead.demo_api")
    sub = parser.add_subparsers(dest="kind", required=True)
    api = sub.add_parser("api")
    api.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    config = json.loads(Path(args.config).read_text(encoding="utf-8"))
    _serve(data_app(config), config["port"], config["cert"], config["key"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
