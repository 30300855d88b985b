/* test/models/test_bert_quant.c — int8 BERT (models/bert_quant.c): a small random model quantized with
 * dynamic and with static (calibrated) activation scales gives logits close to the f32 model's; saved, the
 * file holds I8 weights with F32 scales and config.json says kd_quantization; loaded back, the same logits
 * bit for bit, and on every kernel table this CPU runs, close (the int8 kernels agree exactly); a model
 * already int8 cannot be quantized again, moved off the CPU, run in bf16 or copied into a student, and holds
 * no f32 copy of the weights it quantized; a config that says int8 over f32 weights, a missing or zero scale and an I8
 * weight of the wrong shape are refused naming the tensor. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/json.h"
#include "engine/ops.h"
#include "models/bert_internal.h"
#include "test/models/st_util.h"
#include "test/testutil.h"

#define B 6
#define T 12
static int32_t ids[B * T], mask[B * T];

static kd_bert_config quant_config(void)
{
    kd_bert_config c = tiny_config();
    c.hidden_size = 64;
    c.num_heads = 4;
    c.intermediate_size = 128;
    c.initializer_range = 0.1;   /* weights large enough that the logits spread (std 0.02 gives ~0) */
    return c;
}

static int logits(kd_bert *m, float *out)
{
    kd_bert_input in = { B, T, ids, NULL, mask };
    int prev = kd_set_grad_enabled(0);
    kd_tensor *z = kd_bert_logits(m, &in);
    kd_set_grad_enabled(prev);
    int n = 0;
    if (z)
        for (int64_t i = 0; i < kd_numel(z); i++) out[n++] = ((const float *)kd_data(z))[i];
    kd_arena_reset();
    return n;
}

/* ||a - b|| / ||b|| over n values; infinite when either holds NaN or Inf. */
static double rel_l2(const float *a, const float *b, int n)
{
    double d = 0, s = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) return INFINITY;
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        s += (double)b[i] * b[i];
    }
    return sqrt(d / (s > 0 ? s : 1));
}

static int same_bits(const float *a, const float *b, int n) { return n > 0 && memcmp(a, b, (size_t)n * sizeof *a) == 0; }

static int file_has(const char *path, const char *name, const char *dtype)
{
    kd_safetensors *st = kd_st_open(path);
    const kd_st_entry *e = st ? kd_st_find(st, name) : NULL;
    int ok = e && strcmp(e->dtype, dtype) == 0;
    kd_st_close(st);
    return ok;
}

/* Quantize (static_act: after calibrating on the batch), check against f32, save, load, check again. */
static void round_trip(const char *tmp, int static_act, double percentile, double bound)
{
    const char *what = !static_act ? "dynamic-per-token" : percentile < 100 ? "static-per-tensor" : "static-max";
    kd_bert_config c = quant_config();
    kd_bert *m = kd_bert_new(&c, 11);
    float zf[B * 3], zq[B * 3], zl[B * 3];
    CHECK(m && logits(m, zf) == B * 3, "%s: f32 model and logits: %s", what, kd_last_error());
    if (!m) return;
    if (static_act) {
        CHECK(kd_bert_quantize(m, 1, 100.0, NULL) == KD_ERR_ARG, "%s: static scales without calibration are refused", what);
        CHECK(kd_bert_calibrate_begin(m) == KD_OK && logits(m, zq) == B * 3, "%s: calibration pass", what);
        if (percentile < 100)
            CHECK(kd_bert_calibrate_histograms(m) == KD_OK && logits(m, zq) == B * 3, "%s: histogram pass", what);
    }
    size_t heap0 = kd_heap_bytes();
    CHECK(kd_bert_quantize(m, static_act, percentile, static_act ? "over the test batch" : NULL) == KD_OK &&
              kd_bert_is_quantized(m), "%s: quantize: %s", what, kd_last_error());
    /* the f32 weights of the 13 linears (2 x (4 x 64 x 64 + 2 x 64 x 128) + 64 x 64 floats) are given back */
    size_t released = (size_t)(2 * (4 * 64 * 64 + 2 * 64 * 128) + 64 * 64) * 4;
    CHECK(kd_heap_bytes() + released == heap0, "%s: the quantized linears' f32 weights give back %zu bytes: heap %zu -> %zu",
          what, released, heap0, kd_heap_bytes());
    int n = logits(m, zq);
    double err = rel_l2(zq, zf, n);
    CHECK(n == B * 3 && err <= bound, "%s: int8 logits within %.3f of f32 (relative L2), got %.5f", what, bound, err);
    printf("%-20s int8 vs f32 logits: relative L2 error %.5f (bound %.3f); e.g. %.5f vs %.5f\n", what, err, bound,
           zq[0], zf[0]);
    CHECK(kd_bert_quantize(m, 0, 100.0, NULL) == KD_ERR_ARG && st_error_says("already int8", NULL),
          "%s: quantizing an int8 model is refused: %s", what, kd_last_error());
    CHECK(kd_bert_to_device(m, KD_SIM) == KD_ERR_ARG && st_error_says("CPU", NULL),
          "%s: an int8 model stays on the CPU: %s", what, kd_last_error());
    CHECK(kd_bert_set_precision(m, KD_BF16) == KD_ERR_DTYPE && st_error_says("f32", NULL),
          "%s: an int8 model runs f32 activations: %s", what, kd_last_error());
    kd_bert *st = kd_bert_from_teacher(m, kd_bert_get_config(m), NULL, 1);
    CHECK(!st && st_error_says("int8", NULL), "%s: no student copied from an int8 teacher: %s", what, kd_last_error());
    kd_bert_free(st);

    char dir[4200], path[4300];
    snprintf(dir, sizeof dir, "%s/%s", tmp, what);
    CHECK(kd_bert_save(m, dir) == KD_OK, "%s: save: %s", what, kd_last_error());
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    const char *q = "bert.encoder.layer.1.intermediate.dense.weight";
    CHECK(file_has(path, q, "I8") && file_has(path, "bert.encoder.layer.1.intermediate.dense.weight_scale", "F32") &&
              file_has(path, "bert.pooler.dense.weight", "I8") && file_has(path, "classifier.weight", "F32") &&
              file_has(path, "bert.embeddings.word_embeddings.weight", "F32"),
          "%s: model.safetensors holds I8 linears with F32 scales, f32 embeddings and classifier", what);
    CHECK(file_has(path, "bert.encoder.layer.0.attention.self.query.input_scale", "F32") == static_act,
          "%s: input scales saved exactly when static", what);
    snprintf(path, sizeof path, "%s/config.json", dir);
    kd_json *cj = kd_json_read_file(path);
    const kd_json *kq = cj ? kd_json_get(cj, "kd_quantization") : NULL;
    const kd_json *act = kq ? kd_json_get(kq, "activations") : NULL;
    CHECK(act && act->type == KD_JSON_STRING && strcmp(act->string, static_act ? "static-per-tensor" : what) == 0,
          "%s: config.json has kd_quantization.activations", what);
    kd_json_free(cj);

    kd_bert *l = kd_bert_load(dir, 0, 1, NULL);
    CHECK(l && kd_bert_is_quantized(l), "%s: load: %s", what, l ? "" : kd_last_error());
    if (l) {
        int nl = logits(l, zl);
        CHECK(nl == n && same_bits(zl, zq, n), "%s: the loaded model gives the same logits bit for bit", what);
        /* Every CPU table: the int8 kernels agree bit for bit (test_gemm_s8), the f32 ones (LayerNorm, attention,
         * GELU) to rounding, which can move an activation across an int8 rounding boundary: close, not equal. */
        static const char *tabs[] = { "ref", "avx2", "avx512" };
        for (size_t t = 0; t < 3; t++) {
            if (kd_backend_select(tabs[t]) != KD_OK) continue;
            int nt = logits(l, zl);
            double e = nt == n ? rel_l2(zl, zq, n) : INFINITY;
            CHECK(e <= 2e-3, "%s: table %s gives the saved model's logits within 2e-3 (relative L2): %.3g", what, tabs[t], e);
            printf("%-20s table %-6s against the saved model's logits: relative L2 %.3g\n", what, tabs[t], e);
        }
        kd_backend_select("best");
        kd_bert_free(l);
    }
    kd_bert_free(m);
}

int main(void)
{
    uint64_t s = 5;
    for (int b = 0; b < B; b++) {
        int len = T - 2 * b;   /* rows of 12, 10, ... 2 tokens, padded */
        for (int t = 0; t < T; t++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            ids[b * T + t] = t < len ? (int32_t)(1 + (s >> 33) % 49) : 0;
            mask[b * T + t] = t < len;
        }
    }
    char tmp[256];
    if (make_tmpdir(tmp, sizeof tmp) != 0) {
        fprintf(stderr, "cannot make a temporary directory\n");
        return 1;
    }
    /* Bounds: 8-bit rounding of both operands of each of the 13 linears gives errors of about 1% of a
     * layer's output; measured 0.0077 (dynamic), 0.0092 (static, max) and 0.0106 (static, 99.9th percentile:
     * coarser steps than dynamic for rows smaller than the largest), the bounds 2.5-3x that. */
    round_trip(tmp, 0, 100.0, 0.02);
    round_trip(tmp, 1, 100.0, 0.03);
    round_trip(tmp, 1, 99.9, 0.03);   /* clips the top 0.1% of each input */

    /* config.json that says int8 over an f32 checkpoint: refused naming the tensor */
    kd_bert_config c = quant_config();
    kd_bert *m = kd_bert_new(&c, 3);
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/lying", tmp);
    snprintf(c.quant_activations, sizeof c.quant_activations, "dynamic-per-token");
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK(m && kd_bert_save(m, dir) == KD_OK && kd_bert_config_save(path, &c) == KD_OK, "write the lying checkpoint");
    kd_bert *l = kd_bert_load(dir, 0, 1, NULL);
    CHECK(!l && st_error_says("model.safetensors", "bert.encoder.layer.0.attention.self.query.weight", "expected I8", NULL),
          "int8 config over f32 weights refused naming the tensor: %s", kd_last_error());
    printf("int8 config over f32 weights: %s\n", kd_last_error());
    kd_bert_free(l);
    snprintf(c.quant_activations, sizeof c.quant_activations, "per-tensor-dynamic");
    write_text(path, "{\"model_type\": \"bert\", \"hidden_size\": 64, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, "
                     "\"intermediate_size\": 128, \"vocab_size\": 50, \"kd_quantization\": {\"weights\": "
                     "\"int8-per-channel-symmetric\", \"activations\": \"sometimes\"}}");
    l = kd_bert_load(dir, 0, 1, NULL);
    CHECK(!l && st_error_says("config.json", "kd_quantization.activations", "sometimes", NULL),
          "unknown kd_quantization.activations refused naming the field: %s", kd_last_error());
    kd_bert_free(l);
    kd_bert_free(m);

    /* An int8 file edited: a scale removed, a scale of 0, an I8 weight of the wrong shape, and a weight
     * stored as F32: each refused naming the tensor. */
    char qdir[512], qpath[600];
    snprintf(qdir, sizeof qdir, "%s/dynamic-per-token", tmp);
    snprintf(qpath, sizeof qpath, "%s/model.safetensors", qdir);
    const char *scale = "bert.encoder.layer.0.output.dense.weight_scale", *weight = "bert.pooler.dense.weight";
    for (int edit = 0; edit < 3; edit++) {
        size_t n = 0;
        st_raw *r = st_raw_read(qpath, &n);
        CHECK(r != NULL, "read back the int8 file");
        if (!r) break;
        char save[620];
        snprintf(save, sizeof save, "%s.orig", qpath);
        rename(qpath, save);
        for (size_t i = 0; i < n; i++) {
            if (edit == 0 && strcmp(r[i].name, scale) == 0) snprintf(r[i].name, sizeof r[i].name, "renamed_scale");
            if (edit == 1 && strcmp(r[i].name, scale) == 0) memset(r[i].bytes, 0, 4);   /* element 0 := 0.0f */
            if (edit == 2 && strcmp(r[i].name, weight) == 0) {
                r[i].shape[1] -= 1;   /* same bytes, a narrower matrix: a lying header */
                r[i].nbytes -= (size_t)r[i].shape[0];
            }
        }
        st_raw_write(qpath, r, n);
        st_raw_free(r, n);
        kd_bert *e = kd_bert_load(qdir, 0, 1, NULL);
        static const char *const want[3][2] = {
            { "bert.encoder.layer.0.output.dense.weight_scale", "is missing" },
            { "bert.encoder.layer.0.output.dense.weight_scale", "positive finite scale" },
            { "bert.pooler.dense.weight", "expected I8 [64, 64]" },
        };
        CHECK(!e && st_error_says(want[edit][0], want[edit][1], NULL), "edited int8 file %d refused: %s", edit,
              kd_last_error());
        printf("edited int8 file %d: %s\n", edit, kd_last_error());
        kd_bert_free(e);
        rename(save, qpath);
    }
    rm_tree(tmp);
    return kd_test_finish("test_bert_quant");
}
