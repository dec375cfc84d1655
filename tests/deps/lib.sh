# shellcheck shell=bash
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
