#!/bin/sh
# The linker cargo runs for the x86_64 and aarch64 musl targets (see
# config.toml): the target's Debian gcc, named by the link this runs as
# (.cargo/musl-link/<gcc>), with the directory of libunwind.a added to the
# library search when no directory given has it.
#
# std links -lunwind. Debian's libgcc_eh cannot serve (config.toml says
# why); rustup's musl target ships LLVM's libunwind.a in its self-contained
# directory, which link-self-contained=no leaves out of the search. rustc
# passes `-L <sysroot>/lib/rustlib/<target>/lib`, the self-contained
# directory's parent: so a plain `cargo build --target <musl target>`
# links, with the musl target of the toolchain building it. Added last: ld
# searches -L directories in order, and libc.a must still be Debian's
# musl. scripts/build-dist.sh builds std from source and names the
# directory itself; then nothing is added.
set -eu
gcc=${0##*/}
found=""
prev=""
for arg in "$@"; do
	if [ "$prev" = "-L" ]; then
		[ -f "$arg/libunwind.a" ] && exec "$gcc" "$@"
		case "$arg" in
			*/lib/rustlib/*/lib)
				[ -f "$arg/self-contained/libunwind.a" ] &&
					found="$arg/self-contained";;
		esac
	fi
	prev=$arg
done
if [ -z "$found" ]; then
	echo "tcpcan: no libunwind.a in this toolchain's musl target (rustup target add it), nor given; the release binaries build with scripts/build-dist.sh" >&2
	exit 1
fi
exec "$gcc" "$@" -L "$found"
