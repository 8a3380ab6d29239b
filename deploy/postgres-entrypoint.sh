#!/bin/sh
# Start PostgreSQL (deploy/Dockerfile.postgres): on first start make the cluster in $PGDATA with POSTGRES_USER as its
# superuser (password POSTGRES_PASSWORD, SCRAM over the network, no password on the local socket) and create
# POSTGRES_DB; then run the server in the foreground on every address, as the postgres user.
set -eu
if [ "$(id -u)" = 0 ]; then
  # a volume or bind mount may arrive owned by root: hand it to postgres, then run this script again as postgres
  mkdir -p "$PGDATA" /run/postgresql
  chown postgres:postgres "$PGDATA" /run/postgresql
  chmod 0700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
USER_NAME="${POSTGRES_USER:-postgres}"
DB_NAME="${POSTGRES_DB:-$USER_NAME}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD (the password of POSTGRES_USER)}"
  PWFILE="$(mktemp)"
  printf '%s\n' "$POSTGRES_PASSWORD" > "$PWFILE"
  initdb -D "$PGDATA" --username="$USER_NAME" --pwfile="$PWFILE" --auth-local=trust --auth-host=scram-sha-256 \
         --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$PWFILE"
  printf 'host all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
  if [ "$DB_NAME" != postgres ]; then
    # an identifier in double quotes, any double quote in it doubled
    QUOTED="$(printf '%s' "$DB_NAME" | sed 's/"/""/g')"
    printf 'CREATE DATABASE "%s" OWNER "%s";\n' "$QUOTED" "$(printf '%s' "$USER_NAME" | sed 's/"/""/g')" \
      | postgres --single -j -D "$PGDATA" postgres >/dev/null
  fi
  echo "cead-postgres: made the cluster in $PGDATA with database $DB_NAME owned by $USER_NAME" >&2
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
