/* engine/device_transfer.c — tensors across devices (engine/device.h): copies to and from the host, moving
 * heap tensors, and the range check of ids where they are. */
#include <string.h>

#include "engine/device.h"
#include "engine/internal.h"

kd_tensor *kd_to(const kd_tensor *t, kd_device dev)
{
    if (!t) return NULL;
    const kd_tensor *src = t;
    if (!kd_is_contiguous(t)) {   /* gathered where it is first */
        kd_tensor *c = kd_empty_on(t->device, t->dtype, t->ndim, t->shape);
        if (!c || kd_copy_into(c, t) != KD_OK) return NULL;
        src = c;
    }
    kd_tensor *out = kd_empty_on(dev, t->dtype, t->ndim, t->shape);
    if (!out) return NULL;
    if (kd_dev_copy(dev, kd_data(out), src->device, kd_data(src), (size_t)kd_numel(t) * kd_dtype_size(t->dtype)) != KD_OK)
        return NULL;
    memcpy(out->name, t->name, sizeof out->name);
    return out;
}

kd_status kd_to_device(kd_tensor *t, kd_device dev)
{
    if (!t->persistent || !kd_is_contiguous(t) || t->offset != 0)
        return kd_fail(KD_ERR_ARG, "to_device: '%s' must be a contiguous heap tensor", t->name);
    if (t->grad) {
        kd_status st = kd_to_device(t->grad, dev);
        if (st != KD_OK) return st;
    }
    if (t->device == dev) return KD_OK;
    if (dev == KD_CUDA && t->dtype == KD_F64)
        return kd_fail(KD_ERR_DTYPE, "to_device: '%s' is f64; f64 tensors are CPU-only", t->name);
    kd_storage *s = t->storage;
    size_t n = s->nbytes ? s->nbytes : 1;
    void *data = kd_dev_alloc(dev, n);
    if (!data)
        return kd_fail(KD_ERR_NOMEM, "to_device: cannot allocate %zu bytes on %s for '%s'", n, kd_device_name(dev),
                       t->name);
    kd_status st = kd_dev_copy(dev, data, s->device, s->data, s->nbytes);
    if (st != KD_OK) {
        kd_dev_free(dev, data, n);
        return st;
    }
    kd_dev_free(s->device, s->data, n);
    s->data = data;
    s->device = dev;
    t->device = dev;
    kd_mark_modified(t);   /* forms made on the old device (packed panels, copies) are not for the new one */
    return KD_OK;
}

kd_status kd_to_host(const kd_tensor *t, void *dst)
{
    if (!kd_is_contiguous(t)) return kd_fail(KD_ERR_ARG, "to_host: '%s' is not contiguous", t->name);
    return kd_dev_copy(KD_CPU, dst, t->device, kd_data(t), (size_t)kd_numel(t) * kd_dtype_size(t->dtype));
}

kd_status kd_from_host(kd_tensor *t, const void *src)
{
    if (!kd_is_contiguous(t)) return kd_fail(KD_ERR_ARG, "from_host: '%s' is not contiguous", t->name);
    kd_mark_modified(t);
    return kd_dev_copy(t->device, kd_data(t), KD_CPU, src, (size_t)kd_numel(t) * kd_dtype_size(t->dtype));
}

kd_status kd_check_ids(const kd_tensor *ids, int64_t limit, const char *what)
{
    if (ids->dtype != KD_I32 || !kd_is_contiguous(ids))
        return kd_fail(KD_ERR_ARG, "%s: ids must be a contiguous i32 tensor", what);
    return kd_dev_check_ids(ids->device, kd_data(ids), kd_numel(ids), limit, what);
}
