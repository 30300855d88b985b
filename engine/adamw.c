/* engine/adamw.c — the optimizer: AdamW state, the fused update (kd_k_adamw over each parameter's flat
 * array), gradient clipping and the state file. See adamw.h for the update rule. Everything runs where the
 * parameters are; nothing here reads a value back except the state file and a failed step's diagnosis. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/adamw.h"
#include "engine/device.h"
#include "engine/fileio.h"
#include "engine/internal.h"

static const char ADAMW_MAGIC[8] = { 'K', 'D', 'A', 'D', 'A', 'M', 'W', '1' };

kd_adamw_config kd_adamw_defaults(void)
{
    kd_adamw_config c = { .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01 };
    return c;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

int kd_adamw_decays(const char *name)
{
    /* Hugging Face's recipe: no_decay = ["bias", "LayerNorm.weight"]. */
    if (ends_with(name, "bias") || strstr(name, "LayerNorm") || strstr(name, "layer_norm")) return 0;
    return 1;
}

void kd_adamw_free(kd_adamw *o)
{
    if (!o) return;
    for (size_t i = 0; i < o->n; i++) {
        if (o->m) kd_tensor_free(o->m[i]);
        if (o->v) kd_tensor_free(o->v[i]);
    }
    free(o->m);
    free(o->v);
    free(o->decay);
    free(o->params);
    free(o);
}

kd_adamw *kd_adamw_new(kd_tensor *const *params, size_t n, const kd_adamw_config *cfg)
{
    kd_adamw *o = calloc(1, sizeof *o);
    if (!o) goto nomem;
    o->cfg = *cfg;
    o->n = n;
    o->params = calloc(n ? n : 1, sizeof *o->params);
    o->m = calloc(n ? n : 1, sizeof *o->m);
    o->v = calloc(n ? n : 1, sizeof *o->v);
    o->decay = calloc(n ? n : 1, 1);
    if (!o->params || !o->m || !o->v || !o->decay) goto nomem;
    for (size_t i = 0; i < n; i++) {
        kd_tensor *p = params[i];
        if (!p->persistent || !kd_is_contiguous(p) || (p->dtype != KD_F32 && p->dtype != KD_F64)) {
            kd_adamw_free(o);
            kd_fail(KD_ERR_ARG, "adamw: parameter '%s' must be a contiguous f32/f64 heap tensor", p->name);
            return NULL;
        }
        o->params[i] = p;
        /* The state lives where its parameter does (zeroed there). */
        o->m[i] = kd_param_on(p->device, p->dtype, p->ndim, p->shape, p->name);
        o->v[i] = kd_param_on(p->device, p->dtype, p->ndim, p->shape, p->name);
        if (!o->m[i] || !o->v[i]) goto nomem;
        o->m[i]->requires_grad = o->v[i]->requires_grad = 0;
        o->decay[i] = (unsigned char)kd_adamw_decays(p->name);
    }
    return o;
nomem:
    kd_adamw_free(o);
    kd_fail(KD_ERR_NOMEM, "adamw: out of memory for the optimizer state of %zu parameters", n);
    return NULL;
}

kd_status kd_adamw_step(kd_adamw *o, double lr)
{
    if (!(lr >= 0.0) || !isfinite(lr)) return kd_fail(KD_ERR_ARG, "adamw: learning rate %g, expected >= 0", lr);
    o->step++;
    double bias1 = 1.0 - pow(o->cfg.beta1, (double)o->step);
    double bias2 = 1.0 - pow(o->cfg.beta2, (double)o->step);
    for (size_t i = 0; i < o->n; i++) {
        kd_tensor *p = o->params[i];
        if (!p->grad) continue;
        kd_adamw_args a = { .n = kd_numel(p), .param = kd_data(p), .grad = kd_data(p->grad), .m = kd_data(o->m[i]),
                            .v = kd_data(o->v[i]), .lr = lr, .beta1 = o->cfg.beta1, .beta2 = o->cfg.beta2,
                            .eps = o->cfg.eps, .weight_decay = o->decay[i] ? o->cfg.weight_decay : 0.0,
                            .bias1 = bias1, .bias2 = bias2 };
        kd_k_adamw(p->device, p->dtype, &a);
        kd_mark_modified(p);   /* forms kept from the old values (eval's bf16 copies, packed panels) go */
    }
    return KD_OK;
}

/* The arguments of a map over n contiguous elements; b, when given, is read with stride 0 (one value for
 * all), and out_stride 0 makes the reduce sum everything into out[0]. */
static kd_map_args flat(int op, void *out, int64_t out_stride, const void *a, const void *b, int64_t n, double alpha)
{
    kd_map_args m;
    memset(&m, 0, sizeof m);
    m.op = op;
    m.ndim = 1;
    m.shape[0] = n;
    m.out = out;
    m.out_stride[0] = out_stride;
    m.a = a;
    m.a_stride[0] = 1;
    m.b = b;
    m.alpha = alpha;
    return m;
}

/* Per gradient, squares into a scratch tensor and their sum into one scalar; the clipping coefficient from
 * that scalar; every gradient times the coefficient (a broadcast multiply). All where the gradients are,
 * in the step arena. */
kd_status kd_clip_grad_norm(kd_tensor *const *params, size_t n, double max_norm, kd_tensor **norm_out)
{
    if (norm_out) *norm_out = NULL;
    kd_dtype dt = KD_F32;
    kd_device dev = KD_CPU;
    int64_t most = 0;
    for (size_t i = 0; i < n; i++)
        if (params[i]->grad) {
            dt = params[i]->grad->dtype;
            dev = params[i]->grad->device;
            if (kd_numel(params[i]->grad) > most) most = kd_numel(params[i]->grad);
        }
    kd_tensor *total = kd_zeros_on(dev, dt, 0, NULL), *sq = kd_empty_on(dev, dt, 1, &most);
    if (!total || !sq) return kd_last_status();
    for (size_t i = 0; i < n; i++) {
        kd_tensor *g = params[i]->grad;
        if (!g) continue;
        if (!kd_need_device("clip_grad_norm", params[i]->name, g, dev)) return kd_last_status();
        kd_map_args m = flat(KD_UN_SQUARE, kd_data(sq), 1, kd_data(g), NULL, kd_numel(g), 1.0);
        kd_k_unary(dev, dt, &m);
        kd_reduce_args r = flat(KD_UN_COPY, kd_data(total), 0, kd_data(sq), NULL, kd_numel(g), 1.0);   /* total += sum */
        kd_k_reduce(dev, dt, &r);
    }
    kd_tensor *coef = kd_empty_on(dev, dt, 0, NULL);
    if (!coef) return kd_last_status();
    kd_map_args c = flat(KD_UN_CLIP_COEF, kd_data(coef), 1, kd_data(total), NULL, 1, max_norm);
    kd_k_unary(dev, dt, &c);
    for (size_t i = 0; i < n; i++) {
        kd_tensor *g = params[i]->grad;
        if (!g) continue;
        kd_map_args m = flat(KD_BIN_MUL, kd_data(g), 1, kd_data(g), kd_data(coef), kd_numel(g), 0.0);   /* g *= coef */
        kd_k_binary(dev, dt, &m);
    }
    if (norm_out) {
        kd_tensor *norm = kd_empty_on(dev, dt, 0, NULL);
        if (!norm) return kd_last_status();
        c.op = KD_UN_SQRT;
        c.out = kd_data(norm);
        kd_k_unary(dev, dt, &c);
        *norm_out = norm;
    }
    return KD_OK;
}

kd_status kd_check_grad_norm(kd_tensor *const *params, size_t n, double norm)
{
    if (isfinite(norm)) return KD_OK;
    /* The run is stopping: read the gradients back to name the first that holds NaN or Inf. */
    for (size_t i = 0; i < n; i++) {
        const kd_tensor *g = params[i]->grad;
        if (!g || g->dtype != KD_F32) continue;
        int64_t k = kd_numel(g);
        float *h = malloc((size_t)(k ? k : 1) * sizeof *h);
        int bad = 0;
        if (h && kd_to_host(g, h) == KD_OK)
            for (int64_t j = 0; j < k && !bad; j++) bad = !isfinite(h[j]);
        free(h);
        if (bad) return kd_fail(KD_ERR_STATE, "gradient norm is %g: the gradient of '%s' holds NaN or Inf", norm, params[i]->name);
    }
    return kd_fail(KD_ERR_STATE, "gradient norm is %g (NaN or Inf)", norm);
}

kd_status kd_adamw_save(const kd_adamw *o, const char *path)
{
    kd_atomic_file af;
    kd_status st = kd_atomic_open(&af, path);
    if (st != KD_OK) return st;
    FILE *f = af.f;
    uint64_t hdr[2] = { (uint64_t)o->step, (uint64_t)o->n };
    int ok = fwrite(ADAMW_MAGIC, 1, 8, f) == 8 && fwrite(hdr, sizeof hdr, 1, f) == 1;
    for (size_t i = 0; ok && i < o->n; i++) {
        const kd_tensor *p = o->params[i];
        uint32_t namelen = (uint32_t)strlen(p->name);
        uint64_t meta[2] = { (uint64_t)kd_numel(p), (uint64_t)kd_dtype_size(p->dtype) };
        size_t bytes = (size_t)meta[0] * (size_t)meta[1];
        /* Through host copies, wherever the state lives. */
        void *m = malloc(bytes ? bytes : 1), *v = malloc(bytes ? bytes : 1);
        ok = m && v && kd_to_host(o->m[i], m) == KD_OK && kd_to_host(o->v[i], v) == KD_OK &&
             fwrite(&namelen, 4, 1, f) == 1 && fwrite(p->name, 1, namelen, f) == namelen &&
             fwrite(meta, sizeof meta, 1, f) == 1 && fwrite(m, 1, bytes, f) == bytes && fwrite(v, 1, bytes, f) == bytes;
        free(m);
        free(v);
    }
    if (!ok) {
        st = kd_fail(KD_ERR_IO, "%s: write failed: %s", af.tmp, strerror(errno));
        kd_atomic_abort(&af);
        return st;
    }
    return kd_atomic_commit(&af);
}

/* The first element where m is not finite or v is not a finite value >= 0 (what no AdamW step leaves, and
 * what would make every later step NaN), or -1. */
static int64_t first_bad_moment(kd_dtype dt, const void *m, const void *v, int64_t n)
{
    for (int64_t k = 0; k < n; k++) {
        double a, b;
        if (dt == KD_F64) {
            a = ((const double *)m)[k];
            b = ((const double *)v)[k];
        } else if (dt == KD_F32) {
            a = ((const float *)m)[k];
            b = ((const float *)v)[k];
        } else {
            return -1;
        }
        if (!isfinite(a) || !isfinite(b) || b < 0) return k;
    }
    return -1;
}

kd_status kd_adamw_load(kd_adamw *o, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return kd_fail(KD_ERR_IO, "%s: cannot open the optimizer state: %s", path, strerror(errno));
    char magic[8];
    uint64_t hdr[2];
    kd_status st = KD_OK;
    if (fread(magic, 1, 8, f) != 8 || memcmp(magic, ADAMW_MAGIC, 8) != 0 || fread(hdr, sizeof hdr, 1, f) != 1) {
        st = kd_fail(KD_ERR_FORMAT, "%s: not an optimizer state file (expected magic KDADAMW1)", path);
        goto done;
    }
    if (hdr[1] != o->n) {
        st = kd_fail(KD_ERR_FORMAT, "%s: holds %llu parameters, the model has %zu", path, (unsigned long long)hdr[1], o->n);
        goto done;
    }
    for (size_t i = 0; i < o->n; i++) {
        const kd_tensor *p = o->params[i];
        uint32_t namelen;
        char name[sizeof p->name];
        uint64_t meta[2];
        if (fread(&namelen, 4, 1, f) != 1 || namelen >= sizeof name || fread(name, 1, namelen, f) != namelen ||
            fread(meta, sizeof meta, 1, f) != 1) {
            st = kd_fail(KD_ERR_FORMAT, "%s: truncated at parameter %zu", path, i);
            goto done;
        }
        name[namelen] = '\0';
        if (strcmp(name, p->name) != 0 || meta[0] != (uint64_t)kd_numel(p) || meta[1] != kd_dtype_size(p->dtype)) {
            st = kd_fail(KD_ERR_FORMAT, "%s: parameter %zu is '%s' (%llu elements), expected '%s' (%lld elements)",
                         path, i, name, (unsigned long long)meta[0], p->name, (long long)kd_numel(p));
            goto done;
        }
        size_t bytes = (size_t)meta[0] * (size_t)meta[1];
        void *m = malloc(bytes ? bytes : 1), *v = malloc(bytes ? bytes : 1);
        int ok = m && v && fread(m, 1, bytes, f) == bytes && fread(v, 1, bytes, f) == bytes;
        int64_t bad = ok ? first_bad_moment(p->dtype, m, v, (int64_t)meta[0]) : -1;
        ok = ok && bad < 0 && kd_from_host(o->m[i], m) == KD_OK && kd_from_host(o->v[i], v) == KD_OK;
        free(m);
        free(v);
        if (bad >= 0) {
            st = kd_fail(KD_ERR_FORMAT, "%s: the state of '%s' at element %lld is not finite or has v < 0 (expected "
                                        "finite m and finite v >= 0, as AdamW leaves them)", path, name, (long long)bad);
            goto done;
        }
        if (!ok) {
            st = kd_fail(KD_ERR_FORMAT, "%s: truncated in the state of '%s'", path, name);
            goto done;
        }
    }
    if (fgetc(f) != EOF) {
        st = kd_fail(KD_ERR_FORMAT, "%s: %ld bytes of the state of %zu parameters, then more: trailing data (expected "
                                    "the file to end there)", path, ftell(f) - 1, o->n);
        goto done;
    }
    if (hdr[0] > (uint64_t)INT64_MAX) {
        st = kd_fail(KD_ERR_FORMAT, "%s: step count %llu out of range", path, (unsigned long long)hdr[0]);
        goto done;
    }
    o->step = (int64_t)hdr[0];
done:
    fclose(f);
    return st;
}
