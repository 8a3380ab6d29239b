"""Where the node's web app keeps what the wallet's pages work on, and the one way the pages read it.

- the node: ``app.config["CEAD_NODE"]``, set by ``issuer.app.create_app``;
- the wallet: ``app.extensions["cead_wallet"]``, set by ``wallet.app.create_node_app`` and by registering the wallet
  pages' blueprint (``wallet.pages.blueprint``) (:func:`install`);
- the node's external base URL for the links the wallet pages print (QR codes): ``app.extensions
  ["cead_wallet_public_url"]``, set with the wallet (None: the URL the page was requested at).

The views of ``wallet.pages``, ``wallet.desk_pages``, ``wallet.standing_pages``, ``wallet.delegate_pages`` and
``wallet.wizard`` are module-level functions that call :func:`node` and :func:`wallet` while handling a request, and
pass what they got to their helpers.
"""
from __future__ import annotations

from flask import Flask, current_app, request

from .store import Wallet

WALLET = "cead_wallet"      # the keys in app.extensions
PUBLIC_URL = "cead_wallet_public_url"


def install(app: Flask, wallet: Wallet, *, public_url: str | None = None) -> None:
    """Keep ``wallet`` as the app's wallet, and ``public_url`` as the base of the links its pages print."""
    app.extensions[WALLET] = wallet
    app.extensions[PUBLIC_URL] = public_url


def wallet() -> Wallet:
    """The wallet of the app handling the current request."""
    return current_app.extensions[WALLET]


def public_url() -> str | None:
    """The node's external base URL for the links the wallet pages print, if one is configured."""
    return current_app.extensions.get(PUBLIC_URL)


def node():
    """The node (``issuer.node.Node``) of the app handling the current request."""
    return current_app.config["CEAD_NODE"]


def posted(make_form):
    """``(node, wallet, names, form)`` for the form posted to the current request: ``make_form(node, wallet,
    request.form, names)`` builds it with the choices this node offers; ``names`` is the pages'
    ``wallet.names.Directory``."""
    from .names import Directory
    here, held = node(), wallet()
    names = Directory.for_pages(here, held)
    return here, held, names, make_form(here, held, request.form, names)
