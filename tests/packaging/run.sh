#!/bin/bash
# Packaging checks: the init script, the systemd unit, the Yocto layer and
# the Buildroot package, then the init script exercised for real under
# busybox inside User-Mode Linux. Needs tests/deps/packaging.sh and
# tests/deps/kernel.sh; TCPCAN_BIN (default target/release/tcpcan).
# Ends with "N passed, N failed"; exit status 1 if anything failed or could
# not run.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

passed=0
failed=0
ok() {
	echo "ok - $*"
	passed=$((passed + 1))
}
not_ok() {
	echo "not ok - $*"
	failed=$((failed + 1))
}
# check DESCRIPTION CMD...: one check, from CMD's exit status.
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}
# checks CMD...: CMD prints "ok - ..." / "not ok - ..." lines; count them,
# and fail once more if it failed without saying so.
checks() {
	local out rc p f
	out=$(mktemp)
	"$@" | tee "$out"
	rc=${PIPESTATUS[0]}
	p=$(grep -c '^ok - ' "$out")
	f=$(grep -c '^not ok - ' "$out")
	rm -f "$out"
	passed=$((passed + p))
	failed=$((failed + f))
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		not_ok "$* exited with status $rc"
	fi
}

busybox=$(command -v busybox) || busybox=
oelint=target/packaging-venv/bin/oelint-adv
recipe=yocto/meta-tcpcan/recipes-connectivity/tcpcan/tcpcan_git.bb
srcrev=$(sed -n 's/^SRCREV = "\([0-9a-f]\{40\}\)"$/\1/p' "$recipe")

echo "# shell scripts"
check "shellcheck -s sh init/tcpcan.init (and the link set-up it sources)" \
	shellcheck -x -s sh init/tcpcan.init
check "shellcheck -s sh init/tcpcan-link.sh" shellcheck -s sh init/tcpcan-link.sh
for f in init/tcpcan.init init/tcpcan-link.sh; do
	check "busybox sh parses $f" "${busybox:-busybox-not-installed}" sh -n "$f"
done
# The shape of Buildroot's S01syslogd, with what a gateway needs on top.
lines=$(wc -l <init/tcpcan.init)
check "init/tcpcan.init is at most 200 lines ($lines)" [ "$lines" -le 200 ]
check "shellcheck on the packaging test and deps scripts" \
	shellcheck -x tests/packaging/run.sh tests/packaging/initscript-uml.sh \
	tests/deps/packaging.sh

echo "# systemd unit"
check "systemd-analyze verify init/tcpcan.service" \
	systemd-analyze verify --man=no init/tcpcan.service
check "systemd-analyze verify init/tcpcan@.service" \
	systemd-analyze verify --man=no init/tcpcan@.service
if [ -n "$busybox" ]; then
	checks python3 tests/packaging/argv_check.py "$busybox"
	echo "# the init script's instances"
	checks python3 tests/packaging/instances.py "$busybox"
else
	not_ok "busybox not found (tests/deps/packaging.sh)"
fi

echo "# Yocto layer"
# Suppressed, with reasons:
# - homepageping would send traffic off this machine;
# - inconspaces/notneededspace flag the ' \' opening SRC_URI in
#   tcpcan-crates.inc, which is bitbake's generated format, kept byte for
#   byte so that `bitbake -c update_crates` and our generator agree.
for release in scarthgap whinlatter wrynose; do
	check "oelint-adv --release $release finds nothing" \
		"$oelint" --quiet --mode all --relpaths --release "$release" \
		--suppress oelint.vars.homepageping \
		--suppress oelint.vars.inconspaces \
		--suppress oelint.vars.notneededspace "$recipe"
done
check "SRCREV is a commit in this repository's history" \
	git merge-base --is-ancestor "${srcrev:-none}" HEAD
check "tcpcan-crates.inc matches Cargo.lock at SRCREV" \
	python3 yocto/update-crates.py --check
# An externalsrc build of the clone uses the same crate list, offline.
check "Cargo.lock is the same at SRCREV and in the work tree (externalsrc)" \
	git diff --quiet "${srcrev:-none}" -- Cargo.lock
check "TCPCAN_GIT_URI defaults to the repository the recipe is part of" \
	grep -qF "git://\${@os.path.normpath(d.getVar('FILE_DIRNAME') + '/../../../..')};protocol=file" "$recipe"
check "that repository is this one" \
	[ "$(cd "$(dirname "$recipe")/../../../.." && pwd)" = "$PWD" ]
checks python3 tests/packaging/yocto_crates.py
checks python3 tests/packaging/yocto_fetch.py
# shellcheck disable=SC2016 # ${S} is the recipe's, not ours
while read -r f; do
	check "the recipe's $f exists at SRCREV" git cat-file -e "${srcrev:-none}:$f"
done < <(grep -o '${S}/init/[A-Za-z0-9.@_-]*' "$recipe" | sed 's|${S}/||' | sort -u)

echo "# Buildroot package"
checks python3 tests/packaging/buildroot_rules.py

echo "# URLs"
checks python3 tests/packaging/urls.py

echo "# the CAN receive queue of the unprivileged daemon"
checks python3 tests/packaging/rcvbuf.py

echo "# the init script under busybox, inside UML"
bin=${TCPCAN_BIN:-target/release/tcpcan}
if [ -x "$bin" ]; then
	checks tests/uml/run-in-uml.sh bash tests/packaging/initscript-uml.sh
else
	not_ok "no tcpcan binary at $bin (TCPCAN_BIN; cargo build --release)"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
