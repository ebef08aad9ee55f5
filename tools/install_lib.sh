#!/bin/sh
# Install hash-pinned MicroPython packages into lib/ for the unix port.
# pip cannot build these legacy sdists, but `pip download --no-clean` verifies the hash,
# then leaves the unpacked source under TMPDIR, from where the .py files are copied.
set -eu
req=$1
dest=$2
pip=${PIP:-pip}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
TMPDIR=$work "$pip" download --quiet --no-deps --no-clean --require-hashes \
    -r "$req" -d "$work/dl" >"$work/log" 2>&1 || true
# pip checks the sha256 before it unpacks, so an unpacked tree means the hash matched.
if grep -q "HASHES\|hash" "$work/log" || ! ls -d "$work"/pip-download-*/*/ >/dev/null 2>&1; then
    echo "error: could not download the packages in $req (see below)" >&2
    cat "$work/log" >&2
    exit 1
fi
found=0
for pkg in "$work"/pip-download-*/*/; do
    for dir in "$pkg"*/; do
        name=$(basename "$dir")
        case $name in *.egg-info) continue ;; esac
        if ls "$dir"*.py >/dev/null 2>&1; then
            mkdir -p "$dest/$name"
            cp "$dir"*.py "$dest/$name/"
            found=1
        fi
    done
done
[ $found = 1 ] || { echo "error: no MicroPython sources found in the download of $req" >&2; exit 1; }
echo "lib: installed $(cd "$dest" && find . -name '*.py' | sort | tr '\n' ' ')"
