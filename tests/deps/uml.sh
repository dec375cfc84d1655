#!/bin/bash
# The kernels the kernel-level tests boot: User-Mode Linux, twice.
#
#   - Debian 12's own `user-mode-linux` (6.1, a long-term kernel as gateways
#     in the field run), from the system's apt;
#   - the newest UML Debian has (TCPCAN_UML_SUITE, default forky: 7.2 when
#     this was written, as desks run), installed privately under
#     target/uml/newest, since the system must stay on its own suite.
#
# Why both: 6.1 panics at boot on some hosts (AVX-512/AMX CPUs, a larger
# register state than it expects: "ptrace set fp regs failed"), the newest
# boots everywhere seen so far. tests/uml/kernels.sh decides which of them
# boot on this host, by booting them.
#
# The newest package needs a newer glibc (>= 2.38) than Debian 12's, so the
# same suite's libc6 is unpacked beside it and the binary's interpreter and
# library path point at that copy (patchelf). Starting it through the copy's
# ld-linux by hand is not enough: UML then miscomputes its memory and exits.
# Nothing of the system is upgraded: apt runs against a sources list, lists
# and cache of its own under target/uml/apt, with the system's keyring.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tests/deps/lib.sh
. "$(dirname "$0")/lib.sh"

apt_install_missing user-mode-linux patchelf

suite=${TCPCAN_UML_SUITE:-forky}
base=$repo/target/uml
apt_dir=$base/apt
dest=$base/newest
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs"
touch "$apt_dir/status"
# The machine's own Debian mirror, as its apt is set up (the entry of its
# release's main archive), with another suite.
codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
# shellcheck disable=SC2016 # apt's own $(FIELD) placeholders.
mirror=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(IDENTIFIER)' |
	awk -v s="$codename" '$2 == s && $3 == "Packages" { print $1; exit }')
[ -n "$mirror" ] || { echo "deps: no Debian $codename archive in this machine's apt sources" >&2; exit 1; }
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" \
	>"$apt_dir/sources.list"
private_apt=(
	-o "Dir::State::Lists=$apt_dir/lists"
	-o "Dir::State::status=$apt_dir/status"
	-o "Dir::Cache=$apt_dir/cache"
	-o "Dir::Etc::SourceList=$apt_dir/sources.list"
	-o "Dir::Etc::SourceParts=$apt_dir/none"
	-o "APT::Architectures::=amd64"
	-o "Acquire::Languages=none"
	# The system's apt.conf.d asks for AppStream metadata: not needed here.
	-o "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false"
	-o "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false"
	-o "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false"
)

# One try of the suite's index, with retries like the system's (a mirror
# caught mid-sync fails a whole update).
updated=
for _ in 1 2 3; do
	if apt-get -qq "${private_apt[@]}" update; then
		updated=1
		break
	fi
	sleep 10
done
[ -n "$updated" ] || { echo "deps: apt-get update of Debian $suite (private, for the newest UML) failed" >&2; exit 1; }

candidate() {
	apt-cache "${private_apt[@]}" policy "$1" | awk '/Candidate:/ { print $2 }'
}
uml_version=$(candidate user-mode-linux)
libc_version=$(candidate libc6)
if [ -z "$uml_version" ] || [ "$uml_version" = "(none)" ] || [ -z "$libc_version" ]; then
	echo "deps: Debian $suite has no user-mode-linux/libc6 for amd64" >&2
	exit 1
fi

stamp="user-mode-linux $uml_version libc6 $libc_version ($suite)"
if [ -x "$dest/usr/bin/linux.uml" ] && [ "$(cat "$dest/installed" 2>/dev/null)" = "$stamp" ]; then
	exit 0
fi

# apt-get download writes to the current directory; its sandbox user
# cannot write here, which is harmless (it downloads as root, with a warning).
(cd "$apt_dir/debs" && rm -f ./*.deb &&
	apt-get -qq "${private_apt[@]}" -o APT::Sandbox::User=root download \
		"user-mode-linux=$uml_version" "libc6=$libc_version" >/dev/null)

rm -rf "$dest.tmp"
mkdir -p "$dest.tmp"
for deb in "$apt_dir"/debs/*.deb; do
	dpkg-deb -x "$deb" "$dest.tmp"
done
libdir=$dest/usr/lib/x86_64-linux-gnu
# Paths as they will be after the move below.
patchelf --set-interpreter "$libdir/ld-linux-x86-64.so.2" --set-rpath "$libdir" \
	"$dest.tmp/usr/bin/linux.uml"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
echo "$stamp" >"$dest/installed"
rm -f "$apt_dir"/debs/*.deb
echo "deps: installed $stamp under $dest: $("$dest/usr/bin/linux.uml" --version)"
