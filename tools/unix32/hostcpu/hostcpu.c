// hostcpu: the CPU time this thread has run, for the simulator's ESP32 cost model
// (tools/panelsim/vtime.py). Wall time would charge the firmware for every moment the host
// gave its core to another process; the board has no such neighbours.
#include <time.h>

#include "py/runtime.h"
#include "py/smallint.h"

// thread_us(): microseconds of CPU time, wrapping like time.ticks_us (compare them with
// time.ticks_diff), so the value stays a small int on a 32-bit port.
static mp_obj_t hostcpu_thread_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    mp_uint_t us = (mp_uint_t)ts.tv_sec * 1000000 + (mp_uint_t)ts.tv_nsec / 1000;
    return MP_OBJ_NEW_SMALL_INT(us & (MICROPY_PY_TIME_TICKS_PERIOD - 1));
}
static MP_DEFINE_CONST_FUN_OBJ_0(hostcpu_thread_us_obj, hostcpu_thread_us);

static const mp_rom_map_elem_t hostcpu_module_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_hostcpu) },
    { MP_ROM_QSTR(MP_QSTR_thread_us), MP_ROM_PTR(&hostcpu_thread_us_obj) },
};
static MP_DEFINE_CONST_DICT(hostcpu_module_globals, hostcpu_module_globals_table);

const mp_obj_module_t hostcpu_user_cmodule = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&hostcpu_module_globals,
};

MP_REGISTER_MODULE(MP_QSTR_hostcpu, hostcpu_user_cmodule);
