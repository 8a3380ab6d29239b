#!/bin/sh
# Start a node: initialise the home on first start (keys encrypted with CEAD_PASSPHRASE), then serve it over TLS.
#   CEAD_NAME, CEAD_DOMAIN, CEAD_PUBLIC_URL: the organisation and where it is reached (did:web:CEAD_DOMAIN)
#   CEAD_DATABASE_URL: postgresql://... (default: SQLite in the home)
#   CEAD_CA_BUNDLE: the CA bundle for other nodes' certificates (a private CA between organisations)
#   CEAD_ALLOW_PRIVATE: "1" when the other nodes sit on private addresses (a compose network, an intranet)
set -eu
: "${CEAD_PASSPHRASE:?set CEAD_PASSPHRASE (the key passphrase), e.g. from a secret}"
if [ ! -f "$CEAD_HOME/config.yaml" ]; then
  cead init --home "$CEAD_HOME" --name "${CEAD_NAME:?set CEAD_NAME}" --domain "${CEAD_DOMAIN:?set CEAD_DOMAIN}" \
       --public-url "${CEAD_PUBLIC_URL:?set CEAD_PUBLIC_URL}" \
       ${CEAD_DATABASE_URL:+--database-url "$CEAD_DATABASE_URL"} \
       ${CEAD_CA_BUNDLE:+--ca-bundle "$CEAD_CA_BUNDLE"} \
       $( [ "${CEAD_ALLOW_PRIVATE:-0}" = 1 ] && echo --allow-private-addresses )
fi
exec cead issuer serve --home "$CEAD_HOME" --host 0.0.0.0 --port 8443 \
     --tls-cert "${CEAD_TLS_CERT:-/etc/cead/tls/server.pem}" --tls-key "${CEAD_TLS_KEY:-/etc/cead/tls/server.key}"
