/* test/gpu/test_attention_plan.c — the flash-attention tiling (kernels/cuda/attention_plan.h) on the CPU:
 * every score, output and dK/dV element of a tile is owned by exactly one (thread, slot); the threads
 * sharing a row are the 16 lanes one xor-shuffle tree (offsets 8, 4, 2, 1) reaches, and they own that
 * row in the output tile too; shared memory fits an sm_80 block; grids cover every row; the dropout
 * counter is kernels/kernels.h's formula.
 *
 * Then the forward kernel's schedule is replayed on the CPU in float with those same functions (tiles of
 * BQ rows and BK keys, per-thread score slots, row max / sum over the row group, the 0-for--inf
 * exponent shift, dropout from the CUDA Philox port) and compared against kd_kernels_ref_f32() at odd
 * lengths, with a padded and a fully masked batch item, masked by -inf and by BERT's finite -FLT_MAX:
 * the online-softmax algebra and the index math are right before any GPU sees them. Tolerance: f32
 * epsilon times the reduction length (tk * dim). */
#include <float.h>

#include "kernels/cuda/attention_plan.h"
#include "kernels/cuda/philox.h"
#include "kernels/kernels.h"
#include "test/testutil.h"

static void check_ownership(void)
{
    const int dims[] = { 32, 64, 128 };
    for (int di = 0; di < 3; di++) {
        int D = dims[di], BQ = kd_fa_bq(D), RA = BQ / 16, CB = KD_FA_BK / 16, DE = D / 16;
        CHECK(BQ % 16 == 0 && D % 16 == 0, "D %d: tiles are multiples of 16", D);
        int *score = calloc((size_t)(BQ * KD_FA_BK), sizeof *score), *out = calloc((size_t)(BQ * D), sizeof *out);
        int *kv = calloc((size_t)(KD_FA_BK * D), sizeof *kv);
        if (!score || !out || !kv) abort();
        int group_bad = 0;
        for (int t = 0; t < KD_FA_THREADS; t++) {
            for (int a = 0; a < RA; a++)
                for (int b = 0; b < CB; b++) score[kd_fa_row(t, a) * KD_FA_BK + kd_fa_key(t, b)]++;
            for (int a = 0; a < RA; a++)
                for (int e = 0; e < DE; e++) out[kd_fa_row(t, a) * D + kd_fa_dim(t, e)]++;
            for (int b = 0; b < CB; b++)
                for (int e = 0; e < DE; e++) kv[kd_fa_krow(t, b) * D + kd_fa_dim(t, e)]++;
            /* shuffle partners stay in the warp and own the same rows */
            for (int o = 1; o <= 8; o <<= 1) {
                int u = t ^ o;
                if (u / 32 != t / 32) group_bad++;
                for (int a = 0; a < RA; a++) group_bad += kd_fa_row(u, a) != kd_fa_row(t, a);
            }
        }
        int bad = 0;
        for (int i = 0; i < BQ * KD_FA_BK; i++) bad += score[i] != 1;
        for (int i = 0; i < BQ * D; i++) bad += out[i] != 1;
        for (int i = 0; i < KD_FA_BK * D; i++) bad += kv[i] != 1;
        CHECK(bad == 0, "D %d: %d tile elements owned by other than exactly one (thread, slot)", D, bad);
        CHECK(group_bad == 0, "D %d: %d shuffle partners outside the row group", D, group_bad);
        /* sm_80's opt-in limit is 163 KiB per block, sm_90's 227 KiB */
        CHECK(kd_fa_fwd_smem(D) <= 163 * 1024 && kd_fa_bwd_smem(D) <= 163 * 1024,
              "D %d: shared memory fwd %zu, bwd %zu bytes within 163 KiB", D, kd_fa_fwd_smem(D), kd_fa_bwd_smem(D));
        CHECK(kd_fa_pitch(D) % 2 == 1, "D %d: odd shared pitch", D);
        free(score); free(out); free(kv);
    }
    CHECK(kd_fa_supported_dim(32) && kd_fa_supported_dim(64) && kd_fa_supported_dim(128) && !kd_fa_supported_dim(48) &&
              !kd_fa_supported_dim(0) && !kd_fa_supported_dim(256),
          "supported head dims are 32, 64, 128");
    int64_t gx, gy;
    const int64_t lens[] = { 1, 7, 63, 64, 65, 129, 512, 100000 };
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        int ok = kd_fa_grid(24, lens[i], 32, &gx, &gy);
        CHECK(ok && gx == 24 && gy * 32 >= lens[i] && (gy - 1) * 32 < lens[i], "grid over %lld rows", (long long)lens[i]);
    }
    CHECK(!kd_fa_grid(0x80000000LL, 8, 64, &gx, &gy), "batch*heads beyond 2^31 - 1 is refused");
    CHECK(!kd_fa_grid(4, 64LL * 65536, 64, &gx, &gy), "more than 65535 tiles is refused");
    /* counter = offset + ((b * heads + h) * tq + i) * tk + j */
    CHECK(kd_fa_counter(17, 1, 2, 3, 5, 7, 4, 6) == 17 + ((1 * 3 + 2) * 5 + 4) * 7 + 6, "dropout counter formula");
    CHECK(kd_fa_counter(~0ull - 5, 0, 0, 1, 1, 8, 0, 7) == 1, "the counter wraps modulo 2^64 like the CPU's");
}

/* The forward kernel's schedule, thread by thread, in float. */
static void emulate_forward(const kd_attention_args *a, float *o, float *lse)
{
    const int D = (int)a->dim, BQ = kd_fa_bq(D), BK = KD_FA_BK, RA = BQ / 16, CB = BK / 16, DE = D / 16;
    const float scale = (float)a->scale, ninf = -INFINITY;
    const int drop = a->dropout_p > 0.0;
    const float kscale = (float)(1.0 / (1.0 - a->dropout_p));
    float *m = malloc(sizeof(float) * KD_FA_THREADS * RA), *l = malloc(sizeof(float) * KD_FA_THREADS * RA);
    float *acc = malloc(sizeof(float) * KD_FA_THREADS * RA * DE), *s = malloc(sizeof(float) * KD_FA_THREADS * RA * CB);
    float *P = malloc(sizeof(float) * BQ * BK);
    if (!m || !l || !acc || !s || !P) abort();
    for (int64_t bh = 0; bh < a->batch * a->heads; bh++) {
        int64_t b = bh / a->heads, h = bh % a->heads;
        const float *Q = (const float *)a->q + b * a->q_sb + h * a->q_sh;
        const float *K = (const float *)a->k + b * a->k_sb + h * a->k_sh;
        const float *V = (const float *)a->v + b * a->v_sb + h * a->v_sh;
        const float *mask = a->mask ? (const float *)a->mask + b * a->mask_sb : NULL;
        for (int64_t q0 = 0; q0 < a->tq; q0 += BQ) {
            for (int i = 0; i < KD_FA_THREADS * RA; i++) m[i] = ninf, l[i] = 0.0f;
            for (int i = 0; i < KD_FA_THREADS * RA * DE; i++) acc[i] = 0.0f;
            for (int64_t k0 = 0; k0 < a->tk; k0 += BK) {
                for (int t = 0; t < KD_FA_THREADS; t++)
                    for (int ia = 0; ia < RA; ia++)
                        for (int jb = 0; jb < CB; jb++) {
                            int64_t qi = q0 + kd_fa_row(t, ia), kj = k0 + kd_fa_key(t, jb);
                            float dot = 0.0f, v = ninf;
                            for (int d = 0; d < D && qi < a->tq && kj < a->tk; d++)
                                dot = fmaf(Q[qi * a->q_st + d], K[kj * a->k_st + d], dot);
                            if (kj < a->tk) v = dot * scale + (mask ? mask[kj] : 0.0f);
                            s[(t * RA + ia) * CB + jb] = v;
                        }
                for (int t = 0; t < KD_FA_THREADS; t++)
                    for (int ia = 0; ia < RA; ia++) {
                        float mt = ninf, rs = 0.0f;
                        for (int x = 0; x < 16; x++) {   /* the row group: same ty, tx = 0..15 */
                            int u = (t & ~15) | x;
                            for (int jb = 0; jb < CB; jb++) mt = fmaxf(mt, s[(u * RA + ia) * CB + jb]);
                        }
                        float *mr = &m[t * RA + ia], mn = fmaxf(*mr, mt), mu = mn == ninf ? 0.0f : mn;
                        float alpha = expf(*mr - mu);
                        for (int x = 0; x < 16; x++) {
                            int u = (t & ~15) | x;
                            for (int jb = 0; jb < CB; jb++) rs += expf(s[(u * RA + ia) * CB + jb] - mu);
                        }
                        int64_t qi = q0 + kd_fa_row(t, ia);
                        for (int jb = 0; jb < CB; jb++) {
                            float p = expf(s[(t * RA + ia) * CB + jb] - mu);
                            if (drop && p != 0.0f && qi < a->tq) {
                                uint64_t ctr = kd_fa_counter(a->offset, b, h, a->heads, a->tq, a->tk, qi,
                                                             k0 + kd_fa_key(t, jb));
                                p *= kd_cu_rng_keep(a->seed, ctr, (float)a->dropout_p) ? kscale : 0.0f;
                            }
                            P[kd_fa_row(t, ia) * BK + kd_fa_key(t, jb)] = p;
                        }
                        l[t * RA + ia] = l[t * RA + ia] * alpha + rs;
                        *mr = mn;
                        for (int e = 0; e < DE; e++) acc[(t * RA + ia) * DE + e] *= alpha;
                    }
                for (int t = 0; t < KD_FA_THREADS; t++)
                    for (int c = 0; c < BK; c++) {
                        if (k0 + c >= a->tk) continue;   /* the kernel's zero V rows contribute 0 */
                        for (int ia = 0; ia < RA; ia++)
                            for (int e = 0; e < DE; e++)
                                acc[(t * RA + ia) * DE + e] = fmaf(P[kd_fa_row(t, ia) * BK + c],
                                                                   V[(k0 + c) * a->v_st + kd_fa_dim(t, e)],
                                                                   acc[(t * RA + ia) * DE + e]);
                    }
            }
            for (int t = 0; t < KD_FA_THREADS; t++)
                for (int ia = 0; ia < RA; ia++) {
                    int64_t qi = q0 + kd_fa_row(t, ia);
                    if (qi >= a->tq) continue;
                    float lv = l[t * RA + ia], mv = m[t * RA + ia], ls = lv != 0.0f ? mv + logf(lv) : ninf;
                    float inv = lv != 0.0f ? (ls == mv ? 1.0f : 1.0f / lv) : 0.0f;   /* no division when lse = m */
                    for (int e = 0; e < DE; e++)
                        o[b * a->o_sb + qi * a->o_st + h * a->o_sh + kd_fa_dim(t, e)] = acc[(t * RA + ia) * DE + e] * inv;
                    if (kd_fa_tx(t) == 0) lse[bh * a->tq + qi] = ls;
                }
        }
    }
    free(m); free(l); free(acc); free(s); free(P);
}

static uint64_t rng_state = 12345;
static float randn(void)
{
    double s = 0;
    for (int i = 0; i < 4; i++) {
        rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
        s += (double)(rng_state >> 11) / 9007199254740992.0;
    }
    return (float)((s - 2.0) * 1.7320508075688772);
}

/* mval: the mask value of padded keys, -inf or BERT's finite -FLT_MAX (with which a fully masked row is
 * not "all -inf": the reference gives P = 1 per key there, lse = -FLT_MAX). */
static void check_emulated_forward(int64_t B, int64_t H, int64_t TQ, int64_t TK, int64_t D, int drop, float mval)
{
    int64_t nq = B * TQ * H * D, nk = B * TK * H * D;
    float *q = malloc(sizeof(float) * nq), *k = malloc(sizeof(float) * nk), *v = malloc(sizeof(float) * nk);
    float *mask = calloc((size_t)(B * TK), sizeof(float));
    float *o = malloc(sizeof(float) * nq), *wo = malloc(sizeof(float) * nq);
    float *lse = malloc(sizeof(float) * B * H * TQ), *wl = malloc(sizeof(float) * B * H * TQ);
    if (!q || !k || !v || !mask || !o || !wo || !lse || !wl) abort();
    for (int64_t i = 0; i < nq; i++) q[i] = randn(), o[i] = NAN;
    for (int64_t i = 0; i < nk; i++) k[i] = randn(), v[i] = randn();
    for (int64_t i = 0; i < B * H * TQ; i++) lse[i] = NAN;
    for (int64_t j = TK - TK / 3; j < TK && TK > 1; j++) mask[j] = mval;   /* batch 0 pads */
    if (B > 1)
        for (int64_t j = 0; j < TK; j++) mask[(B - 1) * TK + j] = mval;    /* last item: all keys */
    kd_attention_args a;
    memset(&a, 0, sizeof a);
    a.batch = B; a.heads = H; a.tq = TQ; a.tk = TK; a.dim = D;
    a.q = q; a.q_sb = TQ * H * D; a.q_st = H * D; a.q_sh = D;
    a.k = k; a.k_sb = TK * H * D; a.k_st = H * D; a.k_sh = D;
    a.v = v; a.v_sb = TK * H * D; a.v_st = H * D; a.v_sh = D;
    a.o = wo; a.o_sb = TQ * H * D; a.o_st = H * D; a.o_sh = D;
    a.mask = mask; a.mask_sb = TK;
    a.scale = 1.0 / sqrt((double)D);
    a.dropout_p = drop ? 0.25 : 0.0;
    a.seed = 77; a.offset = 5;
    a.lse = wl;
    kd_kernels_ref_f32()->attention(&a, 0, 1);
    a.o = o; a.lse = lse;
    emulate_forward(&a, o, lse);
    double tol = FLT_EPSILON * (16.0 + 4.0 * sqrt((double)(TK * D))) * 4;
    int64_t bad = 0;
    for (int64_t i = 0; i < nq; i++)
        if (!kd_close(o[i], wo[i], tol, tol) && bad++ < 3)
            fprintf(stderr, "  o[%lld] = %.9g, want %.9g\n", (long long)i, o[i], wo[i]);
    for (int64_t i = 0; i < B * H * TQ; i++) {
        int ok = isinf(wl[i]) ? (isinf(lse[i]) && lse[i] < 0) : kd_close(lse[i], wl[i], tol, tol);
        if (!ok && bad++ < 6) fprintf(stderr, "  lse[%lld] = %.9g, want %.9g\n", (long long)i, lse[i], wl[i]);
    }
    CHECK(bad == 0, "emulated flash forward B %lld H %lld tq %lld tk %lld D %lld drop %d mask %g: %lld values off (tol %g)",
          (long long)B, (long long)H, (long long)TQ, (long long)TK, (long long)D, drop, (double)mval, (long long)bad, tol);
    free(q); free(k); free(v); free(mask); free(o); free(wo); free(lse); free(wl);
}

int main(void)
{
    check_ownership();
    const float mvals[] = { -INFINITY, -FLT_MAX };
    for (int mi = 0; mi < 2; mi++) {
        check_emulated_forward(2, 2, 7, 7, 32, 0, mvals[mi]);
        check_emulated_forward(2, 1, 63, 129, 64, 1, mvals[mi]);
        check_emulated_forward(3, 2, 33, 65, 128, 0, mvals[mi]);
        check_emulated_forward(2, 1, 1, 200, 32, 1, mvals[mi]);
        check_emulated_forward(1, 1, 70, 1, 64, 0, mvals[mi]);
    }
    return kd_test_finish("test_attention_plan");
}
