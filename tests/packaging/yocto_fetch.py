#!/usr/bin/env python3
"""The recipe's git fetch works from a detached checkout of the layer.

kas and CI check a layer's repository out at a commit, detached, often with
no local branch; the recipe's TCPCAN_GIT_URI defaults to that checkout.
CI has no bitbake, so this does what bitbake's git fetcher does with the
recipe's SRC_URI parameters (lib/bb/fetch2/git.py, the same in this at
yocto-5.0.19, yocto-5.3.4 and yocto-6.0.2):

- download: `git clone --bare --mirror <checkout> <clonedir>` (the path
  itself for a bare repository, else file://<path>), then the
  revision check: with nobranch=1, `git log --pretty=oneline -n 1 SRCREV --`
  must print a line; with branch=B, `git branch --contains SRCREV --list B`
  must (else "Unable to find revision ... in branch B even from upstream");
- unpack: `git clone -s -n <clonedir> <S>`, then SRCREV checked out.

from three checkouts of this repository, each at HEAD (SRCREV is older):
detached with its remote-tracking branches only (kas, actions/checkout),
detached with no ref at all, and an ordinary clone on branch main.
docs/packaging.md has the same fetch run by bitbake itself.

Prints "ok - ..." / "not ok - ..." lines; exit 1 if any check failed.
"""

import re
import subprocess
import sys
import tempfile
from pathlib import Path

from tap import report, status

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "yocto/meta-tcpcan/recipes-connectivity/tcpcan/tcpcan_git.bb"


def git(*args, cwd=None):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout


def checkout(tmp, kind):
    """A checkout of this repository at HEAD, as kas or CI would leave it."""
    path = tmp / kind
    head = git("rev-parse", "HEAD", cwd=REPO).strip()
    git("clone", "-q", "--no-checkout", str(REPO), str(path))
    if kind == "on-main":
        git("checkout", "-q", "-B", "main", head, cwd=path)
        return path
    git("checkout", "-q", "--detach", head, cwd=path)
    for branch in git("for-each-ref", "--format=%(refname)", "refs/heads", cwd=path).split():
        git("update-ref", "-d", branch, cwd=path)
    if kind == "detached-no-ref":
        git("remote", "remove", "origin", cwd=path)
    return path


def fetch(params, srcrev, url, tmp):
    """bitbake's download and unpack of the git URL with PARAMS at SRCREV; None if it
    works, else the fetcher's complaint."""
    clonedir = tmp / "downloads"
    # As bitbake: git's local-clone shortcut only where <path>/objects is.
    source_url = str(url) if (url / "objects").is_dir() else f"file://{url}"
    git("clone", "--bare", "--mirror", source_url, str(clonedir))
    if params.get("nobranch") == "1":
        found = git("log", "--pretty=oneline", "-n", "1", srcrev, "--", cwd=clonedir)
    elif "branch" in params:
        found = git("branch", "--contains", srcrev, "--list", params["branch"], cwd=clonedir)
    else:
        return "The url does not set any branch parameter or set nobranch=1."
    if not found.strip():
        return (f"Unable to find revision {srcrev} in branch "
                f"{params.get('branch')} even from upstream")
    source = tmp / "S"
    git("clone", "-q", "-s", "-n", str(clonedir), str(source))
    git("checkout", "-q", srcrev, cwd=source)
    if git("rev-parse", "HEAD", cwd=source).strip() != srcrev:
        return "the unpacked tree is not at SRCREV"
    return None


def main():
    text = RECIPE.read_text()
    uri = re.search(r'^SRC_URI = "\$\{TCPCAN_GIT_URI\};([^"\s]*)"$', text, re.M)
    rev = re.search(r'^SRCREV = "([0-9a-f]{40})"$', text, re.M)
    default = "git://${@os.path.normpath(d.getVar('FILE_DIRNAME') + '/../../../..')};protocol=file"
    if not uri or not rev or f'TCPCAN_GIT_URI ??= "{default}"' not in text:
        report("the recipe's git SRC_URI, SRCREV and TCPCAN_GIT_URI default",
              "not in the form this test reads")
        return status()
    params = dict(p.partition("=")[::2] for p in uri.group(1).split(";"))
    for kind in ("detached-remote-branches", "detached-no-ref", "on-main"):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            url = checkout(tmp, kind)
            # TCPCAN_GIT_URI's default: four directories above the recipe.
            layer_recipe = url / RECIPE.relative_to(REPO)
            assert (layer_recipe.parent / "../../../..").resolve() == url.resolve()
            report(f"SRC_URI (;{uri.group(1)}) fetches SRCREV from a checkout {kind}",
                  fetch(params, rev.group(1), url, tmp))
    return status()


if __name__ == "__main__":
    sys.exit(main())
