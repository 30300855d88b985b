/* train/intermediate.c — the intermediate-layer terms of a distillation step (see intermediate.h). */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/ops.h"
#include "engine/safetensors.h"
#include "train/intermediate.h"

int kd_layer_map_default(int ls, int lt, int map[][2])
{
    map[0][0] = map[0][1] = 0;
    for (int l = 1; l <= ls; l++) {
        map[l][0] = l;
        map[l][1] = (int)floor((double)l * lt / ls + 0.5);
    }
    return ls + 1;
}

kd_status kd_intermediate_init(kd_intermediate *im, const kd_train_config *c, kd_bert *student, const kd_bert *teacher,
                               int cached_teacher, uint64_t seed)
{
    memset(im, 0, sizeof *im);
    im->c = c;
    im->on = c->hidden_weight > 0 || c->attention_weight > 0;
    if (!im->on) return KD_OK;
    if (!teacher) return kd_fail(KD_ERR_ARG, "train: intermediate-layer losses need a teacher");
    if (cached_teacher)
        return kd_fail(KD_ERR_ARG, "train: --cache-teacher keeps the teacher's logits only; intermediate-layer losses "
                                   "need its hidden states every step (drop --cache-teacher)");
    const kd_bert_config *sc = kd_bert_get_config(student), *tc = kd_bert_get_config(teacher);
    if (c->n_layer_map < 1) return kd_fail(KD_ERR_ARG, "train: intermediate-layer losses with an empty layer map");
    if (c->attention_weight > 0 && sc->num_heads != tc->num_heads)
        return kd_fail(KD_ERR_SHAPE, "train: the attention loss compares head by head, but the student has %d heads and "
                                     "the teacher %d (use --attention-weight 0, or a student with %d heads)",
                       sc->num_heads, tc->num_heads, tc->num_heads);
    im->heads = sc->num_heads;
    for (int i = 0; i < c->n_layer_map; i++) {
        int s = c->layer_map[i][0], t = c->layer_map[i][1];
        if (s < 0 || s > sc->num_layers || t < 0 || t > tc->num_layers)
            return kd_fail(KD_ERR_ARG, "train: layer map %d:%d: expected student layer 0..%d and teacher layer 0..%d "
                                       "(0 is the embedding output)", s, t, sc->num_layers, tc->num_layers);
        if (c->hidden_weight > 0) {
            im->s.hidden |= 1ull << s;
            im->t.hidden |= 1ull << t;
        }
        if (c->attention_weight > 0 && s > 0 && t > 0) {
            im->s.attention |= 1ull << s;
            im->t.attention |= 1ull << t;
        }
        if (c->hidden_weight > 0 && sc->hidden_size != tc->hidden_size) {
            /* TinyBERT's W_h, N(0, 0.02) as BERT's weights; trained with the student, never saved into it. */
            int64_t shape[2] = { tc->hidden_size, sc->hidden_size };
            char name[64];
            snprintf(name, sizeof name, "projection.%d.%d", s, t);
            kd_tensor *w = kd_randn(KD_F32, 2, shape, 0.0, 0.02, seed + 7919u * (uint64_t)(i + 1));
            kd_tensor *p = w ? kd_param_on(kd_bert_device(student), KD_F32, 2, shape, name) : NULL;
            if (!p || kd_copy_into(p, w) != KD_OK) {
                kd_tensor_free(p);
                kd_intermediate_free(im);
                return kd_last_status();
            }
            im->proj[i] = p;
            im->nproj++;
        }
    }
    kd_arena_reset();
    size_t n = (size_t)c->batch_size * (size_t)(sc->max_position > tc->max_position ? sc->max_position : tc->max_position);
    im->tok_rows = malloc(n * sizeof *im->tok_rows);
    im->q_rows = malloc(n * (size_t)im->heads * sizeof *im->q_rows);
    if (!im->tok_rows || !im->q_rows) {
        kd_intermediate_free(im);
        return kd_fail(KD_ERR_NOMEM, "train: out of memory for the intermediate-layer rows");
    }
    return KD_OK;
}

void kd_intermediate_free(kd_intermediate *im)
{
    for (int i = 0; i < KD_BERT_MAX_STATES; i++) kd_tensor_free(im->proj[i]);
    free(im->tok_rows);
    free(im->q_rows);
    memset(im, 0, sizeof *im);
}

kd_status kd_intermediate_add(kd_intermediate *im, const kd_batch *sb, const kd_batch *tb, kd_loss_parts *lp)
{
    const kd_train_config *c = im->c;
    int64_t B = sb->batch, T = sb->len;
    if (tb->batch != B || tb->len != T || memcmp(tb->mask, sb->mask, (size_t)(B * T) * sizeof *sb->mask) != 0)
        return kd_fail(KD_ERR_SHAPE, "train: intermediate-layer losses compare token by token, but the teacher's and the "
                                     "student's tokenizations differ (lengths %d and %d): use the teacher's vocabulary "
                                     "and case (tokenizer_config.json) for the student, or --prune-vocab", (int)tb->len, (int)sb->len);
    int64_t m = 0, mq = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++)
            if (sb->mask[b * T + t]) {
                im->tok_rows[m++] = (int32_t)(b * T + t);
                for (int h = 0; h < im->heads; h++) im->q_rows[mq++] = (int32_t)((b * im->heads + h) * T + t);
            }
    kd_device dev = lp->total->device;
    kd_tensor *rows = kd_from_buffer_on(dev, KD_I32, 1, &m, im->tok_rows);
    kd_tensor *qrows = c->attention_weight > 0 ? kd_from_buffer_on(dev, KD_I32, 1, &mq, im->q_rows) : NULL;
    kd_tensor *hid = NULL, *att = NULL;
    int nh = 0, na = 0;
    for (int i = 0; i < c->n_layer_map; i++) {
        int s = c->layer_map[i][0], t = c->layer_map[i][1];
        if (c->hidden_weight > 0) {
            kd_tensor *h = kd_hidden_loss(im->s.h[s], im->t.h[t], im->proj[i], rows, c->hidden_loss);
            if (!h) return kd_last_status();
            hid = hid ? kd_add(hid, h) : h;
            nh++;
        }
        if (c->attention_weight > 0 && s > 0 && t > 0) {
            kd_tensor *a = kd_attention_loss(im->s.scores[s], im->t.scores[t], qrows, c->attention_loss);
            if (!a) return kd_last_status();
            att = att ? kd_add(att, a) : a;
            na++;
        }
    }
    if (nh) {
        lp->hidden = kd_scale(hid, 1.0 / nh);
        lp->total = kd_add(lp->total, kd_scale(lp->hidden, c->hidden_weight));
    }
    if (na) {
        lp->attention = kd_scale(att, 1.0 / na);
        lp->total = kd_add(lp->total, kd_scale(lp->attention, c->attention_weight));
    }
    return lp->total ? KD_OK : kd_last_status();
}

static void projection_path(const char *dir, char *path, size_t n)
{
    snprintf(path, n, "%s/distill_projections.safetensors", dir);
}

kd_status kd_intermediate_save(const kd_intermediate *im, const char *dir)
{
    if (!im->nproj) return KD_OK;
    kd_tensor *t[KD_BERT_MAX_STATES];
    const char *names[KD_BERT_MAX_STATES];
    size_t n = 0;
    for (int i = 0; i < KD_BERT_MAX_STATES; i++)
        if (im->proj[i]) {
            names[n] = im->proj[i]->name;
            t[n++] = im->proj[i];
        }
    char path[PATH_MAX + 40];
    projection_path(dir, path, sizeof path);
    return kd_st_save(path, t, names, n, NULL, 0);
}

kd_status kd_intermediate_load(kd_intermediate *im, const char *dir)
{
    if (!im->nproj) return KD_OK;
    char path[PATH_MAX + 40];
    projection_path(dir, path, sizeof path);
    kd_safetensors *st = kd_st_open(path);
    if (!st) return kd_last_status();
    kd_status s = KD_OK;
    for (int i = 0; i < KD_BERT_MAX_STATES && s == KD_OK; i++) {
        kd_tensor *p = im->proj[i];
        if (!p) continue;
        const kd_st_entry *e = kd_st_find(st, p->name);
        float *h = malloc((size_t)kd_numel(p) * sizeof *h);
        if (!e || kd_st_numel(e) != kd_numel(p))
            s = kd_fail(KD_ERR_FORMAT, "%s: no %s of %lld values (made by a run with another layer map?)", path, p->name,
                        (long long)kd_numel(p));
        else if (!h) s = kd_fail(KD_ERR_NOMEM, "out of memory");
        else if ((s = kd_st_read_f32(st, e, h)) == KD_OK) s = kd_from_host(p, h);
        free(h);
    }
    kd_st_close(st);
    return s;
}
