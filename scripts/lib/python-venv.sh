# Sourced by the setup scripts. `make_venv DIR` creates a fresh virtualenv at
# DIR with the machine's python3, first installing Debian's python3-venv
# (which its own python3 ships separately) when the venv module is missing.
make_venv() {
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv >/dev/null
  fi
  python3 -m venv --clear "$1"
}
