"""Where the node's web app keeps what the wallet's pages work on, and the one way the pages read it.

- the node: ``app.config["CEAD_NODE"]``, set by ``issuer.app.create_app``;
- the wallet: ``app.extensions["cead_wallet"]``, set by ``wallet.app.create_node_app`` (:func:`install`).

The views of ``wallet.desk_pages``, ``wallet.standing_pages`` and ``wallet.wizard`` are module-level functions
that call :func:`node` and :func:`wallet` while handling a request, and pass what they got to their helpers.
"""
from __future__ import annotations

from flask import Flask, current_app

from .store import Wallet

WALLET = "cead_wallet"      # the key in app.extensions


def install(app: Flask, wallet: Wallet) -> None:
    """Keep ``wallet`` as the app's wallet."""
    app.extensions[WALLET] = wallet


def wallet() -> Wallet:
    """The wallet of the app handling the current request."""
    return current_app.extensions[WALLET]


def node():
    """The node (``issuer.node.Node``) of the app handling the current request."""
    return current_app.config["CEAD_NODE"]
