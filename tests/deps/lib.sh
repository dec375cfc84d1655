# shellcheck shell=bash
#
# What a new machine is assumed to have (and nothing more; every other tool,
# package and toolchain is installed by tests/deps/*.sh, each saying why):
#   - Debian bookworm, amd64, run as root, with its deb822 entry in
#     /etc/apt/sources.list.d/ and only the package registries reachable
#     (Debian, PyPI, crates.io; rustup's server for what it serves);
#   - rustup with `stable` (1.95.0, also reachable as `1.95.0`) and
#     `nightly` (1.97.0-nightly 2026-05-19), host std only, rustfmt and
#     clippy on stable; gcc, git, python3 (3.11, with pip and venv).
# What rustup serves and does not, as seen on such a machine: 1.75.0,
# 1.88.0, nightly-2026-05-20 and its rust-src, stable's x86_64/aarch64 musl
# std; NOT nightly's aarch64 musl std (404). So nothing here relies on the
# undated `nightly`, nor on a musl std of a nightly.
# Checked by stripping a machine back to this and running tests/run-all.sh
# from a fresh clone.
#
# Sourced by tests/deps/*.sh and tests/install-deps.sh: apt with a lock
# timeout (several installers may run at once), an update that survives a
# mirror caught mid-sync, and install-if-missing.

apt_get() {
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 -qq "$@"
}

# apt-get update fails as a whole when a single index of a single suite is
# mid-sync (seen: bookworm-security's armhf list). Try a few times, then go
# on with the lists there are: a package that is really missing still makes
# the install below fail, loudly.
apt_update() {
	local _
	for _ in 1 2 3; do
		apt_get update && return 0
		sleep 10
	done
	echo "deps: apt-get update kept failing; going on with the package lists there are" >&2
}

# Installs those of the named packages that are not installed yet.
apt_install_missing() {
	local p missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	apt_update
	apt_get install -y --no-install-recommends "${missing[@]}" >/dev/null
}
