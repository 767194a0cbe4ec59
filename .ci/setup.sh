# shellcheck shell=bash
# Shared by .ci/run, .ci/demo and scripts/test. Sourcing only defines things; `ci_setup` does the work:
# prepares a FRESH Debian bookworm machine (root, or a user with passwordless sudo; no stdin).
#
# Layout (all outside the clone, so a fresh clone stays clean):
#   $PG_EXT_MEMCHECK_CACHE                  default /var/cache/pg-ext-memcheck as root (other users must be able
#                                           to enter it: the test servers run unprivileged), else
#                                           ${XDG_CACHE_HOME:-~/.cache}/pg-ext-memcheck
#   $PG_EXT_MEMCHECK_CACHE/venv-<hash>      the venv for this clone (<hash> of the clone's path)
#   $PG_EXT_MEMCHECK_CACHE/postgresql/N     source builds made by `pg-ext-memcheck install-postgres`

CI_REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

CI_APT_PACKAGES=(
  postgresql-15 postgresql-server-dev-15 postgresql-contrib
  build-essential bison flex libreadline-dev zlib1g-dev libicu-dev pkg-config libssl-dev dpkg-dev
  python3-venv
)

# "major method" pairs; the order is that of PG_EXT_MEMCHECK_PG_CONFIGS. Debian's 15 goes first: tests that
# need a single PostgreSQL take the first entry, and some of them install it with --method debian.
CI_POSTGRES=("15 debian" "13 source" "18 source")
# An assertion-enabled source build (cached like the others) for the memory_corruption tests:
# exported as PG_EXT_MEMCHECK_CASSERT_PG_CONFIG, not part of PG_EXT_MEMCHECK_PG_CONFIGS.
CI_CASSERT_MAJOR=15

ci_log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

ci_cache_dir() {
  if [ -n "${PG_EXT_MEMCHECK_CACHE:-}" ]; then
    echo "$PG_EXT_MEMCHECK_CACHE"
  elif [ "$(id -u)" = 0 ]; then
    echo /var/cache/pg-ext-memcheck
  else
    echo "${XDG_CACHE_HOME:-$HOME/.cache}/pg-ext-memcheck"
  fi
}

ci_venv_dir() {
  echo "$(ci_cache_dir)/venv-$(printf %s "$CI_REPO_ROOT" | sha256sum | cut -c1-12)"
}

ci_sudo() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi
}

ci_setup() {
  set -euo pipefail
  local t0=$SECONDS venv pg_config major method configs=()
  # The PostgreSQL builds in the cache must stay readable by the unprivileged user the test servers run as.
  umask 022
  export DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1
  export PG_EXT_MEMCHECK_CACHE
  PG_EXT_MEMCHECK_CACHE=$(ci_cache_dir)
  mkdir -p "$PG_EXT_MEMCHECK_CACHE"

  ci_log "apt-get update + install ${CI_APT_PACKAGES[*]}"
  ci_sudo apt-get update -q </dev/null
  ci_sudo apt-get install -y -q --no-install-recommends "${CI_APT_PACKAGES[@]}" </dev/null

  venv=$(ci_venv_dir)
  ci_log "venv $venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "${CI_REPO_ROOT}[test]" </dev/null
  export VIRTUAL_ENV=$venv PATH="$venv/bin:$PATH"

  for spec in "${CI_POSTGRES[@]}"; do
    read -r major method <<<"$spec"
    ci_log "install-postgres $major --method $method"
    pg_config=$(pg-ext-memcheck install-postgres "$major" --method "$method" </dev/null | tail -n 1)
    [ -x "$pg_config" ] || { ci_log "install-postgres $major printed no usable pg_config"; return 1; }
    ci_log "PostgreSQL $major: $pg_config ($("$pg_config" --version))"
    configs+=("$pg_config")
  done
  PG_EXT_MEMCHECK_PG_CONFIGS=$(IFS=:; echo "${configs[*]}")
  export PG_EXT_MEMCHECK_PG_CONFIGS
  ci_log "install-postgres $CI_CASSERT_MAJOR --method source --cassert"
  PG_EXT_MEMCHECK_CASSERT_PG_CONFIG=$(pg-ext-memcheck install-postgres "$CI_CASSERT_MAJOR" --method source --cassert </dev/null | tail -n 1)
  export PG_EXT_MEMCHECK_CASSERT_PG_CONFIG
  ci_log "PG_EXT_MEMCHECK_PG_CONFIGS=$PG_EXT_MEMCHECK_PG_CONFIGS (setup took $((SECONDS - t0))s)"
}
