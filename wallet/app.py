"""The node's web app with the wallet: the issuer's app (DID document, status lists, issuing API) plus the
wallet's inbox (``POST /inbox``), data-sharing requests (``POST /requests``) and pages. The issuer never imports
the wallet; this module joins them."""
from __future__ import annotations

from flask import Flask

from . import answers, current, inbox, pages, precedents, sharing
from .store import Wallet


def create_node_app(node, *, wallet: Wallet | None = None, **issuer_options) -> Flask:
    """``issuer.app.create_app(node)`` with the inbox, ``POST /requests`` and the wallet pages mounted; ``wallet``
    defaults to the node's own."""
    from issuer.app import create_app
    app = create_app(node, **issuer_options)
    wallet = wallet or Wallet.from_node(node)
    current.install(app, wallet, public_url=node.config.get("public_url"))  # where the wallet pages' views find them
    app.register_blueprint(inbox.blueprint(wallet, public_url=node.config.get("public_url")))
    app.register_blueprint(sharing.blueprint(wallet, public_url=node.config.get("public_url")))
    app.register_blueprint(answers.blueprint(wallet, public_url=node.config.get("public_url")))  # refusals back
    app.register_blueprint(pages.blueprint(wallet, public_url=node.config.get("public_url")))  # wallet pages
    app.register_blueprint(precedents.blueprint(node, wallet))   # GET /precedents: this node's signed decisions
    from .names import Directory
    app.config["CEAD_DIRECTORY"] = lambda: Directory.for_pages(node, wallet)   # names for the issuer's register
    from .desk import audit_names
    app.config["CEAD_AUDIT_NAMES"] = lambda: audit_names(node, wallet)   # the staff audit log's items, named
    return app
