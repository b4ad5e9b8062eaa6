#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian machine, idempotently
# and quietly when it is already done:
#   - Debian packages: PostgreSQL, Redis, nginx, and the C toolchain rdkafka builds with;
#   - Apache Kafka: the official broker jars resolved from Maven Central into
#     $SAGA2PC_CACHE/kafka/<version>/libs (run later by `harness up` on Java 17);
#   - Toxiproxy, the TCP fault-injection proxy the stack's links run through
#     (`harness up --links`), built from the Go module proxy into
#     $SAGA2PC_CACHE/toxiproxy/<version>/toxiproxy-server;
#   - docker-compose (the Python implementation, from PyPI) in
#     $SAGA2PC_CACHE/compose-venv, for the tests' check of compose/docker-compose.yml
#     on a machine without a container engine.
# Nothing is started here; `harness up` and harness/scripts/test.sh start servers.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache="${SAGA2PC_CACHE:-$HOME/.cache/saga2pc}"

log() { printf 'setup: %s\n' "$*" >&2; }

need_apt=()
have_cmd() { command -v "$1" >/dev/null 2>&1; }
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

[ -n "$(pg_bin)" ] && [ -x "$(pg_bin)/initdb" ] || need_apt+=(postgresql postgresql-contrib)
have_cmd redis-server || need_apt+=(redis-server)
have_cmd nginx || [ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
have_cmd java || need_apt+=(openjdk-17-jre-headless)
have_cmd mvn || need_apt+=(maven)
have_cmd cmake || need_apt+=(cmake)
have_cmd cc || need_apt+=(build-essential)
have_cmd pkg-config || need_apt+=(pkg-config)
have_cmd curl || need_apt+=(curl)
have_cmd python3 || need_apt+=(python3 python3-venv)
have_cmd go || need_apt+=(golang-go)
for pkg in libssl-dev zlib1g-dev libsasl2-dev libzstd-dev libcurl4-openssl-dev; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need_apt+=("$pkg")
done

if [ "${#need_apt[@]}" -gt 0 ]; then
  did_work=1
  log "installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# The Debian packages start system-wide servers; the project runs its own
# clusters on its own ports, so the system ones are stopped to free memory and ports.
for svc in postgresql redis-server nginx; do
  if have_cmd service && service "$svc" status >/dev/null 2>&1; then
    service "$svc" stop >/dev/null 2>&1 || true
  fi
done

# rustup toolchain components used by the test script.
if have_cmd rustup; then
  for comp in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$comp" || rustup component add "$comp" >/dev/null 2>&1 || true
  done
fi

# Apache Kafka broker jars from Maven Central.
kafka_version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$root/harness/kafka/pom.xml")"
kafka_libs="$cache/kafka/$kafka_version/libs"
if [ ! -f "$kafka_libs/.complete" ]; then
  did_work=1
  log "resolving Apache Kafka $kafka_version from Maven Central into $kafka_libs"
  mkdir -p "$kafka_libs"
  mvn_log="$(mktemp)"
  if ! mvn -B -Dstyle.color=never -f "$root/harness/kafka/pom.xml" \
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
    -DoutputDirectory="$kafka_libs" -DincludeScope=runtime >"$mvn_log" 2>&1; then
    cat "$mvn_log" >&2
    exit 1
  fi
  rm -f "$mvn_log"
  ls "$kafka_libs"/kafka_2.13-*.jar >/dev/null
  touch "$kafka_libs/.complete"
fi

# Toxiproxy from the Go module proxy: its server, built once per version
# (the harness finds it by the same version, `stack::links::TOXIPROXY_VERSION`).
toxiproxy_version=v2.5.0
toxiproxy_dir="$cache/toxiproxy/$toxiproxy_version"
if [ ! -x "$toxiproxy_dir/toxiproxy-server" ]; then
  did_work=1
  log "building Toxiproxy $toxiproxy_version from the Go module proxy into $toxiproxy_dir"
  mkdir -p "$toxiproxy_dir"
  GOBIN="$toxiproxy_dir/gobin" GOFLAGS=-buildvcs=false go install "github.com/Shopify/toxiproxy/v2/cmd/server@$toxiproxy_version"
  mv "$toxiproxy_dir/gobin/server" "$toxiproxy_dir/toxiproxy-server"
  rmdir "$toxiproxy_dir/gobin"
fi

# docker-compose 1.29.2 validates a file (`config`) without a Docker engine.
# It needs PyYAML below 6, whose 5.4.1 source build fails in pip's isolated
# build environment; built against the venv's own setuptools, it succeeds.
compose_venv="$cache/compose-venv"
if [ ! -x "$compose_venv/bin/docker-compose" ]; then
  did_work=1
  log "installing docker-compose 1.29.2 from PyPI into $compose_venv"
  rm -rf "$compose_venv"
  python3 -m venv "$compose_venv"
  "$compose_venv/bin/pip" install -q --disable-pip-version-check wheel setuptools
  "$compose_venv/bin/pip" install -q --disable-pip-version-check --no-build-isolation "PyYAML==5.4.1"
  "$compose_venv/bin/pip" install -q --disable-pip-version-check "docker-compose==1.29.2"
fi

if [ "${did_work:-0}" = 1 ]; then
  log "ready (PostgreSQL $("$(pg_bin)/postgres" --version | awk '{print $3}'), Kafka $kafka_version in $kafka_libs, Toxiproxy $toxiproxy_version)"
fi
