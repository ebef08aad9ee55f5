#!/bin/sh
# Builds the MicroPython unix port 32-bit (the ESP32's word size) and a matching mpy-cross
# from the vendored source into build/unix32/. Where that cannot be done (not x86-64 Linux,
# no 32-bit C library and not root), says so in one line and leaves no binary: the tools
# then fall back to the 64-bit wheel and mark every memory figure as 64-bit.
set -eu
cd "$(dirname "$0")/.."
out=build/unix32
tarball=vendor/micropython-13303f8d29-unix-src.tar.xz
sha=d898ce7b582b007ada19548fc18006d7596e9141c05d0c386f21cdda975f076e
jobs=$(nproc 2>/dev/null || echo 2)

fallback() {
    echo "unix32: $1; falling back to the 64-bit unix port (.venv): memory figures will be 64-bit" >&2
    mkdir -p "$out" && rm -f "$out/micropython" "$out/mpy-cross"
    exit 0
}

[ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] || fallback "no 32-bit build on $(uname -s) $(uname -m)"
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo 'int main(void) { return sizeof(void *) != 4; }' > "$probe/p.c"
can_m32() { gcc -m32 -o "$probe/p" "$probe/p.c" >/dev/null 2>&1 && "$probe/p"; }
if ! can_m32; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-multilib >/dev/null
        echo "debs: installed gcc-multilib"
    fi
    can_m32 || fallback "gcc -m32 does not work (install gcc-multilib)"
fi
echo "$sha  $tarball" | sha256sum -c --quiet - || { echo "error: $tarball: sha256 mismatch" >&2; exit 1; }

src=build/unix32-src
rm -rf "$src" && mkdir -p "$src" "$out"
tar xJf "$tarball" -C "$src"
mp=$src/micropython
# The frozen-manifest check wants micropython-lib to exist; asyncio is frozen from extmod/,
# with its pure-Python task queue beside the C one: the simulator's virtual clock needs a
# queue that reads asyncio's tick source (the C queue reads the port's real ticks).
mkdir -p "$mp/lib/micropython-lib" && echo placeholder > "$mp/lib/micropython-lib/README.md"
cat > "$src/manifest.py" <<'MANIFEST'
include("$(MPY_DIR)/extmod/asyncio")
package("asyncio", ("task.py",), base_path="$(MPY_DIR)/extmod", opt=3)
MANIFEST
# The stand-in board's writable ROMFS segment (tools/unix32/romseg/) replaces the port's empty
# one, which only its coverage build enables: the same binary then takes `mpremote romfs deploy`.
common=$mp/ports/unix/variants/mpconfigvariant_common.h
sed -i 's/^#define MICROPY_VFS_ROM_IOCTL          (0)$/#define MICROPY_VFS_ROM_IOCTL          (1)/' "$common"
sed -i 's|^#if MICROPY_VFS_ROM_IOCTL$|#if 0 // replaced by tools/unix32/romseg|' "$mp/ports/unix/main.c"
grep -q '^#define MICROPY_VFS_ROM_IOCTL          (1)$' "$common" \
    && grep -q '^#if 0 // replaced by tools/unix32/romseg$' "$mp/ports/unix/main.c" \
    || { echo "error: the ROMFS segment patch no longer applies to $tarball" >&2; exit 1; }
log=$src/build.log
# The tarball has no .git: name the vendored commit, or the build would take this repo's.
export MICROPY_GIT_TAG=v1.29.0-preview MICROPY_GIT_HASH=13303f8d29 SOURCE_DATE_EPOCH=1783209600
echo "unix32: building MicroPython 32-bit from $tarball (log: $log)"
# mpy-cross first and alone: the port's variables would leak into it. MicroPython's own
# readline (MICROPY_USE_READLINE=1, no library needed) gives the REPL the raw mode mpremote
# drives the stand-in board through. tools/unix32/ adds the host's thread CPU clock, which
# the simulator's cost model reads (hostcpu.c), and the ROMFS segment (romseg.c).
make -C "$mp/mpy-cross" -j"$jobs" >"$log" 2>&1 || { tail -20 "$log" >&2; exit 1; }
make -C "$mp/ports/unix" -j"$jobs" VARIANT=standard CC="gcc -m32" LD="gcc -m32" \
    MICROPY_PY_BTREE=0 MICROPY_PY_SSL=0 MICROPY_PY_FFI=0 MICROPY_USE_READLINE=1 \
    FROZEN_MANIFEST="$PWD/$src/manifest.py" USER_C_MODULES="$PWD/tools/unix32" >>"$log" 2>&1 || { tail -20 "$log" >&2; exit 1; }
# Renamed into place: a running binary cannot be overwritten, but can be replaced.
for bin in "$mp/ports/unix/build-standard/micropython" "$mp/mpy-cross/build/mpy-cross"; do
    cp "$bin" "$out/.new" && mv -f "$out/.new" "$out/$(basename "$bin")"
done
bits=$("$out/micropython" -c "import sys; print(sys.maxsize)")
[ "$bits" = 2147483647 ] || { echo "error: $out/micropython is not 32-bit (sys.maxsize $bits)" >&2; exit 1; }
rm -rf "$src"
echo "unix32: $out/micropython (sys.maxsize $bits) and $out/mpy-cross"
