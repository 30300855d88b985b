/* engine/shutdown.c — the end of a program: the thread pool, the step arena and the devices released, so
 * leak checkers stay quiet. */
#include "engine/internal.h"

void kd_shutdown(void)
{
    kd_pool_shutdown();
    kd_arena_release();
    kd_device_shutdown();
}
