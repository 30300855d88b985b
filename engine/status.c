/* engine/status.c — the thread-local last error. */
#include <stdarg.h>
#include <stdio.h>

#include "engine/status.h"

static _Thread_local char last_msg[1024];
static _Thread_local kd_status last_st;

kd_status kd_fail(kd_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_msg, sizeof last_msg, fmt, ap);
    va_end(ap);
    last_st = st;
    return st;
}

const char *kd_last_error(void) { return last_st == KD_OK ? "no error" : last_msg; }
kd_status kd_last_status(void) { return last_st; }

void kd_clear_error(void)
{
    last_st = KD_OK;
    last_msg[0] = '\0';
}

const char *kd_status_name(kd_status st)
{
    switch (st) {
    case KD_OK: return "ok";
    case KD_ERR_SHAPE: return "shape error";
    case KD_ERR_DTYPE: return "dtype error";
    case KD_ERR_INDEX: return "index error";
    case KD_ERR_ARG: return "bad argument";
    case KD_ERR_IO: return "i/o error";
    case KD_ERR_FORMAT: return "format error";
    case KD_ERR_NOMEM: return "out of memory";
    case KD_ERR_DEVICE: return "device error";
    case KD_ERR_STATE: return "state error";
    }
    return "unknown error";
}
