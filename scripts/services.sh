# Sourced by scripts/test: makes sure the services the test suite talks to are running.
# PostgreSQL is required (the store tests run on it and fail loudly without it), and so are
# Chromium and chromedriver (the browser tests).

pg_url() { echo "${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"; }
pg_ok() { psql "$(pg_url)" -Atqc 'select 1' >/dev/null 2>&1; }

ensure_postgres() {
  if pg_ok; then return 0; fi
  if ! ls -d /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "scripts/test: installing PostgreSQL (Debian package)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-client >/dev/null
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  echo "scripts/test: starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
  for _ in $(seq 1 100); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
  if ! pg_ok; then
    # A freshly installed server: let this machine's test runs in over loopback, and
    # create the database the harness connects to first.
    local hba="/etc/postgresql/$version/main/pg_hba.conf"
    if ! grep -q 'frontdesk-test' "$hba"; then
      sed -i '1i host all all 127.0.0.1/32 trust # frontdesk-test: local test server' "$hba"
      pg_ctlcluster --skip-systemctl-redirect "$version" main reload
    fi
    su postgres -c "createdb test" 2>/dev/null || true
  fi
  if ! pg_ok; then
    echo "scripts/test: PostgreSQL is not reachable at $(pg_url)" >&2
    return 1
  fi
}

# The browser tests drive Debian's headless Chromium through chromedriver; they fail (never
# skip) without them.
ensure_chromium() {
  if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then return 0; fi
  echo "scripts/test: installing Chromium and chromedriver (Debian packages)"
  local install=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver)
  # A fresh machine's package lists may be empty or stale: update only when the install needs it.
  if ! "${install[@]}" >/dev/null 2>&1; then
    apt-get update -qq
    "${install[@]}" >/dev/null
  fi
  if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    echo "scripts/test: /usr/bin/chromium or /usr/bin/chromedriver still missing after install" >&2
    return 1
  fi
}
