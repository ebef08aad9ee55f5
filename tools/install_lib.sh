#!/bin/sh
# Install hash-pinned MicroPython packages into lib/ for the unix port.
# One `pip download --no-deps --require-hashes` per requirement line: pip stops at the first
# legacy sdist it cannot build, and would never fetch the lines after it.
# An sdist (umqtt.simple): pip cannot build these, but `--no-clean` leaves the unpacked
# source under TMPDIR once the hash matched, from where the .py files are copied.
# A wheel (microdot): pip checks its hash as it saves it; the .py files are copied out of it.
set -eu
req=$1
dest=$2
pip=${PIP:-pip}
python=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
n=0
grep -v '^[[:space:]]*#' "$req" | grep -v '^[[:space:]]*$' | while IFS= read -r line; do
    n=$((n + 1))
    dir="$work/$n"
    mkdir -p "$dir/tmp"
    printf '%s\n' "$line" >"$dir/req.txt"
    TMPDIR=$dir/tmp "$pip" download --quiet --no-deps --no-clean --require-hashes \
        -r "$dir/req.txt" -d "$dir/dl" >"$dir/log" 2>&1 || true
    # pip checks the sha256 before it unpacks or saves, so an unpacked tree or a saved wheel
    # means the hash matched.
    if grep -q "HASHES\|hash" "$dir/log" || { ! ls -d "$dir"/tmp/pip-download-*/*/ \
            >/dev/null 2>&1 && ! ls "$dir"/dl/*.whl >/dev/null 2>&1; }; then
        echo "error: could not download ${line%% *} from $req (see below)" >&2
        cat "$dir/log" >&2
        exit 1
    fi
    for whl in "$dir"/dl/*.whl; do
        [ -e "$whl" ] || continue
        mkdir -p "$dir/tmp/wheel/unpacked"
        "$python" -m zipfile -e "$whl" "$dir/tmp/wheel/unpacked/"
        mkdir -p "$dir/tmp/pip-download-wheel"
        mv "$dir/tmp/wheel/unpacked" "$dir/tmp/pip-download-wheel/"
    done
    found=0
    for pkg in "$dir"/tmp/pip-download-*/*/; do
        for sub in "$pkg"*/; do
            name=$(basename "$sub")
            case $name in *.egg-info|*.dist-info) continue ;; esac
            if ls "$sub"*.py >/dev/null 2>&1; then
                rm -rf "${dest:?}/$name"
                mkdir -p "$dest/$name"
                cp "$sub"*.py "$dest/$name/"
                found=1
            fi
        done
    done
    [ $found = 1 ] || { echo "error: no MicroPython sources found in the download of ${line%% *}" >&2; exit 1; }
done
echo "lib: installed $(cd "$dest" && find . -name '*.py' | sort | tr '\n' ' ')"
