/* test/train/st_compare.c — compare two checkpoints' model.safetensors tensor by tensor, for the parallel
 * suite: every tensor of A must be in B with the same shape and |a - b| <= atol + rtol |a| element-wise
 * (NaN and Inf never pass). Prints each tensor's largest difference and the worst over the model.
 * Tensors whose name contains LOOSE (optional) are held to LOOSE_ATOL instead: for parameters whose
 * gradient is zero in exact arithmetic (an attention key's bias: softmax ignores a shift shared by every
 * key), so that AdamW walks them by lr-sized steps of rounding noise in each run independently.
 * usage: st_compare A.safetensors B.safetensors ATOL RTOL [LOOSE LOOSE_ATOL]   (exit 0: within; 1: not) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/safetensors.h"

int main(int argc, char **argv)
{
    if (argc != 5 && argc != 7) {
        fprintf(stderr, "usage: %s A.safetensors B.safetensors ATOL RTOL [LOOSE LOOSE_ATOL]\n", argv[0]);
        return 2;
    }
    double atol0 = atof(argv[3]), rtol = atof(argv[4]), loose_atol = argc == 7 ? atof(argv[6]) : 0.0;
    const char *loose = argc == 7 ? argv[5] : NULL;
    double loose_worst = 0.0;
    kd_safetensors *a = kd_st_open(argv[1]), *b = kd_st_open(argv[2]);
    if (!a || !b) {
        fprintf(stderr, "st_compare: %s\n", kd_last_error());
        return 2;
    }
    int bad = 0;
    size_t elems = 0, differ = 0;
    double worst = 0.0;
    const char *worst_name = "-";
    for (size_t i = 0; i < a->count; i++) {
        const kd_st_entry *ea = &a->entries[i], *eb = kd_st_find(b, ea->name);
        if (!eb || kd_st_numel(ea) != kd_st_numel(eb) || ea->ndim != eb->ndim) {
            printf("MISMATCH %s: absent from B or another shape\n", ea->name);
            bad = 1;
            continue;
        }
        size_t n = (size_t)kd_st_numel(ea);
        float *x = malloc(n * sizeof *x + 1), *y = malloc(n * sizeof *y + 1);
        if (!x || !y || kd_st_read_f32(a, ea, x) != KD_OK || kd_st_read_f32(b, eb, y) != KD_OK) {
            printf("MISMATCH %s: unreadable (%s)\n", ea->name, kd_last_error());
            bad = 1;
            free(x);
            free(y);
            continue;
        }
        int is_loose = loose && strstr(ea->name, loose);
        double atol = is_loose ? loose_atol : atol0;
        double tmax = 0.0;
        size_t tbad = 0;
        for (size_t k = 0; k < n; k++) {
            double d = fabs((double)x[k] - (double)y[k]), tol = atol + rtol * fabs((double)x[k]);
            if (d > 0) differ++;
            if (!(d <= tol)) tbad++;   /* NaN fails */
            if (!(d <= tmax)) tmax = d;
        }
        elems += n;
        if (is_loose) {
            if (!(tmax <= loose_worst)) loose_worst = tmax;
        } else if (!(tmax <= worst)) {
            worst = tmax, worst_name = ea->name;
        }
        if (tbad) {
            printf("MISMATCH %s: %zu of %zu elements beyond %g + %g |a| (max |a - b| %.3e)\n", ea->name, tbad, n, atol,
                   rtol, tmax);
            bad = 1;
        }
        free(x);
        free(y);
    }
    if (b->count != a->count) {
        printf("MISMATCH: A has %zu tensors, B %zu\n", a->count, b->count);
        bad = 1;
    }
    printf("%s: %zu tensors, %zu elements, %zu differ; max |a - b| %.3e (%s); tolerance %g + %g |a|", bad ? "FAIL" : "ok",
           a->count, elems, differ, worst, worst_name, atol0, rtol);
    if (loose) printf("; *%s*: max %.3e, tolerance %g", loose, loose_worst, loose_atol);
    printf("\n");
    kd_st_close(a);
    kd_st_close(b);
    return bad;
}
