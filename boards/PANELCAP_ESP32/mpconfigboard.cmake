# panelcap's ESP32: MicroPython's ESP32_GENERIC plus a romfs partition. `make deploy` writes
# the firmware's image there, and its code runs in place from flash instead of being loaded
# into the heap (the all-features figure drops from ~134 KB to ~81 KB: README.md, Memory).
set(IDF_TARGET esp32)

set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    ${SDKCONFIG_IDF_VERSION_SPECIFIC}
    boards/sdkconfig.ble
    ${MICROPY_BOARD_DIR}/sdkconfig.board
)
