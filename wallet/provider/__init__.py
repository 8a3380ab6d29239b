"""The data provider for near-time services (`cead provider serve`): DCAT dataset series served behind the
gateway (pull with paging and ``since``, a server-sent-events stream of new releases) and pushed to recipients'
ingest endpoints with the provider's own approval. See docs/provider.md.

- ``config``: the configuration file, checked in full (``provider.config_invalid`` names the key)
- ``sources``: release files, a database table, an upstream paginated REST API with an API key
- ``service``: the ``Provider`` (WSGI app and watcher)
- ``deliveries``: pushing a release, and the delivery log with each delivery's receipt
- ``ingest``: a recipient's gated ingest endpoint (e.g. a Scottish Government collection)
"""
from .config import ProviderConfig, load_config, parse_config  # noqa: F401
from .service import Provider  # noqa: F401
