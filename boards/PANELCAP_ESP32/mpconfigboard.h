// panelcap's ESP32 (mpconfigboard.cmake says why): a generic ESP32 module with ROMFS.
#define MICROPY_HW_BOARD_NAME "panelcap ESP32 DIN-rail"
#define MICROPY_HW_MCU_NAME "ESP32"

// Mounted at /rom at boot and put on sys.path (after the filesystem, which comes first).
#define MICROPY_VFS_ROM (1)
