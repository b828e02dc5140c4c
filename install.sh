#!/usr/bin/env bash
# Install lxmgr on Debian 12 (as root): the packages it runs, then the Python package with
# the `lxmgr` and `lxmgrd` commands. `./install.sh --help` says more. .ci/setup runs it
# and adds what only the tests need.
set -euo pipefail

# What lxmgr runs on the host, by package: debootstrap builds images from images/*.yaml,
# dnsmasq-base serves DHCP/DNS on managed bridges, nftables routes and NATs them,
# btrfs-progs makes btrfs pools, squashfs-tools reads and writes LXD's squashfs images,
# xz-utils and zstd unpack image tarballs, libseccomp2 is loaded by pyseccomp,
# ca-certificates checks image servers' HTTPS, lxcfs gives containers a /proc/meminfo,
# cpuinfo, uptime... of their own limits (lxmgrd uses Debian's lxcfs.service when it runs,
# else starts its own); python3-pip installs lxmgr itself.
APT_PACKAGES=(debootstrap dnsmasq-base nftables btrfs-progs squashfs-tools xz-utils zstd
              libseccomp2 ca-certificates lxcfs python3 python3-pip)
MIN_PYTHON=(3 11)

usage() {
    cat <<EOF
Usage: ./install.sh [OPTIONS]

Install lxmgr from this checkout on Debian 12, as root:
  1. apt packages lxmgr runs: ${APT_PACKAGES[*]}
     (apt-get update and install only when one is missing)
  2. the Python package with pip, into PYTHON's environment: the \`lxmgr\` and \`lxmgrd\`
     commands next to PYTHON's other scripts (/usr/local/bin for Debian's python3)
  3. the fast \`lxmgr\` launcher over pip's script (lxmgr/cli/launcher.py; optional)
Running it again is safe: it installs what is missing and this checkout's lxmgr again.
Then: lxmgr daemon start && lxmgr launch debian web1

Options:
  --python PYTHON  interpreter to install into (default: python3; Python >= 3.11)
  --editable       install the checkout in place (pip -e: edits take effect at once);
                   the default when this checkout is installed so already
  --no-editable    install a copy even then
  --extras LIST    also install these extras of lxmgr (comma-separated, e.g. test)
  --no-apt         skip step 1 (install those packages another way)
  --no-launcher    skip step 3 (keep pip's console script)
  --dry-run        print the commands instead of running them
  -h, --help       show this help
EOF
}

die() { # a one-line error and exit 1 (2 for usage errors)
    echo "Error: $1" >&2
    exit "${2:-1}"
}

python=python3
editable=""
extras=""
apt=1
launcher=1
dry_run=0
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --python) [ $# -ge 2 ] || die "--python needs an interpreter" 2; python=$2; shift ;;
        --python=*) python=${1#*=} ;;
        --editable) editable=1 ;;
        --no-editable) editable=0 ;;
        --extras) [ $# -ge 2 ] || die "--extras needs a list" 2; extras=$2; shift ;;
        --extras=*) extras=${1#*=} ;;
        --no-apt) apt=0 ;;
        --no-launcher) launcher=0 ;;
        --dry-run) dry_run=1 ;;
        *) die "Unknown option '$1' (see ./install.sh --help)" 2 ;;
    esac
    shift
done
[[ "$extras" =~ ^[A-Za-z0-9_,-]*$ ]] || die "Invalid extras '$extras': expected names like test"

cd "$(dirname "$0")"
[ -f pyproject.toml ] && [ -d lxmgr ] || die "$(pwd) is not an lxmgr checkout"

run() { # run a command, or print it with --dry-run
    if [ "$dry_run" = 1 ]; then
        printf '+'
        printf ' %q' "$@"
        printf '\n'
    else
        "$@"
    fi
}

if [ "$dry_run" = 0 ] && [ "$(id -u)" != 0 ]; then
    die "Run ./install.sh as root: it installs system packages and lxmgrd runs as root"
fi

# 1. apt packages (only when one is missing: a second run needs no network)
if [ "$apt" = 1 ]; then
    command -v apt-get >/dev/null ||
        die "apt-get not found: install ${APT_PACKAGES[*]} (or your system's equivalents), then run ./install.sh --no-apt"
    missing=()
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" ||
            missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        run apt-get update -qq || die "apt-get update failed (is the network or a mirror reachable?)"
        run apt-get install -y -qq "${missing[@]}" ||
            die "apt-get install ${missing[*]} failed"
    fi
fi

# 2. the Python package (-P wherever lxmgr is imported: the working directory is the checkout,
# whose lxmgr is not necessarily the installed one)
command -v "$python" >/dev/null || die "Python interpreter '$python' not found"
"$python" -c "import sys; sys.exit(sys.version_info < (${MIN_PYTHON[0]}, ${MIN_PYTHON[1]}))" ||
    die "lxmgr needs Python >= ${MIN_PYTHON[0]}.${MIN_PYTHON[1]}; '$python' is $("$python" -c 'import sys; print(sys.version.split()[0])')"
"$python" -m pip --version >/dev/null 2>&1 ||
    die "'$python' has no pip: install python3-pip (or leave out --no-apt)"
# An editable install of this very checkout (a developer's, .ci/setup's) stays editable.
if [ -z "$editable" ]; then
    editable=0
    if "$python" -P - "$(pwd)" 2>/dev/null <<'EOF'; then editable=1; fi
import json, sys
from importlib import metadata
from pathlib import Path
try:
    info = json.loads(metadata.distribution("lxmgr").read_text("direct_url.json") or "{}")
except metadata.PackageNotFoundError:
    sys.exit(1)
sys.exit(not (info.get("dir_info", {}).get("editable")
              and info.get("url") == Path(sys.argv[1]).as_uri()))
EOF
fi
pip_flags=(--disable-pip-version-check --quiet --root-user-action=ignore)
# Debian's own python3 is "externally managed" (PEP 668): lxmgr is a root-run system tool,
# so install into it anyway rather than asking users to juggle a venv.
if "$python" -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["stdlib"], "EXTERNALLY-MANAGED")))' 2>/dev/null; then
    pip_flags+=(--break-system-packages)
fi
spec=.
[ -n "$extras" ] && spec=".[${extras}]"
if [ "$editable" = 1 ]; then
    run "$python" -m pip install "${pip_flags[@]}" -e "$spec" || die "pip install -e $spec failed"
    # byte-compile as a non-editable install would (an editable one is not, and with
    # PYTHONDONTWRITEBYTECODE every command would compile the package again)
    run "$python" -m compileall -q lxmgr
else
    run "$python" -m pip install "${pip_flags[@]}" "$spec" || die "pip install $spec failed"
fi

# 3. the launcher: `lxmgr` started without site, list/start/stop/exec without click
if [ "$launcher" = 1 ]; then
    run "$python" -P -m lxmgr.cli.launcher || die "Could not write the lxmgr launcher"
fi
if [ "$dry_run" = 0 ]; then
    echo "Installed lxmgr $("$python" -P -m lxmgr.cli.main --version) for $python:" \
        "$("$python" -P -c 'import lxmgr, os; print(os.path.dirname(lxmgr.__file__))')"
fi
