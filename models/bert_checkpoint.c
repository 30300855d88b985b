/* models/bert_checkpoint.c — checkpoints in Hugging Face's format (config.json + model.safetensors +
 * vocab.txt), the mapping between our parameter names and a checkpoint's (with or without "bert.", old
 * gamma/beta LayerNorm names), and students built from a teacher's layers. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/device.h"
#include "engine/fileio.h"
#include "engine/safetensors.h"
#include "models/bert_internal.h"

/* mkdir -p */
static kd_status make_dir(const char *dir)
{
    char buf[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof buf) return kd_fail(KD_ERR_ARG, "checkpoint directory name '%s' is empty or too long", dir);
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        char c = buf[i];
        buf[i] = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return kd_fail(KD_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
        buf[i] = c;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return kd_fail(KD_ERR_IO, "%s: not a directory", dir);
    return KD_OK;
}

static void join(char *out, size_t n, const char *dir, const char *file) { snprintf(out, n, "%s/%s", dir, file); }

/* The checkpoint entry for our parameter `name` (and the file holding it): with our "bert." prefix or without
 * it (BertModel), and LayerNorm's weight/bias under their old names gamma/beta. */
static const kd_st_entry *find_entry(const kd_st_set *st, const char *name, int strip_bert, const kd_safetensors **file)
{
    const char *n = strip_bert && strncmp(name, "bert.", 5) == 0 ? name + 5 : name;
    const kd_st_entry *e = kd_st_set_find(st, n, file);
    if (e || !strstr(n, "LayerNorm.")) return e;
    char alt[128];
    size_t len = strlen(n);
    if (len > 7 && strcmp(n + len - 7, ".weight") == 0) snprintf(alt, sizeof alt, "%.*s.gamma", (int)(len - 7), n);
    else if (len > 5 && strcmp(n + len - 5, ".bias") == 0) snprintf(alt, sizeof alt, "%.*s.beta", (int)(len - 5), n);
    else return NULL;
    return kd_st_set_find(st, alt, file);
}

static int is_head(const char *name) { return strncmp(name, "classifier.", 11) == 0; }
static int is_pooler(const char *name) { return strncmp(name, "bert.pooler.", 12) == 0; }

/* Number of lines (tokens) of a vocab.txt, as Hugging Face's load_vocab counts them; -1 when absent. */
static long count_vocab_lines(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    long lines = 0;
    int c, last = '\n';
    while ((c = getc(f)) != EOF) {
        if (c == '\n') lines++;
        last = c;
    }
    if (last != '\n') lines++;
    fclose(f);
    return lines;
}

kd_status kd_bert_check_vocab(const kd_bert *m, const char *vocab_path)
{
    long n = count_vocab_lines(vocab_path);
    if (n < 0) return kd_fail(KD_ERR_IO, "%s: cannot open: %s", vocab_path, strerror(errno));
    /* A vocabulary larger than the embedding matrix makes ids with no row. A smaller one is how some
     * checkpoints pad their matrix (a few rows never produced, up to a multiple of 64 or 128), so a gap of
     * fewer than 1,024 rows is accepted; a larger gap is another model's vocabulary. */
    if (n + 1024 <= m->word->shape[0])
        return kd_fail(KD_ERR_SHAPE,
                       "%s: vocabulary has %ld tokens, but bert.embeddings.word_embeddings.weight has %lld rows "
                       "(vocab_size %d): %lld rows would never be used, so the vocabulary is not this checkpoint's "
                       "(a padded matrix has fewer than 1,024 spare rows)",
                       vocab_path, n, (long long)m->word->shape[0], m->cfg.vocab_size, (long long)m->word->shape[0] - n);
    if (n > m->word->shape[0])
        return kd_fail(KD_ERR_SHAPE,
                       "%s: vocabulary has %ld tokens, but bert.embeddings.word_embeddings.weight has %lld rows "
                       "(vocab_size %d): vocabulary and checkpoint do not match",
                       vocab_path, n, (long long)m->word->shape[0], m->cfg.vocab_size);
    return KD_OK;
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

/* The weights of a checkpoint directory: model.safetensors, else the shards of model.safetensors.index.json
 * (the single file first, as transformers looks); PyTorch pickles are named and refused. */
static kd_st_set *open_weights(const char *dir)
{
    char path[4096], index[4200], pt[4200];
    join(path, sizeof path, dir, "model.safetensors");
    if (exists(path)) return kd_st_set_open_file(path);
    join(index, sizeof index, dir, "model.safetensors.index.json");
    if (exists(index)) return kd_st_set_open_index(index);
    join(pt, sizeof pt, dir, "pytorch_model.bin");
    if (!exists(pt)) join(pt, sizeof pt, dir, "pytorch_model.bin.index.json");
    if (exists(pt)) {
        kd_fail(KD_ERR_IO, "%s: missing; the directory has only %s (Python pickles kd does not read): save it in "
                "safetensors format, e.g. model.save_pretrained(dir, safe_serialization=True)", path, strrchr(pt, '/') + 1);
        return NULL;
    }
    kd_fail(KD_ERR_IO, "%s: missing, and no model.safetensors.index.json (a sharded checkpoint) either: expected the "
            "weights in Hugging Face's safetensors format", path);
    return NULL;
}

/* Which int8 linear the weight p is (-1: none). */
static long qlinear_index(kd_bert *m, const kd_tensor *p)
{
    for (size_t i = 0; i < kd_bert_qlinears(m); i++) {
        kd_tensor *w, *b;
        kd_bert_qlinear(m, i, &w, &b);
        if (w == p) return (long)i;
    }
    return -1;
}

/* An F32 tensor of exactly n positive finite values (a scale), named `name` in the checkpoint. */
static kd_status read_scales(const kd_st_set *st, const char *name, int strip, int64_t n, float *dst)
{
    const kd_safetensors *file = NULL;
    const kd_st_entry *e = find_entry(st, name, strip, &file);
    const char *shown = strip && strncmp(name, "bert.", 5) == 0 ? name + 5 : name;
    if (!e) return kd_fail(KD_ERR_FORMAT, "%s: tensor '%s' is missing (config.json says the model is int8: kd_quantization)",
                           st->path, shown);
    char sb[64];
    if (strcmp(e->dtype, "F32") != 0 || kd_st_numel(e) != n || e->ndim > 1)
        return kd_fail(KD_ERR_FORMAT, "%s: tensor '%s' is %s %s, expected F32 [%lld]", file->path, shown, e->dtype,
                       kd_st_shape_str(e, sb, sizeof sb), (long long)n);
    kd_status s = kd_st_read_f32(file, e, dst);
    for (int64_t i = 0; s == KD_OK && i < n; i++)
        if (!(dst[i] > 0.0f) || !isfinite(dst[i]))
            return kd_fail(KD_ERR_FORMAT, "%s: tensor '%s' holds %g at element %lld, expected a positive finite scale",
                           file->path, shown, (double)dst[i], (long long)i);
    return s;
}

/* Int8 linear qi: its I8 weight e [out, in], "<name>_scale" F32 [out] and, with static activations,
 * "<linear>.input_scale" F32 [1]; the f32 weight gives back its memory. */
static kd_status load_s8(kd_bert *m, size_t qi, const kd_st_set *st, const kd_st_entry *e, const kd_safetensors *file,
                         int strip)
{
    kd_tensor *w, *b;
    kd_bert_qlinear(m, qi, &w, &b);
    kd_s8_weight *s = &m->quant->w[qi];
    char s1[64], s2[64], name[160];
    if (strcmp(e->dtype, "I8") != 0 || e->ndim != 2 || e->shape[0] != s->out || e->shape[1] != s->in)
        return kd_fail(KD_ERR_FORMAT, "%s: tensor '%s' is %s %s, expected I8 %s (config.json says the model is int8: "
                       "kd_quantization)", file->path, e->name, e->dtype, kd_st_shape_str(e, s1, sizeof s1),
                       kd_shape_str(w, s2, sizeof s2));
    kd_status st8 = kd_st_read_i8(file, e, s->q);
    if (st8 != KD_OK) return st8;
    snprintf(name, sizeof name, "%s_scale", w->name);
    if ((st8 = read_scales(st, name, strip, s->out, s->scale)) != KD_OK) return st8;
    if (m->quant->static_act) {
        size_t len = strlen(w->name) - strlen(".weight");
        snprintf(name, sizeof name, "%.*s.input_scale", (int)len, w->name);
        if ((st8 = read_scales(st, name, strip, 1, &s->act_scale)) != KD_OK) return st8;
    }
    kd_bert_quant_release_f32(m, qi);
    return KD_OK;
}

kd_bert *kd_bert_load(const char *dir, int num_labels_override, uint64_t seed, int *missing_head)
{
    char path[4096];
    kd_bert_config cfg;
    join(path, sizeof path, dir, "config.json");
    if (kd_bert_config_load(path, &cfg) != KD_OK) return NULL;
    if (num_labels_override > 0 && num_labels_override != cfg.num_labels) {
        if (num_labels_override > KD_BERT_MAX_LABELS) {
            kd_fail(KD_ERR_ARG, "num_labels %d, expected at most %d", num_labels_override, KD_BERT_MAX_LABELS);
            return NULL;
        }
        cfg.num_labels = num_labels_override;
        kd_bert_default_labels(&cfg);
    }
    kd_bert *m = kd_bert_alloc(&cfg);
    if (!m) return NULL;
    kd_st_set *st = NULL;
    int quantized = cfg.quant_activations[0] != 0;
    if (quantized && kd_bert_quant_alloc(m, strcmp(cfg.quant_activations, "static-per-tensor") == 0) != KD_OK) goto fail;
    if (quantized) snprintf(m->cfg.quant_calibration, sizeof m->cfg.quant_calibration, "%s", cfg.quant_calibration);
    if (!(st = open_weights(dir))) goto fail;
    int strip = kd_st_set_find(st, "bert.embeddings.word_embeddings.weight", NULL) == NULL &&
                kd_st_set_find(st, "embeddings.word_embeddings.weight", NULL) != NULL;
    int head_missing = 0;
    for (size_t i = 0; i < m->n_params; i++) {
        kd_tensor *p = m->params[i];
        const kd_safetensors *file = NULL;
        const kd_st_entry *e = find_entry(st, p->name, strip, &file);
        /* The pooler may be absent (BertModel(add_pooling_layer=False)); the classifier is absent from a
         * BertModel, and replaced when its size is overridden. Those are initialised fresh. */
        int head = is_head(p->name) || is_pooler(p->name);
        int resized = is_head(p->name) && num_labels_override > 0 && e && e->ndim >= 1 && e->shape[0] != cfg.num_labels;
        if (head && (!e || resized)) {
            kd_bert_init_param(m, p, seed);
            head_missing = 1;
            continue;
        }
        if (!e) {
            kd_fail(KD_ERR_FORMAT, "%s: tensor '%s'%s is missing", st->path, strip ? p->name + 5 : p->name,
                    strip ? " (BertModel naming)" : "");
            goto fail;
        }
        const char *fpath = file->path;
        char s1[64], s2[64];
        long qi = quantized ? qlinear_index(m, p) : -1;
        if (qi >= 0) {
            if (load_s8(m, (size_t)qi, st, e, file, strip) != KD_OK) goto fail;
            continue;
        }
        int same = e->ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++) same = e->shape[d] == p->shape[d];
        if (!same) {
            kd_fail(KD_ERR_SHAPE, "%s: tensor '%s' has shape %s, expected %s from config.json", fpath, e->name,
                    kd_st_shape_str(e, s1, sizeof s1), kd_shape_str(p, s2, sizeof s2));
            goto fail;
        }
        if (strcmp(e->dtype, "F32") && strcmp(e->dtype, "F16") && strcmp(e->dtype, "BF16") && strcmp(e->dtype, "F64")) {
            kd_fail(KD_ERR_DTYPE, "%s: tensor '%s' has dtype %s, expected F32, F16, BF16 (or F64)", fpath, e->name,
                    e->dtype);
            goto fail;
        }
        kd_mark_modified(p);
        if (kd_st_read_f32(file, e, kd_data(p)) != KD_OK) goto fail;
        /* A NaN or Inf weight would make every output NaN (or silently wrong): named here, at load. */
        const float *w = kd_data(p);
        for (int64_t k = 0, nk = kd_numel(p); k < nk; k++)
            if (!isfinite(w[k])) {
                kd_fail(KD_ERR_FORMAT, "%s: tensor '%s' holds %s at element %lld, expected finite weights", fpath,
                        e->name, isnan(w[k]) ? "NaN" : "Inf", (long long)k);
                goto fail;
            }
    }
    kd_st_set_close(st);
    st = NULL;
    join(path, sizeof path, dir, "vocab.txt");
    if (access(path, F_OK) == 0 && kd_bert_check_vocab(m, path) != KD_OK) goto fail;
    if (missing_head) *missing_head = head_missing;
    return m;
fail:
    kd_st_set_close(st);
    kd_bert_free(m);
    return NULL;
}

/* An int8 model's model.safetensors: the int8 linears' weights as I8 with "<name>_scale" F32 [out] (and
 * "<linear>.input_scale" F32 [1] with static activations), every other parameter F32. */
static kd_status save_s8(const kd_bert *mc, const char *path, const char *const *meta)
{
    kd_bert *m = (kd_bert *)mc;   /* kd_bert_qlinear hands out the tensors; nothing is changed */
    size_t cap = m->n_params + 2 * m->quant->n;
    kd_st_item *items = calloc(cap, sizeof *items);
    char (*names)[160] = calloc(2 * m->quant->n, sizeof *names);
    if (!items || !names) {
        free(items);
        free(names);
        return kd_fail(KD_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t n = 0, nn = 0;
    for (size_t i = 0; i < m->n_params; i++) {
        const kd_tensor *p = m->params[i];
        KD_CHECK(p->device == KD_CPU && p->dtype == KD_F32 && kd_is_contiguous(p));
        kd_st_item *it = &items[n++];
        it->name = p->name;
        it->ndim = p->ndim;
        for (int d = 0; d < p->ndim; d++) it->shape[d] = p->shape[d];
        long qi = qlinear_index(m, p);
        if (qi < 0) {
            it->dtype = "F32";
            it->data = kd_data(p);
            continue;
        }
        const kd_s8_weight *s = &m->quant->w[qi];
        it->dtype = "I8";
        it->data = s->q;
        kd_st_item *sc = &items[n++];
        snprintf(names[nn], sizeof names[nn], "%s_scale", p->name);
        *sc = (kd_st_item){ .name = names[nn++], .dtype = "F32", .ndim = 1, .shape = { s->out }, .data = s->scale };
        if (m->quant->static_act) {
            kd_st_item *as = &items[n++];
            snprintf(names[nn], sizeof names[nn], "%.*s.input_scale", (int)(strlen(p->name) - strlen(".weight")), p->name);
            *as = (kd_st_item){ .name = names[nn++], .dtype = "F32", .ndim = 1, .shape = { 1 }, .data = &s->act_scale };
        }
    }
    kd_status st = kd_st_save_items(path, items, n, meta, 1);
    free(items);
    free(names);
    return st;
}

kd_status kd_bert_save(const kd_bert *m, const char *dir)
{
    kd_status s = make_dir(dir);
    if (s != KD_OK) return s;
    char path[4096];
    join(path, sizeof path, dir, "model.safetensors");
    const char *meta[2] = { "format", "pt" };
    if (m->quant) s = save_s8(m, path, meta);
    else s = kd_st_save(path, m->params, NULL, m->n_params, meta, 1);
    if (s != KD_OK) return s;
    join(path, sizeof path, dir, "config.json");
    return kd_bert_config_save(path, &m->cfg);
}

kd_status kd_bert_copy_vocab(const char *vocab_path, const char *dir)
{
    kd_status s = make_dir(dir);
    if (s != KD_OK) return s;
    char path[4096];
    join(path, sizeof path, dir, "vocab.txt");
    char *text;
    size_t len;
    s = kd_read_file(vocab_path, &text, &len);
    if (s != KD_OK) return s;
    s = kd_write_file_atomic(path, text, len);
    free(text);
    return s;
}

/* dst[r][c] = src[map(r)][map(c)], where a dimension of n entries taken from one of m entries in g groups
 * (attention heads; g = 1 for a plain dimension) maps index i to (i / (n/g)) * (m/g) + i % (n/g): the
 * leading n/g entries of every group. 1-D tensors have one column. Equal shapes are a plain copy. */
static kd_status slice_param(kd_tensor *dst, const kd_tensor *src, int row_groups, int col_groups)
{
    if (kd_same_shape(dst, src)) return kd_copy_into(dst, src);
    KD_CHECK(dst->ndim == src->ndim && dst->ndim >= 1 && dst->ndim <= 2);
    int64_t nr = dst->shape[0], mr = src->shape[0];
    int64_t nc = dst->ndim == 2 ? dst->shape[1] : 1, mc = src->ndim == 2 ? src->shape[1] : 1;
    KD_CHECK(nr <= mr && nc <= mc && nr % row_groups == 0 && mr % row_groups == 0 && nc % col_groups == 0 &&
             mc % col_groups == 0);
    float *in = malloc((size_t)(mr * mc) * sizeof *in), *out = malloc((size_t)(nr * nc) * sizeof *out);
    kd_status st = in && out ? kd_to_host(src, in) : kd_fail(KD_ERR_NOMEM, "student from teacher: out of memory");
    if (st == KD_OK) {
        int64_t gr = nr / row_groups, sgr = mr / row_groups, gc = nc / col_groups, sgc = mc / col_groups;
        for (int64_t r = 0; r < nr; r++) {
            int64_t fr = r / gr * sgr + r % gr;
            for (int64_t c = 0; c < nc; c++) out[r * nc + c] = in[fr * mc + c / gc * sgc + c % gc];
        }
        st = kd_from_host(dst, out);
    }
    free(in);
    free(out);
    return st;
}

kd_bert *kd_bert_from_teacher(const kd_bert *teacher, const kd_bert_config *scfg, const int *layers, uint64_t seed)
{
    const kd_bert_config *t = &teacher->cfg;
    if (teacher->quant) {
        kd_fail(KD_ERR_ARG, "student from teacher: the teacher is an int8 model (config.json kd_quantization); copy "
                "layers from the f32 model it was quantized from");
        return NULL;
    }
    if (kd_bert_config_check(scfg, "student") != KD_OK) return NULL;
    const struct { const char *field; int tv, sv; } same[] = {
        { "num_attention_heads", t->num_heads, scfg->num_heads },
        { "vocab_size", t->vocab_size, scfg->vocab_size },
        { "max_position_embeddings", t->max_position, scfg->max_position },
        { "type_vocab_size", t->type_vocab_size, scfg->type_vocab_size },
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        if (same[i].tv != same[i].sv) {
            kd_fail(KD_ERR_SHAPE,
                    "student from teacher: %s differs (teacher %d, student %d); copying layers needs them equal",
                    same[i].field, same[i].tv, same[i].sv);
            return NULL;
        }
    }
    /* Narrower is a slice of the teacher; wider has nothing to copy from. */
    const struct { const char *field; int tv, sv; } narrow[] = {
        { "hidden_size", t->hidden_size, scfg->hidden_size },
        { "intermediate_size", t->intermediate_size, scfg->intermediate_size },
    };
    for (size_t i = 0; i < sizeof narrow / sizeof narrow[0]; i++) {
        if (narrow[i].sv > narrow[i].tv) {
            kd_fail(KD_ERR_SHAPE,
                    "student from teacher: %s is wider than the teacher's (teacher %d, student %d); a student sliced "
                    "from the teacher needs it at most the teacher's", narrow[i].field, narrow[i].tv, narrow[i].sv);
            return NULL;
        }
    }
    int ns = scfg->num_layers, nt = t->num_layers;
    if (!layers && ns > nt) {
        kd_fail(KD_ERR_SHAPE, "student from teacher: student has %d layers, teacher only %d", ns, nt);
        return NULL;
    }
    for (int i = 0; layers && i < ns; i++) {
        if (layers[i] < 0 || layers[i] >= nt) {
            kd_fail(KD_ERR_INDEX, "student from teacher: layer list entry %d is %d, expected in [0, %d)", i, layers[i], nt);
            return NULL;
        }
    }
    kd_bert *s = kd_bert_new(scfg, seed);
    if (!s) return NULL;
    /* Every matrix keeps its leading rows/columns; Q, K, V rows and the attention output's columns keep the
     * leading head_size entries of each head (the heads keep their number, each gets narrower). */
    const int h = scfg->num_heads;
    kd_status st = KD_OK;
#define SLICE(d, sr, rg, cg) \
    if (st == KD_OK) st = slice_param(d, sr, rg, cg)
    SLICE(s->word, teacher->word, 1, 1);
    SLICE(s->pos, teacher->pos, 1, 1);
    SLICE(s->type, teacher->type, 1, 1);
    SLICE(s->eln_w, teacher->eln_w, 1, 1);
    SLICE(s->eln_b, teacher->eln_b, 1, 1);
    int k = nt / ns;   /* DistilBERT-style: every k-th teacher layer, starting at the first */
    for (int i = 0; i < ns; i++) {
        const kd_bert_layer *tl = &teacher->layers[layers ? layers[i] : i * k];
        kd_bert_layer *sl = &s->layers[i];
        SLICE(sl->q_w, tl->q_w, h, 1);
        SLICE(sl->q_b, tl->q_b, h, 1);
        SLICE(sl->k_w, tl->k_w, h, 1);
        SLICE(sl->k_b, tl->k_b, h, 1);
        SLICE(sl->v_w, tl->v_w, h, 1);
        SLICE(sl->v_b, tl->v_b, h, 1);
        SLICE(sl->ao_w, tl->ao_w, 1, h);
        SLICE(sl->ao_b, tl->ao_b, 1, 1);
        SLICE(sl->aln_w, tl->aln_w, 1, 1);
        SLICE(sl->aln_b, tl->aln_b, 1, 1);
        SLICE(sl->i_w, tl->i_w, 1, 1);
        SLICE(sl->i_b, tl->i_b, 1, 1);
        SLICE(sl->o_w, tl->o_w, 1, 1);
        SLICE(sl->o_b, tl->o_b, 1, 1);
        SLICE(sl->oln_w, tl->oln_w, 1, 1);
        SLICE(sl->oln_b, tl->oln_b, 1, 1);
    }
    SLICE(s->pool_w, teacher->pool_w, 1, 1);
    SLICE(s->pool_b, teacher->pool_b, 1, 1);
    if (scfg->num_labels == t->num_labels) {
        SLICE(s->cls_w, teacher->cls_w, 1, 1);
        SLICE(s->cls_b, teacher->cls_b, 1, 1);
    }
#undef SLICE
    if (st != KD_OK) {
        kd_bert_free(s);
        return NULL;
    }
    return s;
}
