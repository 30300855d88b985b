/* test/gpu/test_cuda_device_inputs.c — what the CUDA table reads from device memory instead of the host:
 * the upstream gradient of the loss backwards (kd_cross_entropy_args.upstream, kd_kl_div_args.upstream, one float on
 * the device) against the reference given the same value on the host, and the device-side index checks:
 * kd_cuda_check_ids and cross-entropy targets outside [0, cols) are skipped by the kernels and reported
 * by kd_cuda_sync() as KD_ERR_ARG naming the first bad entry, once; good input reports nothing. */
#include "test/gpu/gpu_test.h"

static const kd_kernels *ref, *cu;

static float *dup(const float *p, int64_t n)
{
    float *q = malloc((size_t)(n > 0 ? n : 1) * sizeof *q);
    if (!q) gt_die("malloc");
    memcpy(q, p, (size_t)n * sizeof *q);
    return q;
}

static int32_t *dev_ids(const int32_t *h, int64_t n)
{
    void *d = NULL;
    if (kd_cuda_malloc(&d, (size_t)n * sizeof *h) != KD_OK || kd_cuda_h2d(d, h, (size_t)n * sizeof *h) != KD_OK)
        gt_die("ids");
    return d;
}

static void test_upstream(void)
{
    const int64_t shapes[][2] = { { 1, 1 }, { 7, 33 }, { 64, 1000 }, { 300, 7 } };
    const float ups[] = { -1.7f, 3.0e-3f };
    for (int s = 0; s < 4; s++)
        for (int q = 0; q < 2; q++) {
            int64_t R = shapes[s][0], C = shapes[s][1], n = R * C;
            float u = ups[q];
            gt_buf up = gt_new(1, 0, u);
            int32_t *t = malloc((size_t)R * sizeof *t);
            if (!t) gt_die("malloc");
            for (int64_t i = 0; i < R; i++) t[i] = (int32_t)gt_randu((uint32_t)C);
            int32_t *dt = dev_ids(t, R);

            /* cross-entropy: forward on the reference gives lse for both backwards */
            gt_buf z = gt_new(n, 1, 0), lse = gt_new(R, 0, 0), dz = gt_new(n, 1, 0);
            float *wl = malloc((size_t)R * sizeof *wl), *wdz = dup(gt_h(&dz), n);
            if (!wl) gt_die("malloc");
            kd_cross_entropy_args h = { .rows = R, .cols = C, .logits = gt_h(&z), .targets = t, .loss = wl, .lse = gt_h(&lse),
                               .scale = 0.37, .upstream = &u, .dlogits = wdz };
            ref->cross_entropy(&h, 0, 1);
            ref->cross_entropy_bwd(&h, 0, 1);
            gt_push(&lse);
            kd_cross_entropy_args d = h;
            d.logits = gt_d(&z); d.targets = dt; d.loss = NULL; d.lse = gt_d(&lse); d.upstream = gt_d(&up);
            d.dlogits = gt_d(&dz);
            cu->cross_entropy_bwd(&d, 0, 1);
            char what[96];
            snprintf(what, sizeof what, "cross_entropy_bwd %lldx%lld upstream %g", (long long)R, (long long)C, u);
            gt_compare(&dz, wdz, gt_tol(C), gt_tol(C), what);

            /* KL: p a softmax with some exact zeros, log q a log-softmax; both gradients accumulate */
            gt_buf lq = gt_new(n, 1, 0), p = gt_new(n, 1, 0), dlq = gt_new(n, 1, 0), dp = gt_new(n, 1, 0);
            kd_softmax_args sp = { 0, R, C, gt_h(&p), gt_h(&p) }, sq = { 1, R, C, gt_h(&lq), gt_h(&lq) };
            ref->softmax(&sp, 0, 1);
            ref->softmax(&sq, 0, 1);
            for (int64_t i = 0; i < n; i += 5) gt_h(&p)[i] = 0.0f;
            gt_push(&p);
            gt_push(&lq);
            float *wdlq = dup(gt_h(&dlq), n), *wdp = dup(gt_h(&dp), n);
            kd_kl_div_args kh = { .rows = R, .cols = C, .logq = gt_h(&lq), .p = gt_h(&p), .scale = 0.8, .upstream = &u,
                              .dlogq = wdlq, .dp = wdp };
            ref->kl_div_bwd(&kh, 0, 1);
            kd_kl_div_args kd = kh;
            kd.logq = gt_d(&lq); kd.p = gt_d(&p); kd.upstream = gt_d(&up); kd.dlogq = gt_d(&dlq); kd.dp = gt_d(&dp);
            cu->kl_div_bwd(&kd, 0, 1);
            snprintf(what, sizeof what, "kl_div_bwd dlogq %lldx%lld upstream %g", (long long)R, (long long)C, u);
            gt_compare(&dlq, wdlq, 4 * FLT_EPSILON, 4 * FLT_EPSILON, what);
            snprintf(what, sizeof what, "kl_div_bwd dp %lldx%lld upstream %g", (long long)R, (long long)C, u);
            gt_compare(&dp, wdp, 16 * FLT_EPSILON * (1 + log((double)C + 1.0)), 16 * FLT_EPSILON, what);

            free(t); free(wl); free(wdz); free(wdlq); free(wdp);
            kd_cuda_free(dt);
            gt_free(&up); gt_free(&z); gt_free(&lse); gt_free(&dz);
            gt_free(&lq); gt_free(&p); gt_free(&dlq); gt_free(&dp);
        }
    CHECK(kd_cuda_status() == KD_OK, "no loss kernel reported an error: %s", kd_last_error());
}

/* kd_cuda_sync() fails with KD_ERR_ARG and a message containing `want` (and `also`, when not NULL); the
 * next sync is clean again. */
static void expect_sync_error(const char *want, const char *also, const char *what)
{
    kd_clear_error();
    kd_status st = kd_cuda_sync();
    const char *msg = kd_last_error();
    CHECK(st == KD_ERR_ARG, "%s: kd_cuda_sync gave %s, want KD_ERR_ARG", what, kd_status_name(st));
    CHECK(strstr(msg, want) != NULL, "%s: message \"%s\" lacks \"%s\"", what, msg, want);
    if (also) CHECK(strstr(msg, also) != NULL, "%s: message \"%s\" lacks \"%s\"", what, msg, also);
    printf("%s: %s\n", what, msg);
    CHECK(kd_cuda_sync() == KD_OK, "%s: the error is reported once, then cleared: %s", what, kd_last_error());
    CHECK(kd_cuda_status() == KD_OK, "%s: bad input is not a sticky device failure", what);
}

static void test_check_ids(void)
{
    const int64_t n = 4096, rows = 30522;
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    if (!ids) gt_die("malloc");
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)gt_randu((uint32_t)rows);
    ids[0] = 0;
    ids[1] = (int32_t)(rows - 1);
    int32_t *d = dev_ids(ids, n);

    CHECK(kd_cuda_check_ids(d, n, rows, "embedding") == KD_OK, "check_ids launch: %s", kd_last_error());
    CHECK(kd_cuda_sync() == KD_OK, "good ids (0 and rows-1 included) pass: %s", kd_last_error());

    ids[17] = 31000;
    int32_t *bad = dev_ids(ids, n);
    CHECK(kd_cuda_check_ids(bad, n, rows, "embedding") == KD_OK, "check_ids launch: %s", kd_last_error());
    expect_sync_error("embedding: id 31000 at position 17 is outside the table's 30522 rows", NULL, "one bad id");

    /* several bad ids: one of them is named, and the count says how many */
    ids[5] = -1;
    ids[900] = (int32_t)rows;
    int32_t *bad3 = dev_ids(ids, n);
    CHECK(kd_cuda_check_ids(bad3, n, rows, "embedding") == KD_OK, "check_ids launch: %s", kd_last_error());
    expect_sync_error("is outside the table's 30522 rows", "(3 bad entries in all)", "three bad ids");

    /* the first check that fails is the one reported, under its own name */
    CHECK(kd_cuda_check_ids(bad, n, 40000, "token type") == KD_OK, "check_ids launch");
    CHECK(kd_cuda_check_ids(bad, n, 512, "position") == KD_OK, "check_ids launch");
    CHECK(kd_cuda_check_ids(bad, n, rows, "embedding") == KD_OK, "check_ids launch");
    expect_sync_error("position: id ", "is outside the table's 512 rows", "first failing check");

    CHECK(kd_cuda_check_ids(NULL, n, rows, "embedding") == KD_ERR_ARG, "NULL ids is KD_ERR_ARG");
    CHECK(kd_cuda_check_ids(d, 0, rows, "embedding") == KD_OK, "no ids is fine");
    kd_clear_error();
    CHECK(kd_cuda_sync() == KD_OK, "nothing left over: %s", kd_last_error());
    free(ids);
    kd_cuda_free(d); kd_cuda_free(bad); kd_cuda_free(bad3);
}

/* A target outside [0, cols): the forward reports it, writes loss 0 for its row and the right loss for
 * every other row; the backward adds nothing to that row. */
static void test_bad_targets(void)
{
    const int64_t R = 6, C = 10, n = R * C;
    const int32_t bad_vals[] = { 10, -1 };
    for (int b = 0; b < 2; b++) {
        int32_t t[6] = { 3, 0, 9, 4, 7, 1 };
        int32_t tr[6];
        memcpy(tr, t, sizeof t);
        t[3] = bad_vals[b];
        int32_t *dt = dev_ids(t, R);
        gt_buf z = gt_new(n, 1, 0), loss = gt_new(R, 0, NAN), lse = gt_new(R, 0, NAN), dz = gt_new(n, 1, 0);
        float *wl = malloc((size_t)R * sizeof *wl), *wlse = malloc((size_t)R * sizeof *wlse), *wdz = dup(gt_h(&dz), n);
        if (!wl || !wlse) gt_die("malloc");
        kd_cross_entropy_args h = { .rows = R, .cols = C, .logits = gt_h(&z), .targets = tr, .loss = wl, .lse = wlse,
                           .scale = 0.5, .dlogits = wdz };
        ref->cross_entropy(&h, 0, 1);
        ref->cross_entropy_bwd(&h, 0, 1);
        wl[3] = 0.0f;                                           /* the skipped row */
        for (int64_t j = 0; j < C; j++) wdz[3 * C + j] = gt_h(&dz)[3 * C + j];
        kd_cross_entropy_args d = { .rows = R, .cols = C, .logits = gt_d(&z), .targets = dt, .loss = gt_d(&loss),
                           .lse = gt_d(&lse), .scale = 0.5, .dlogits = gt_d(&dz) };
        cu->cross_entropy(&d, 0, 1);
        char want[128];
        snprintf(want, sizeof want, "cross-entropy: target %d at row 3 is outside the 10 classes", bad_vals[b]);
        expect_sync_error(want, NULL, "bad target");
        gt_compare(&loss, wl, gt_tol(C) * 4, gt_tol(C), "cross_entropy loss beside a bad target");
        gt_compare(&lse, wlse, gt_tol(C) * 4, gt_tol(C), "cross_entropy lse beside a bad target");
        /* backward from the reference's lse, so only the skipping is tested */
        memcpy(gt_h(&lse), wlse, (size_t)R * sizeof(float));
        gt_push(&lse);
        cu->cross_entropy_bwd(&d, 0, 1);
        gt_compare(&dz, wdz, gt_tol(C), gt_tol(C), "cross_entropy dlogits beside a bad target");
        free(wl); free(wlse); free(wdz);
        kd_cuda_free(dt);
        gt_free(&z); gt_free(&loss); gt_free(&lse); gt_free(&dz);
    }
}

int main(void)
{
    gt_skip_without_gpu("test_cuda_device_inputs");
    ref = kd_kernels_ref_f32();
    cu = kd_kernels_cuda_f32();
    if (!cu) gt_die("kd_kernels_cuda_f32");
    test_upstream();
    test_check_ids();
    test_bad_targets();
    kd_cuda_shutdown();
    return kd_test_finish("test_cuda_device_inputs");
}
