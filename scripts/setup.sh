#!/usr/bin/env bash
# Sets up everything `make demo` and `make test` need, on a fresh machine or again (idempotent,
# cached). Steps, each skipped when its result is already there:
#   venv        .venv with `pip install -e .[dev]` (redone when pyproject.toml changes)
#   docker      Docker engine: installs Debian's docker.io when dockerd is missing, starts dockerd
#               in the background (log: .state/dockerd.log) and waits until it answers
#   toxiproxy   `go install github.com/Shopify/toxiproxy/v2/cmd/{server,cli}` at a pinned release,
#               CGO_ENABLED=0, into .state/bin, and a local image from the binaries
#   base        a Debian python base image built with debootstrap + `docker import` (no registry
#               is reachable here); Dockerfiles take it as their BASE_IMAGE build arg
#   wheels      the reference cloud service's pure-Python wheels, so its image builds offline
#   browser     Debian's chromium, for the test that renders the HTML report headless
#   bench       nginx and wrk (Debian), for `make bench` only (not in the default steps)
# Usage: scripts/setup.sh [step ...]   (default: all steps)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STATE=$ROOT/.state
mkdir -p "$STATE/bin"

TOXIPROXY_VERSION=2.12.0
TOXIPROXY_IMAGE_LOCAL=peakchaos/toxiproxy:$TOXIPROXY_VERSION
TOXIPROXY_IMAGE_PUBLIC=ghcr.io/shopify/toxiproxy:$TOXIPROXY_VERSION
BASE_IMAGE=${PEAKCHAOS_BASE_IMAGE:-peakchaos/python-base:bookworm}
DEBIAN_SUITE=bookworm
# Optional: your own Debian mirror for debootstrap (default: debootstrap's own default).
DEBIAN_MIRROR=${PEAKCHAOS_DEBIAN_MIRROR:-}
PYTHON=${PYTHON:-python3}

log() { printf '[setup] %s\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }
apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then apt-get update -q >"$STATE/apt.log" 2>&1 || true; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >>"$STATE/apt.log" 2>&1 \
    || { log "apt-get install $* failed; see $STATE/apt.log"; tail -20 "$STATE/apt.log"; exit 1; }
}

step_venv() {
  local stamp=.venv/.peakchaos-stamp want
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ -x .venv/bin/python ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    log "venv: up to date"; return
  fi
  log "venv: installing .[dev] (log: $STATE/pip.log)"
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/pip install -q -e '.[dev]' >"$STATE/pip.log" 2>&1 \
    || { tail -30 "$STATE/pip.log"; exit 1; }
  echo "$want" >"$stamp"
}

docker_ok() { docker info >/dev/null 2>&1; }

step_docker() {
  if docker_ok; then log "docker: engine answers ($(docker version -f '{{.Server.Version}}' 2>/dev/null))"; return; fi
  if ! have dockerd; then
    log "docker: installing Debian's docker.io"
    apt_install docker.io
  fi
  have docker || apt_install docker.io
  if ! pgrep -x dockerd >/dev/null 2>&1; then
    log "docker: starting dockerd (log: $STATE/dockerd.log)"
    nohup dockerd >"$STATE/dockerd.log" 2>&1 </dev/null &
  fi
  for _ in $(seq 1 120); do
    docker_ok && { log "docker: engine answers"; return; }
    sleep 0.5
  done
  log "docker: dockerd did not answer within 60 s; last lines of $STATE/dockerd.log:"
  tail -20 "$STATE/dockerd.log" || true
  exit 1
}

step_toxiproxy() {
  local server=$STATE/bin/toxiproxy-server cli=$STATE/bin/toxiproxy-cli
  if [ -x "$server" ] && [ -x "$cli" ] && "$server" -version 2>/dev/null | grep -q "$TOXIPROXY_VERSION"; then
    log "toxiproxy: binaries $TOXIPROXY_VERSION present"
  else
    log "toxiproxy: go install github.com/Shopify/toxiproxy/v2@v$TOXIPROXY_VERSION (CGO_ENABLED=0)"
    have go || { [ -x /usr/local/go/bin/go ] && export PATH=$PATH:/usr/local/go/bin; } || true
    have go || apt_install golang-go
    local gobin=$STATE/gobin
    mkdir -p "$gobin"
    CGO_ENABLED=0 GOBIN=$gobin go install \
      -ldflags "-s -w -X github.com/Shopify/toxiproxy/v2.Version=$TOXIPROXY_VERSION" \
      "github.com/Shopify/toxiproxy/v2/cmd/server@v$TOXIPROXY_VERSION" \
      "github.com/Shopify/toxiproxy/v2/cmd/cli@v$TOXIPROXY_VERSION" >"$STATE/go.log" 2>&1 \
      || { tail -20 "$STATE/go.log"; exit 1; }
    mv "$gobin/server" "$server"; mv "$gobin/cli" "$cli"
  fi
  if docker image inspect "$TOXIPROXY_IMAGE_LOCAL" >/dev/null 2>&1 \
     && docker image inspect "$TOXIPROXY_IMAGE_PUBLIC" >/dev/null 2>&1; then
    log "toxiproxy: image $TOXIPROXY_IMAGE_LOCAL present"; return
  fi
  log "toxiproxy: building $TOXIPROXY_IMAGE_LOCAL (also tagged $TOXIPROXY_IMAGE_PUBLIC, the users' default)"
  cp "$server" docker/toxiproxy/toxiproxy-server
  cp "$cli" docker/toxiproxy/toxiproxy-cli
  docker build -q -t "$TOXIPROXY_IMAGE_LOCAL" -t "$TOXIPROXY_IMAGE_PUBLIC" docker/toxiproxy >/dev/null
}

step_base() {
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then log "base: image $BASE_IMAGE present"; return; fi
  have debootstrap || apt_install debootstrap
  local rootfs=$STATE/rootfs
  rm -rf "$rootfs"
  log "base: debootstrap $DEBIAN_SUITE with python3 (log: $STATE/debootstrap.log; takes a few minutes)"
  debootstrap --variant=minbase --include=python3,python3-pip,ca-certificates \
    "$DEBIAN_SUITE" "$rootfs" ${DEBIAN_MIRROR:+"$DEBIAN_MIRROR"} >"$STATE/debootstrap.log" 2>&1 \
    || { tail -20 "$STATE/debootstrap.log"; exit 1; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  log "base: docker import -> $BASE_IMAGE"
  tar -C "$rootfs" -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' -c 'CMD ["python3"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
}

step_wheels() {
  local req=fixtures/cloud/requirements.txt dir=fixtures/cloud/wheels
  [ -f "$req" ] || { log "wheels: no $req"; return; }
  mkdir -p "$dir"
  local stamp=$dir/.stamp want
  want=$(sha256sum "$req" | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && ls "$dir"/*.whl >/dev/null 2>&1; then
    log "wheels: present"; return
  fi
  log "wheels: pip download for $req"
  rm -f "$dir"/*.whl
  .venv/bin/pip download -q --only-binary=:all: -d "$dir" -r "$req" >"$STATE/wheels.log" 2>&1 \
    || { tail -20 "$STATE/wheels.log"; exit 1; }
  echo "$want" >"$stamp"
}

step_browser() {
  if have chromium; then log "browser: chromium present"; return; fi
  log "browser: installing Debian's chromium"
  apt_install chromium
}

step_bench() {
  have nginx && have wrk && { log "bench: nginx and wrk present"; return; }
  log "bench: installing nginx and wrk"
  apt_install nginx-light wrk
}

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(venv docker toxiproxy base wheels browser)
for s in "${steps[@]}"; do
  case "$s" in
    venv|docker|toxiproxy|base|wheels|browser|bench) "step_$s" ;;
    *) echo "unknown step '$s'; valid: venv docker toxiproxy base wheels browser bench" >&2; exit 2 ;;
  esac
done
