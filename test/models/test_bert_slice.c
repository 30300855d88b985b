/* test/models/test_bert_slice.c — students sliced from a wider teacher (kd_bert_from_teacher with a smaller
 * hidden_size and intermediate_size, the same heads): values at the right positions element by element,
 * equal sizes as a plain copy, an FFN slice that keeps the teacher's function, a finite forward, and the
 * errors (wider, other heads, hidden not divisible by heads). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/ops.h"
#include "models/bert_internal.h"
#include "test/models/st_util.h"
#include "test/testutil.h"


/* Element [r][c] of a 2-D tensor, [r] of a 1-D one (c = 0). */
static float at(const kd_tensor *t, int64_t r, int64_t c)
{
    return ((const float *)kd_data(t))[r * (t->ndim == 2 ? t->shape[1] : 1) + c];
}


/* Student [rows, cols] entry (r, c) equals the teacher's at (row(r), col(c)), for every entry; `rh`, `ch`:
 * the student's per-head size along rows/columns (0: a plain leading slice), teacher's `trh`, `tch`. */
static int sliced_ok(const kd_tensor *s, const kd_tensor *t, int rh, int trh, int ch, int tch)
{
    int64_t nr = s->shape[0], nc = s->ndim == 2 ? s->shape[1] : 1;
    for (int64_t r = 0; r < nr; r++) {
        int64_t tr = rh ? r / rh * trh + r % rh : r;
        for (int64_t c = 0; c < nc; c++) {
            int64_t tc = ch ? c / ch * tch + c % ch : c;
            if (!(at(s, r, c) == at(t, tr, tc))) {
                fprintf(stderr, "  %s[%lld][%lld] = %g, teacher %s[%lld][%lld] = %g\n", s->name, (long long)r,
                        (long long)c, at(s, r, c), t->name, (long long)tr, (long long)tc, at(t, tr, tc));
                return 0;
            }
        }
    }
    return 1;
}

static void test_slice_values(void)
{
    kd_bert_config tc = tiny_config(), sc = tiny_config();
    tc.num_layers = 4;   /* hidden 32, 2 heads of 16, FFN 64 */
    sc.num_layers = 2;
    sc.hidden_size = 16;   /* 2 heads of 8 */
    sc.intermediate_size = 24;
    kd_bert *t = kd_bert_new(&tc, 1);
    kd_bert *s = kd_bert_from_teacher(t, &sc, NULL, 2);
    CHECK(s != NULL, "sliced student 32 -> 16 hidden, 64 -> 24 FFN: %s", kd_last_error());
    if (!s) goto done;
    CHECK(s->word->shape[0] == 50 && s->word->shape[1] == 16 && s->layers[0].q_w->shape[0] == 16 &&
              s->layers[0].i_w->shape[0] == 24 && s->layers[0].o_w->shape[1] == 24 && s->cls_w->shape[0] == 3 &&
              s->cls_w->shape[1] == 16,
          "sliced shapes");
    CHECK(sliced_ok(s->word, t->word, 0, 0, 0, 0) && sliced_ok(s->pos, t->pos, 0, 0, 0, 0) &&
              sliced_ok(s->type, t->type, 0, 0, 0, 0) && sliced_ok(s->eln_w, t->eln_w, 0, 0, 0, 0),
          "embeddings and their LayerNorm: the leading 16 columns");
    /* Student layer 1 is teacher layer 2 (every 2nd). */
    const kd_bert_layer *sl = &s->layers[1], *tl = &t->layers[2];
    CHECK(sliced_ok(sl->q_w, tl->q_w, 8, 16, 0, 0) && sliced_ok(sl->k_w, tl->k_w, 8, 16, 0, 0) &&
              sliced_ok(sl->v_w, tl->v_w, 8, 16, 0, 0),
          "Q, K, V weights: rows h*16 + j (j < 8) of each head, the leading 16 columns");
    CHECK(sliced_ok(sl->q_b, tl->q_b, 8, 16, 0, 0) && sliced_ok(sl->v_b, tl->v_b, 8, 16, 0, 0),
          "Q, V biases: the leading 8 entries of each head");
    CHECK(sliced_ok(sl->ao_w, tl->ao_w, 0, 0, 8, 16), "attention output: the leading 16 rows, columns h*16 + j of each head");
    CHECK(sliced_ok(sl->i_w, tl->i_w, 0, 0, 0, 0) && sliced_ok(sl->i_b, tl->i_b, 0, 0, 0, 0) &&
              sliced_ok(sl->o_w, tl->o_w, 0, 0, 0, 0) && sliced_ok(sl->oln_w, tl->oln_w, 0, 0, 0, 0),
          "FFN: the first 24 units, output and LayerNorm the leading 16");
    CHECK(sliced_ok(s->pool_w, t->pool_w, 0, 0, 0, 0) && sliced_ok(s->cls_w, t->cls_w, 0, 0, 0, 0),
          "pooler and classifier (all 3 labels, the leading 16 inputs)");
    /* Spot checks written out, so the mapping above is not the only statement of it: head 1, dimension 3. */
    CHECK(at(sl->q_w, 8 + 3, 5) == at(tl->q_w, 16 + 3, 5) && at(sl->ao_w, 7, 8 + 3) == at(tl->ao_w, 7, 16 + 3) &&
              at(sl->k_b, 8 + 3, 0) == at(tl->k_b, 16 + 3, 0) && at(s->word, 49, 15) == at(t->word, 49, 15),
          "spot checks: q_w[11][5], ao_w[7][11], k_b[11], word[49][15]");
    double z[16];
    int n = logits_of(s, z), finite = n == 6;
    for (int i = 0; i < n; i++) finite &= isfinite(z[i]);
    CHECK(finite, "the sliced student's forward gives 2 x 3 finite logits (%d)", n);
done:
    kd_bert_free(s);
    kd_bert_free(t);
}

static void test_equal_is_copy(void)
{
    kd_bert_config tc = tiny_config(), sc = tiny_config();
    tc.num_layers = 4;
    sc.num_layers = 2;
    kd_bert *t = kd_bert_new(&tc, 1), *s = kd_bert_from_teacher(t, &sc, NULL, 2);
    CHECK(s != NULL, "equal sizes: %s", kd_last_error());
    if (s) {
        size_t ns, nt;
        kd_tensor **ps = kd_bert_parameters(s, &ns);
        kd_bert_parameters(t, &nt);
        int ok = 1;
        for (size_t i = 0; i < ns; i++) {
            const char *name = ps[i]->name;
            char tname[128];
            int l;
            /* student layer l <- teacher layer 2l */
            if (sscanf(name, "bert.encoder.layer.%d.", &l) == 1) {
                const char *rest = strchr(name + strlen("bert.encoder.layer."), '.');
                snprintf(tname, sizeof tname, "bert.encoder.layer.%d%s", 2 * l, rest);
            } else {
                snprintf(tname, sizeof tname, "%s", name);
            }
            const kd_tensor *q = kd_bert_param(t, tname);
            ok &= q && kd_same_shape(q, ps[i]) && memcmp(kd_data(q), kd_data(ps[i]), (size_t)kd_numel(q) * 4) == 0;
        }
        CHECK(ok && ns == 4 + 1 + 2 * KD_BERT_LAYER_TENSORS + 4 && nt > ns,
              "equal sizes: every one of %zu tensors bit-identical to the teacher's", ns);
    }
    kd_bert_free(s);
    kd_bert_free(t);
}

/* With the teacher's FFN units beyond the first 40 switched off (zero input weights and biases: GELU(0) = 0),
 * a student of FFN 40 computes the same function: the slice keeps the right units and their outputs. */
static void test_ffn_slice_keeps_function(void)
{
    kd_bert_config tc = tiny_config(), sc = tiny_config();
    sc.intermediate_size = 40;
    kd_bert *t = kd_bert_new(&tc, 3);
    for (int l = 0; l < tc.num_layers; l++) {
        float *w = kd_data(t->layers[l].i_w), *b = kd_data(t->layers[l].i_b);
        for (int u = 40; u < 64; u++) {
            b[u] = 0;
            for (int c = 0; c < 32; c++) w[u * 32 + c] = 0;
        }
        b[3] = 0.25f;   /* a bias that matters, among the kept units */
    }
    kd_bert *s = kd_bert_from_teacher(t, &sc, NULL, 4);
    double zt[16], zs[16];
    int nt = logits_of(t, zt), ns = s ? logits_of(s, zs) : 0, ok = nt == 6 && ns == 6;
    for (int i = 0; ok && i < 6; i++) ok = kd_close(zs[i], zt[i], 1e-5, 1e-5);
    CHECK(ok, "FFN 64 -> 40 with the dropped units off: the student's logits equal the teacher's (%d, %d)", nt, ns);
    kd_bert_free(s);
    kd_bert_free(t);
}

static void test_errors(void)
{
    kd_bert_config tc = tiny_config();
    kd_bert *t = kd_bert_new(&tc, 1);
    kd_bert_config c = tc;
    c.hidden_size = 64;
    CHECK(kd_bert_from_teacher(t, &c, NULL, 2) == NULL && kd_last_status() == KD_ERR_SHAPE &&
              strstr(kd_last_error(), "hidden_size") && strstr(kd_last_error(), "32") && strstr(kd_last_error(), "64"),
          "wider hidden: %s", kd_last_error());
    c = tc;
    c.intermediate_size = 128;
    CHECK(kd_bert_from_teacher(t, &c, NULL, 2) == NULL && kd_last_status() == KD_ERR_SHAPE &&
              strstr(kd_last_error(), "intermediate_size") && strstr(kd_last_error(), "64") &&
              strstr(kd_last_error(), "128"),
          "wider FFN: %s", kd_last_error());
    c = tc;
    c.hidden_size = 16;
    c.num_heads = 4;
    CHECK(kd_bert_from_teacher(t, &c, NULL, 2) == NULL && kd_last_status() == KD_ERR_SHAPE &&
              strstr(kd_last_error(), "num_attention_heads") && strstr(kd_last_error(), "teacher 2") &&
              strstr(kd_last_error(), "student 4"),
          "other heads: %s", kd_last_error());
    c = tc;
    c.hidden_size = 15;
    CHECK(kd_bert_from_teacher(t, &c, NULL, 2) == NULL && strstr(kd_last_error(), "hidden_size 15") &&
              strstr(kd_last_error(), "num_attention_heads 2"),
          "hidden not divisible by heads: %s", kd_last_error());
    kd_bert_free(t);
}

int main(void)
{
    test_slice_values();
    test_equal_is_copy();
    test_ffn_slice_keeps_function();
    test_errors();
    kd_shutdown();
    return kd_test_finish("test_bert_slice");
}
