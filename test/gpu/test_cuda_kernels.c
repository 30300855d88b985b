/* test/gpu/test_cuda_kernels.c — every kernel of kd_kernels_cuda_f32() except GEMM (test_cuda_gemm.c)
 * against kd_kernels_ref_f32() on fresh random inputs at many shapes, odd sizes included. Outputs that are
 * overwritten are poisoned with NaN first; accumulated outputs start random; every buffer sits between
 * guard zones. Tolerances: f32 epsilon scaled by the reduction length (gt_tol). Exits 77 without a GPU. */
#include "test/gpu/gpu_test.h"

static const kd_kernels *ref, *cu;

static float *dup(const float *p, int64_t n)
{
    float *q = malloc((size_t)(n > 0 ? n : 1) * sizeof *q);
    if (!q) gt_die("malloc");
    memcpy(q, p, (size_t)n * sizeof *q);
    return q;
}

static void test_maps(void)
{
    /* shape [5, 7, 9]; out contiguous; a transposed on its last two dims; b broadcast along dim 1. */
    const int64_t shp[3] = { 5, 7, 9 }, n = 5 * 7 * 9;
    for (int acc = 0; acc < 2; acc++) {
        for (int op = KD_UN_COPY; op <= KD_UN_ADD_SCALAR; op++) {
            gt_buf a = gt_new(n, 1, 0), out = gt_new(n, acc, NAN);
            if (op == KD_UN_LOG)
                for (int64_t i = 0; i < n; i++) gt_h(&a)[i] = fabsf(gt_h(&a)[i]) + 0.1f;
            gt_push(&a);
            kd_map_args m;
            memset(&m, 0, sizeof m);
            m.op = op; m.accumulate = acc; m.ndim = 3; m.alpha = 0.7;
            memcpy(m.shape, shp, sizeof shp);
            m.out_stride[0] = 63; m.out_stride[1] = 9; m.out_stride[2] = 1;
            m.a_stride[0] = 63; m.a_stride[1] = 1; m.a_stride[2] = 7;
            float *want = dup(gt_h(&out), n);
            m.a = gt_h(&a); m.out = want;
            ref->unary(&m, 0, 1);
            m.a = gt_d(&a); m.out = gt_d(&out);
            cu->unary(&m, 0, 1);
            char what[64];
            snprintf(what, sizeof what, "unary op %d acc %d", op, acc);
            gt_compare(&out, want, 16 * FLT_EPSILON, 16 * FLT_EPSILON, what);
            free(want); gt_free(&a); gt_free(&out);
        }
        for (int op = KD_BIN_ADD; op <= KD_BIN_TANH_BWD; op++) {
            gt_buf a = gt_new(n, 1, 0), b = gt_new(5 * 9, 1, 0), out = gt_new(n, acc, NAN);
            if (op == KD_BIN_DIV)
                for (int64_t i = 0; i < 45; i++) gt_h(&b)[i] = gt_h(&b)[i] >= 0 ? gt_h(&b)[i] + 0.5f : gt_h(&b)[i] - 0.5f;
            gt_push(&b);
            kd_map_args m;
            memset(&m, 0, sizeof m);
            m.op = op; m.accumulate = acc; m.ndim = 3;
            memcpy(m.shape, shp, sizeof shp);
            m.out_stride[0] = 63; m.out_stride[1] = 9; m.out_stride[2] = 1;
            m.a_stride[0] = 63; m.a_stride[1] = 9; m.a_stride[2] = 1;
            m.b_stride[0] = 9; m.b_stride[1] = 0; m.b_stride[2] = 1;
            float *want = dup(gt_h(&out), n);
            m.a = gt_h(&a); m.b = gt_h(&b); m.out = want;
            ref->binary(&m, 0, 1);
            m.a = gt_d(&a); m.b = gt_d(&b); m.out = gt_d(&out);
            cu->binary(&m, 0, 1);
            char what[64];
            snprintf(what, sizeof what, "binary op %d acc %d", op, acc);
            gt_compare(&out, want, 16 * FLT_EPSILON, 16 * FLT_EPSILON, what);
            free(want); gt_free(&a); gt_free(&b); gt_free(&out);
        }
    }
    /* Reductions: [37, 65] summed over rows (bias gradient) and over columns; [3, 1, 4097] over the last. */
    const int64_t rs[3][2] = { { 37, 65 }, { 37, 65 }, { 3, 4097 } };
    for (int c = 0; c < 3; c++) {
        int64_t R = rs[c][0], C = rs[c][1], on = c == 0 ? C : R;
        gt_buf a = gt_new(R * C, 1, 0), out = gt_new(on, 1, 0);
        kd_reduce_args m;
        memset(&m, 0, sizeof m);
        m.ndim = 2; m.alpha = 0.5;
        m.shape[0] = R; m.shape[1] = C;
        m.a_stride[0] = C; m.a_stride[1] = 1;
        m.out_stride[0] = c == 0 ? 0 : 1;
        m.out_stride[1] = c == 0 ? 1 : 0;
        float *want = dup(gt_h(&out), on);
        m.a = gt_h(&a); m.out = want;
        ref->reduce(&m, 0, 1);
        m.a = gt_d(&a); m.out = gt_d(&out);
        cu->reduce(&m, 0, 1);
        int64_t len = c == 0 ? R : C;
        gt_compare(&out, want, gt_tol(len) * sqrt((double)len), gt_tol(len), "reduce");
        free(want); gt_free(&a); gt_free(&out);
    }
}

static const int64_t row_shapes[][2] = { { 1, 1 }, { 3, 7 }, { 17, 129 }, { 64, 768 }, { 5, 1000 }, { 2, 3001 }, { 33, 32 } };
#define NSHAPES (int)(sizeof row_shapes / sizeof *row_shapes)

static void test_softmax(void)
{
    for (int s = 0; s < NSHAPES; s++) {
        int64_t R = row_shapes[s][0], C = row_shapes[s][1], n = R * C;
        for (int lg = 0; lg < 2; lg++) {
            gt_buf x = gt_new(n, 1, 0), y = gt_new(n, 0, NAN);
            for (int64_t i = 0; i < n; i++) gt_h(&x)[i] *= 3.0f;
            if (C > 4) gt_h(&x)[1] = -INFINITY; /* a masked entry */
            gt_push(&x);
            kd_softmax_args a = { lg, R, C, gt_h(&x), NULL };
            float *want = dup(gt_h(&y), n);
            a.y = want;
            ref->softmax(&a, 0, 1);
            a.x = gt_d(&x); a.y = gt_d(&y);
            cu->softmax(&a, 0, 1);
            char what[64];
            snprintf(what, sizeof what, "%ssoftmax %lldx%lld", lg ? "log-" : "", (long long)R, (long long)C);
            if (C > 4) {
                /* log-softmax of a masked entry is -inf on both sides: compare the rest */
                float *got = gt_pull(&y, what);
                if (lg) CHECK(isinf(got[GT_GUARD + 1]) && got[GT_GUARD + 1] < 0, "%s: masked entry gives -inf", what);
                else CHECK(got[GT_GUARD + 1] == 0.0f, "%s: masked entry gives 0", what);
                free(got);
            }
            float *got = gt_pull(&y, what);
            int64_t bad = 0;
            for (int64_t i = 0; i < n; i++) {
                if (C > 4 && i == 1) continue;
                if (!kd_close(got[GT_GUARD + i], want[i], gt_tol(C), gt_tol(C))) bad++;
            }
            CHECK(bad == 0, "%s: %lld values off", what, (long long)bad);
            free(got);

            /* backward, accumulating into random dx; y from the reference forward (masked entry cleared) */
            gt_buf yy = gt_new(n, 0, 0), dy = gt_new(n, 1, 0), dx = gt_new(n, 1, 0);
            kd_softmax_args f = { lg, R, C, gt_h(&x), gt_h(&yy) };
            for (int64_t i = 0; i < n; i++) gt_h(&x)[i] = gt_h(&x)[i] == -INFINITY ? 0.0f : gt_h(&x)[i];
            ref->softmax(&f, 0, 1);
            gt_push(&yy);
            kd_softmax_bwd_args b = { lg, R, C, gt_h(&yy), gt_h(&dy), NULL };
            float *wdx = dup(gt_h(&dx), n);
            b.dx = wdx;
            ref->softmax_bwd(&b, 0, 1);
            b.y = gt_d(&yy); b.dy = gt_d(&dy); b.dx = gt_d(&dx);
            cu->softmax_bwd(&b, 0, 1);
            snprintf(what, sizeof what, "%ssoftmax_bwd %lldx%lld", lg ? "log-" : "", (long long)R, (long long)C);
            gt_compare(&dx, wdx, gt_tol(C) * (lg ? sqrt((double)C) : 1.0), gt_tol(C), what);
            free(want); free(wdx);
            gt_free(&x); gt_free(&y); gt_free(&yy); gt_free(&dy); gt_free(&dx);
        }
    }
}

static void test_layernorm(void)
{
    for (int s = 0; s < NSHAPES; s++) {
        int64_t R = row_shapes[s][0], C = row_shapes[s][1], n = R * C;
        for (int affine = 0; affine < 2; affine++) {
            gt_buf x = gt_new(n, 1, 0), g = gt_new(C, 1, 0), bt = gt_new(C, 1, 0);
            gt_buf y = gt_new(n, 0, NAN), mu = gt_new(R, 0, NAN), rs = gt_new(R, 0, NAN);
            for (int64_t i = 0; i < n; i++) gt_h(&x)[i] = gt_h(&x)[i] * 2.0f + 3.0f; /* nonzero mean */
            gt_push(&x);
            float *wy = dup(gt_h(&y), n), *wm = dup(gt_h(&mu), R), *wr = dup(gt_h(&rs), R);
            kd_layernorm_args a = { R, C, 1e-5, gt_h(&x), affine ? gt_h(&g) : NULL, affine ? gt_h(&bt) : NULL, wy, wm, wr };
            ref->layernorm(&a, 0, 1);
            kd_layernorm_args d = { R, C, 1e-5, gt_d(&x), affine ? gt_d(&g) : NULL, affine ? gt_d(&bt) : NULL,
                                    gt_d(&y), gt_d(&mu), gt_d(&rs) };
            cu->layernorm(&d, 0, 1);
            double t = gt_tol(C);
            gt_compare(&y, wy, 4 * t, 4 * t, "layernorm y");
            gt_compare(&mu, wm, 4 * t, t, "layernorm mean");
            gt_compare(&rs, wr, t, 4 * t, "layernorm rstd");

            /* backward with the reference's saved mean/rstd; dx, dgamma, dbeta accumulate into random */
            memcpy(gt_h(&mu), wm, (size_t)R * sizeof(float));
            memcpy(gt_h(&rs), wr, (size_t)R * sizeof(float));
            gt_push(&mu);
            gt_push(&rs);
            gt_buf dy = gt_new(n, 1, 0), dx = gt_new(n, 1, 0), dg = gt_new(C, 1, 0), db = gt_new(C, 1, 0);
            float *wdx = dup(gt_h(&dx), n), *wdg = dup(gt_h(&dg), C), *wdb = dup(gt_h(&db), C);
            kd_layernorm_bwd_args b = { R, C, gt_h(&x), gt_h(&mu), gt_h(&rs), affine ? gt_h(&g) : NULL, gt_h(&dy),
                                        wdx, wdg, wdb };
            ref->layernorm_bwd(&b, 0, 1);
            kd_layernorm_bwd_args e = { R, C, gt_d(&x), gt_d(&mu), gt_d(&rs), affine ? gt_d(&g) : NULL, gt_d(&dy),
                                        gt_d(&dx), gt_d(&dg), gt_d(&db) };
            cu->layernorm_bwd(&e, 0, 1);
            gt_compare(&dx, wdx, 8 * t, 8 * t, "layernorm dx");
            gt_compare(&dg, wdg, gt_tol(R) * sqrt((double)R) * 2, gt_tol(R), "layernorm dgamma");
            gt_compare(&db, wdb, gt_tol(R) * sqrt((double)R) * 2, gt_tol(R), "layernorm dbeta");
            free(wy); free(wm); free(wr); free(wdx); free(wdg); free(wdb);
            gt_free(&x); gt_free(&g); gt_free(&bt); gt_free(&y); gt_free(&mu); gt_free(&rs);
            gt_free(&dy); gt_free(&dx); gt_free(&dg); gt_free(&db);
        }
    }
}

static void test_embedding(void)
{
    const int64_t cases[][3] = { { 1, 1, 5 }, { 37, 129, 11 }, { 512, 768, 300 }, { 64, 13, 3 } }; /* n, dim, vocab */
    for (int c = 0; c < 4; c++) {
        int64_t n = cases[c][0], dim = cases[c][1], vocab = cases[c][2];
        int32_t *ids = malloc((size_t)n * sizeof *ids);
        for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)gt_randu((uint32_t)vocab); /* repeats likely */
        void *dids = NULL;
        if (kd_cuda_malloc(&dids, (size_t)n * sizeof *ids) != KD_OK || kd_cuda_h2d(dids, ids, (size_t)n * sizeof *ids) != KD_OK)
            gt_die("ids");
        gt_buf tab = gt_new(vocab * dim, 1, 0), out = gt_new(n * dim, 0, NAN);
        gt_buf dout = gt_new(n * dim, 1, 0), dtab = gt_new(vocab * dim, 1, 0);
        float *wout = dup(gt_h(&out), n * dim), *wdt = dup(gt_h(&dtab), vocab * dim);
        kd_embedding_args h = { n, dim, vocab, ids, gt_h(&tab), wout, wdt, gt_h(&dout) };
        ref->embedding(&h, 0, 1);
        ref->embedding_bwd(&h, 0, 1);
        kd_embedding_args d = { n, dim, vocab, dids, gt_d(&tab), gt_d(&out), gt_d(&dtab), gt_d(&dout) };
        cu->embedding(&d, 0, 1);
        cu->embedding_bwd(&d, 0, 1);
        gt_compare(&out, wout, 0, 0, "embedding");
        gt_compare(&dtab, wdt, gt_tol(n) * 4, gt_tol(n), "embedding_bwd");
        free(ids); free(wout); free(wdt);
        kd_cuda_free(dids);
        gt_free(&tab); gt_free(&out); gt_free(&dout); gt_free(&dtab);
    }
}

static void test_dropout(void)
{
    const int64_t ns[] = { 1, 3, 1001, 65537 };
    const uint64_t offs[] = { 0, 1, 3, 1000003 };
    const double ps[] = { 0.0, 0.1, 0.5 };
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++)
            for (int acc = 0; acc < 2; acc++) {
                int64_t n = ns[i];
                gt_buf x = gt_new(n, 1, 0), out = gt_new(n, acc, NAN);
                float *want = dup(gt_h(&out), n);
                kd_dropout_args h = { n, ps[j], 0x5eedull + (uint64_t)i, offs[i], acc, gt_h(&x), want };
                ref->dropout(&h, 0, 1);
                kd_dropout_args d = h;
                d.x = gt_d(&x); d.out = gt_d(&out);
                cu->dropout(&d, 0, 1);
                float *got = gt_pull(&out, "dropout");
                /* same keep decisions exactly: a dropped element is exactly x*0 (+ the accumulator) */
                int64_t bad = 0, diff_keep = 0;
                for (int64_t k = 0; k < n; k++) {
                    float g = got[GT_GUARD + k], w = want[k];
                    float base = acc ? gt_h(&out)[k] : 0.0f;
                    if ((g == base) != (w == base)) diff_keep++;
                    if (!kd_close(g, w, 4 * FLT_EPSILON, 4 * FLT_EPSILON)) bad++;
                }
                CHECK(diff_keep == 0 && bad == 0, "dropout n %lld p %.1f offset %llu acc %d: %lld keep decisions differ, %lld values off",
                      (long long)n, ps[j], (unsigned long long)offs[i], acc, (long long)diff_keep, (long long)bad);
                free(got); free(want); gt_free(&x); gt_free(&out);
            }
}

static void test_losses(void)
{
    for (int s = 0; s < NSHAPES; s++) {
        int64_t R = row_shapes[s][0], C = row_shapes[s][1], n = R * C;
        int32_t *t = malloc((size_t)R * sizeof *t);
        for (int64_t i = 0; i < R; i++) t[i] = (int32_t)gt_randu((uint32_t)C);
        void *dt = NULL;
        if (kd_cuda_malloc(&dt, (size_t)R * sizeof *t) != KD_OK || kd_cuda_h2d(dt, t, (size_t)R * sizeof *t) != KD_OK)
            gt_die("targets");
        gt_buf z = gt_new(n, 1, 0), loss = gt_new(R, 0, NAN), lse = gt_new(R, 0, NAN), dz = gt_new(n, 1, 0);
        float *wl = dup(gt_h(&loss), R), *wlse = dup(gt_h(&lse), R), *wdz = dup(gt_h(&dz), n);
        kd_cross_entropy_args h = { R, C, gt_h(&z), t, wl, wlse, 0.37, NULL, wdz };
        ref->cross_entropy(&h, 0, 1);
        ref->cross_entropy_bwd(&h, 0, 1);
        kd_cross_entropy_args d = { R, C, gt_d(&z), dt, gt_d(&loss), gt_d(&lse), 0.37, NULL, gt_d(&dz) };
        cu->cross_entropy(&d, 0, 1);
        gt_compare(&loss, wl, gt_tol(C) * 4, gt_tol(C), "cross_entropy loss");
        gt_compare(&lse, wlse, gt_tol(C) * 4, gt_tol(C), "cross_entropy lse");
        /* backward from the reference's lse, so the test isolates the backward */
        memcpy(gt_h(&lse), wlse, (size_t)R * sizeof(float));
        gt_push(&lse);
        cu->cross_entropy_bwd(&d, 0, 1);
        gt_compare(&dz, wdz, gt_tol(C), gt_tol(C), "cross_entropy dlogits");

        /* KL: p a softmax with some exact zeros, log q a log-softmax */
        gt_buf lq = gt_new(n, 1, 0), p = gt_new(n, 1, 0), out = gt_new(R, 0, NAN);
        gt_buf dlq = gt_new(n, 1, 0), dp = gt_new(n, 1, 0);
        kd_softmax_args sp = { 0, R, C, gt_h(&p), gt_h(&p) }, sq = { 1, R, C, gt_h(&lq), gt_h(&lq) };
        ref->softmax(&sp, 0, 1);
        ref->softmax(&sq, 0, 1);
        for (int64_t i = 0; i < n; i += 5) gt_h(&p)[i] = 0.0f;
        gt_push(&p);
        gt_push(&lq);
        float *wo = dup(gt_h(&out), R), *wdlq = dup(gt_h(&dlq), n), *wdp = dup(gt_h(&dp), n);
        kd_kl_div_args kh = { R, C, gt_h(&lq), gt_h(&p), wo, 0.8, NULL, wdlq, wdp };
        ref->kl_div(&kh, 0, 1);
        ref->kl_div_bwd(&kh, 0, 1);
        kd_kl_div_args kdv = { R, C, gt_d(&lq), gt_d(&p), gt_d(&out), 0.8, NULL, gt_d(&dlq), gt_d(&dp) };
        cu->kl_div(&kdv, 0, 1);
        cu->kl_div_bwd(&kdv, 0, 1);
        double kt = gt_tol(C) * (4.0 + log((double)C + 1.0));
        gt_compare(&out, wo, kt, kt, "kl_div");
        gt_compare(&dlq, wdlq, 4 * FLT_EPSILON, 4 * FLT_EPSILON, "kl_div dlogq");
        gt_compare(&dp, wdp, 16 * FLT_EPSILON * (1 + log((double)C + 1.0)), 16 * FLT_EPSILON, "kl_div dp");
        free(t); kd_cuda_free(dt);
        free(wl); free(wlse); free(wdz); free(wo); free(wdlq); free(wdp);
        gt_free(&z); gt_free(&loss); gt_free(&lse); gt_free(&dz);
        gt_free(&lq); gt_free(&p); gt_free(&out); gt_free(&dlq); gt_free(&dp);
    }
}

static void test_adamw(void)
{
    const int64_t ns[] = { 1, 7, 100003 };
    for (int i = 0; i < 3; i++) {
        int64_t n = ns[i];
        gt_buf w = gt_new(n, 1, 0), g = gt_new(n, 1, 0), m = gt_new(n, 1, 0), v = gt_new(n, 1, 0);
        for (int64_t k = 0; k < n; k++) gt_h(&v)[k] = fabsf(gt_h(&v)[k]) * 0.01f; /* a second moment is >= 0 */
        gt_push(&v);
        float *ww = dup(gt_h(&w), n), *wm = dup(gt_h(&m), n), *wv = dup(gt_h(&v), n);
        kd_adamw_args h = { n, ww, gt_h(&g), wm, wv, 1e-3, 0.9, 0.999, 1e-8, 0.01, 1 - pow(0.9, 3), 1 - pow(0.999, 3) };
        ref->adamw(&h, 0, 1);
        kd_adamw_args d = h;
        d.param = gt_d(&w); d.grad = gt_d(&g); d.m = gt_d(&m); d.v = gt_d(&v);
        cu->adamw(&d, 0, 1);
        gt_compare(&w, ww, 16 * FLT_EPSILON, 16 * FLT_EPSILON, "adamw param");
        gt_compare(&m, wm, 8 * FLT_EPSILON, 8 * FLT_EPSILON, "adamw m");
        gt_compare(&v, wv, 8 * FLT_EPSILON, 8 * FLT_EPSILON, "adamw v");
        free(ww); free(wm); free(wv);
        gt_free(&w); gt_free(&g); gt_free(&m); gt_free(&v);
    }
}

static void test_attention(void)
{
    /* batch, heads, tq, tk, dim, dropout */
    const int64_t cases[][5] = { { 1, 1, 1, 1, 1 }, { 2, 3, 5, 7, 16 }, { 2, 2, 33, 65, 64 } };
    for (int c = 0; c < 3; c++) {
        for (int drop = 0; drop < 2; drop++) {
            int64_t B = cases[c][0], H = cases[c][1], TQ = cases[c][2], TK = cases[c][3], D = cases[c][4];
            int64_t nq = B * TQ * H * D, nk = B * TK * H * D;
            gt_buf q = gt_new(nq, 1, 0), k = gt_new(nk, 1, 0), v = gt_new(nk, 1, 0), o = gt_new(nq, 0, NAN);
            gt_buf mask = gt_new(B * TK, 0, 0.0f), lse = gt_new(B * H * TQ, 0, NAN);
            if (TK > 2) {
                gt_h(&mask)[TK - 1] = -INFINITY; /* batch 0's last key is padding */
                gt_push(&mask);
            }
            gt_buf dO = gt_new(nq, 1, 0), dq = gt_new(nq, 1, 0), dk = gt_new(nk, 1, 0), dv = gt_new(nk, 1, 0);
            float *wo = dup(gt_h(&o), nq), *wl = dup(gt_h(&lse), B * H * TQ);
            float *wdq = dup(gt_h(&dq), nq), *wdk = dup(gt_h(&dk), nk), *wdv = dup(gt_h(&dv), nk);
            kd_attention_args h;
            memset(&h, 0, sizeof h);
            h.batch = B; h.heads = H; h.tq = TQ; h.tk = TK; h.dim = D;
            h.q_sb = TQ * H * D; h.q_st = H * D; h.q_sh = D;
            h.k_sb = h.v_sb = TK * H * D; h.k_st = h.v_st = H * D; h.k_sh = h.v_sh = D;
            h.o_sb = h.q_sb; h.o_st = h.q_st; h.o_sh = h.q_sh;
            h.mask_sb = TK;
            h.scale = 1.0 / sqrt((double)D);
            h.dropout_p = drop ? 0.2 : 0.0;
            h.seed = 99; h.offset = 17;
            kd_attention_args d = h;
            h.q = gt_h(&q); h.k = gt_h(&k); h.v = gt_h(&v); h.o = wo; h.mask = gt_h(&mask); h.lse = wl;
            h.d_o = gt_h(&dO); h.dq = wdq; h.dk = wdk; h.dv = wdv;
            ref->attention(&h, 0, 1);
            ref->attention_bwd(&h, 0, 1);
            d.q = gt_d(&q); d.k = gt_d(&k); d.v = gt_d(&v); d.o = gt_d(&o); d.mask = gt_d(&mask); d.lse = gt_d(&lse);
            d.d_o = gt_d(&dO); d.dq = gt_d(&dq); d.dk = gt_d(&dk); d.dv = gt_d(&dv);
            cu->attention(&d, 0, 1);
            cu->attention_bwd(&d, 0, 1);
            double t = gt_tol(TK * D) * 4;
            gt_compare(&o, wo, t, t, "attention o");
            gt_compare(&lse, wl, t, t, "attention lse");
            gt_compare(&dq, wdq, t * 4, t, "attention dq");
            gt_compare(&dk, wdk, t * 4, t, "attention dk");
            gt_compare(&dv, wdv, t * 4, t, "attention dv");
            free(wo); free(wl); free(wdq); free(wdk); free(wdv);
            gt_free(&q); gt_free(&k); gt_free(&v); gt_free(&o); gt_free(&mask); gt_free(&lse);
            gt_free(&dO); gt_free(&dq); gt_free(&dk); gt_free(&dv);
        }
    }
}

static void test_runtime(void)
{
    kd_cuda_arena a;
    CHECK(kd_cuda_arena_init(&a, 1 << 20) == KD_OK, "arena of 1 MiB");
    void *p1 = NULL, *p2 = NULL, *p3 = NULL;
    CHECK(kd_cuda_arena_alloc(&a, 100, &p1) == KD_OK && kd_cuda_arena_alloc(&a, 1000, &p2) == KD_OK,
          "two arena blocks");
    CHECK(((uintptr_t)p1 % 256) == 0 && ((uintptr_t)p2 % 256) == 0 && (char *)p2 - (char *)p1 == 256,
          "arena blocks are 256-byte aligned and packed");
    CHECK(kd_cuda_arena_alloc(&a, 2 << 20, &p3) == KD_ERR_NOMEM && p3 == NULL, "over-capacity request fails");
    CHECK(strstr(kd_last_error(), "arena") != NULL, "the message names the arena: %s", kd_last_error());
    kd_cuda_arena_reset(&a);
    CHECK(kd_cuda_arena_alloc(&a, 1 << 20, &p3) == KD_OK && p3 == p1, "after reset the whole arena is free again");
    /* round trip through the arena memory */
    float h[1000], back[1000];
    for (int i = 0; i < 1000; i++) h[i] = (float)i * 0.5f;
    CHECK(kd_cuda_h2d(p3, h, sizeof h) == KD_OK && kd_cuda_d2d((char *)p3 + 4096, p3, sizeof h) == KD_OK &&
              kd_cuda_d2h(back, (char *)p3 + 4096, sizeof back) == KD_OK && memcmp(h, back, sizeof h) == 0,
          "h2d, d2d, d2h round trip");
    kd_cuda_arena_free(&a);
    /* a failing CUDA call turns into a status with file:line, not an abort */
    void *huge = NULL;
    kd_clear_error();
    CHECK(kd_cuda_malloc(&huge, (size_t)1 << 62) == KD_ERR_NOMEM && huge == NULL, "absurd cudaMalloc fails cleanly");
    CHECK(strstr(kd_last_error(), "runtime.cu:") != NULL, "message carries file:line: %s", kd_last_error());
    kd_cuda_clear_status();
    CHECK(kd_cuda_sync() == KD_OK, "the device is usable after the failed allocation");
}

int main(void)
{
    gt_skip_without_gpu("test_cuda_kernels");
    ref = kd_kernels_ref_f32();
    cu = kd_kernels_cuda_f32();
    CHECK(cu != NULL, "kd_kernels_cuda_f32() with a device present");
    if (!cu) return kd_test_finish("test_cuda_kernels");
    test_runtime();
    test_maps();
    test_softmax();
    test_layernorm();
    test_embedding();
    test_dropout();
    test_losses();
    test_adamw();
    test_attention();
    CHECK(kd_cuda_status() == KD_OK, "no kernel reported an error: %s", kd_last_error());
    kd_cuda_shutdown();
    return kd_test_finish("test_cuda_kernels");
}
