#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster on 127.0.0.1 (a free port, a temp directory) for the
# tests marked `postgres`. Source it: it exports HARNESS_TEST_POSTGRES_URL and registers an
# EXIT trap that stops the server and removes its directory. Installs PostgreSQL with
# apt-get when initdb/pg_ctl are missing (CI machines are fresh). Never fails the caller:
# without a server the postgres tests skip.
harness_pg_bin() {
  local dir
  for dir in "$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/x)")" \
             /usr/local/bin /usr/lib/postgresql/*/bin; do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then echo "$dir"; return 0; fi
  done
  return 1
}

harness_pg_start() {
  local bin port root user
  if ! bin=$(harness_pg_bin); then
    if command -v apt-get >/dev/null 2>&1; then
      local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
      $sudo apt-get update -qq >/dev/null && \
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null || true
    fi
    bin=$(harness_pg_bin) || { echo "postgres: not available; postgres tests will skip"; return 0; }
  fi
  python -m pip install --quiet "psycopg2-binary>=2.9" || return 0
  root=$(mktemp -d)
  port=$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  user=harness
  # NOTE: initdb refuses to run as root; use the postgres account there.
  local run=""
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$root"; run="runuser -u postgres --"
  fi
  $run "$bin/initdb" -D "$root/data" -U "$user" -A trust >/dev/null || return 0
  $run "$bin/pg_ctl" -D "$root/data" -l "$root/log" -w \
    -o "-h 127.0.0.1 -p $port -k $root -c fsync=off -c max_connections=200" start >/dev/null \
    || { cat "$root/log"; return 0; }
  HARNESS_PG_STOP="$run $bin/pg_ctl -D $root/data -m immediate stop; rm -rf $root"
  trap 'eval "$HARNESS_PG_STOP" >/dev/null 2>&1 || true' EXIT
  # The cluster is throwaway: its default database serves.
  export HARNESS_TEST_POSTGRES_URL="postgresql+psycopg2://$user@127.0.0.1:$port/postgres"
  echo "postgres: $HARNESS_TEST_POSTGRES_URL"
}

harness_pg_start
