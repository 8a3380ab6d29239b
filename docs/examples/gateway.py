"""An example data API behind a Cead gateway: one CSV dataset, served only to a request the verifier allows.

    python docs/examples/gateway.py --policy gateway-policy.yaml --dataset IRI --csv rows.csv \
        --port 9445 --tls-cert dev-ca/server.pem --tls-key dev-ca/server-key.pem

``GET /data`` answers the CSV when the request carries a presentation the trust policy allows for the dataset
(``cead fetch``, or ``wallet.client.CeadAuth`` in a pipeline); without one it answers 401 with what to present, and
a denial 403 with every reason. This is all a gateway developer adds to an existing Flask app: the three lines
marked below (see docs/gateway.md for other frameworks and for Envoy).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from flask import Flask

from verifier.decision import Decider
from verifier.middleware import CeadMiddleware
from verifier.policy import load_policy
from verifier.serving import serve_wsgi


def create_app(policy_path: str, dataset: str, csv_path: str) -> Flask:
    app = Flask("example-data-api")

    @app.get("/data")
    def data():
        return Path(csv_path).read_bytes(), 200, {"Content-Type": "text/csv"}

    decider = Decider(load_policy(policy_path))                                 # 1. the trust policy
    app.wsgi_app = CeadMiddleware(app.wsgi_app, decider,                        # 2. the gateway in front
                                  dataset_for=lambda environ: dataset)          # 3. which dataset this serves
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", required=True, help="The gateway's trust policy (YAML).")
    parser.add_argument("--dataset", required=True, help="The dataset IRI /data serves.")
    parser.add_argument("--csv", required=True, help="The CSV file /data serves.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls-cert", required=True)
    parser.add_argument("--tls-key", required=True)
    args = parser.parse_args()
    app = create_app(args.policy, args.dataset, args.csv)
    serve_wsgi(app, args.host, args.port, args.tls_cert, args.tls_key,
               announce=lambda url: print(f"Serving {args.dataset} at {url}/data", flush=True))


if __name__ == "__main__":
    main()
