// romseg: a writable ROMFS segment for the stand-in board, so that `mpremote romfs deploy`
// writes the firmware's image to it as to the ESP32's romfs partition, and its bytecode then
// runs in place from there (tools/standin_board.py). The segment is this buffer, loaded from
// and saved to the file named by PANELCAP_ROMFS: the image outlives the stand-in's resets as
// the partition outlives the board's. Without the variable there is no segment, and nothing
// is mounted at /rom.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "py/mperrno.h"
#include "py/runtime.h"
#include "py/objarray.h"
#include "extmod/vfs.h"

#if MICROPY_VFS_ROM_IOCTL

// Twice the firmware's image today (~150 KB with the status page's framework).
#define ROMSEG_BYTES (512 * 1024)

static uint8_t romseg_buf[ROMSEG_BYTES] __attribute__((aligned(8)));
static const MP_DEFINE_MEMORYVIEW_OBJ(romseg_obj, 'B', 0, ROMSEG_BYTES, romseg_buf);
static bool romseg_loaded;
static size_t romseg_len;       // bytes the write in progress will fill

static const char *romseg_file(void) {
    const char *path = getenv("PANELCAP_ROMFS");
    return (path && *path) ? path : NULL;
}

// Erased flash reads 0xff; a segment that was never written holds no ROMFS header.
static void romseg_load(const char *path) {
    if (romseg_loaded) {
        return;
    }
    memset(romseg_buf, 0xff, ROMSEG_BYTES);
    FILE *f = fopen(path, "rb");
    if (f) {
        size_t n = fread(romseg_buf, 1, ROMSEG_BYTES, f);
        (void)n;
        fclose(f);
    }
    romseg_loaded = true;
}

// Written to a temporary file and renamed: a stand-in killed mid-save keeps the old image.
static int romseg_save(const char *path) {
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
        return -MP_EINVAL;
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        return -MP_EIO;
    }
    size_t n = fwrite(romseg_buf, 1, romseg_len, f);
    if (fclose(f) != 0 || n != romseg_len || rename(tmp, path) != 0) {
        remove(tmp);
        return -MP_EIO;
    }
    return 0;
}

mp_obj_t mp_vfs_rom_ioctl(size_t n_args, const mp_obj_t *args) {
    const char *path = romseg_file();
    mp_int_t cmd = mp_obj_get_int(args[0]);
    if (cmd == MP_VFS_ROM_IOCTL_GET_NUMBER_OF_SEGMENTS) {
        return MP_OBJ_NEW_SMALL_INT(path ? 1 : 0);
    }
    if (!path || n_args < 2 || mp_obj_get_int(args[1]) != 0) {
        return MP_OBJ_NEW_SMALL_INT(-MP_EINVAL);
    }
    romseg_load(path);
    switch (cmd) {
        case MP_VFS_ROM_IOCTL_GET_SEGMENT:
            return MP_OBJ_FROM_PTR(&romseg_obj);

        case MP_VFS_ROM_IOCTL_WRITE_PREPARE: {
            // rom_ioctl(3, id, length): erase what the image will occupy.
            mp_int_t len = n_args > 2 ? mp_obj_get_int(args[2]) : -1;
            if (len < 0 || len > ROMSEG_BYTES) {
                return MP_OBJ_NEW_SMALL_INT(-MP_EINVAL);
            }
            memset(romseg_buf, 0xff, ROMSEG_BYTES);
            romseg_len = len;
            return MP_OBJ_NEW_SMALL_INT(4);     // the smallest write, as a flash word
        }

        case MP_VFS_ROM_IOCTL_WRITE: {
            // rom_ioctl(4, id, offset, buf)
            if (n_args < 4) {
                return MP_OBJ_NEW_SMALL_INT(-MP_EINVAL);
            }
            mp_int_t offset = mp_obj_get_int(args[2]);
            mp_buffer_info_t buf;
            mp_get_buffer_raise(args[3], &buf, MP_BUFFER_READ);
            if (offset < 0 || (size_t)offset + buf.len > ROMSEG_BYTES) {
                return MP_OBJ_NEW_SMALL_INT(-MP_EINVAL);
            }
            memcpy(romseg_buf + offset, buf.buf, buf.len);
            if ((size_t)offset + buf.len > romseg_len) {
                romseg_len = offset + buf.len;
            }
            return MP_OBJ_NEW_SMALL_INT(0);
        }

        case MP_VFS_ROM_IOCTL_WRITE_COMPLETE:
            return MP_OBJ_NEW_SMALL_INT(romseg_save(path));
    }
    return MP_OBJ_NEW_SMALL_INT(-MP_EINVAL);
}

#endif
