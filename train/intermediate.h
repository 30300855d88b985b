/* train/intermediate.h — the intermediate-layer terms of a distillation step (kd_train_config's layer map,
 * hidden and attention losses): which states the two forwards keep, the learned projections, and the
 * terms added to a step's loss. */
#ifndef KD_TRAIN_INTERMEDIATE_H
#define KD_TRAIN_INTERMEDIATE_H

#include "data/batch.h"
#include "train/trainer.h"

typedef struct kd_intermediate {
    const kd_train_config *c;
    int on;                                   /* a weight > 0 */
    kd_bert_states s, t;                      /* what the student's and the teacher's forwards keep */
    kd_tensor *proj[KD_BERT_MAX_STATES];      /* pair i's projection [Ht, Hs]; NULL when the sizes agree */
    int nproj, heads;
    int32_t *tok_rows, *q_rows;               /* a batch's rows to compare (host) */
} kd_intermediate;

/* The default map: the embeddings to the embeddings, and student layer l (1..ls) to teacher layer
 * round(l * lt / ls) (evenly spaced, the last to the last, as TinyBERT's 3m for 4 of 12). Returns the count. */
int kd_layer_map_default(int ls, int lt, int map[][2]);
/* Check c's map and weights against the models and make the projections (seeded). */
kd_status kd_intermediate_init(kd_intermediate *im, const kd_train_config *c, kd_bert *student, const kd_bert *teacher,
                               int cached_teacher, uint64_t seed);
void kd_intermediate_free(kd_intermediate *im);
/* After both forwards kept their states: add hidden_weight * hidden + attention_weight * attention to
 * lp->total (and set lp->hidden, lp->attention), comparing the tokens the student batch does not pad. */
kd_status kd_intermediate_add(kd_intermediate *im, const kd_batch *sb, const kd_batch *tb, kd_loss_parts *lp);
/* The projections in dir/distill_projections.safetensors (nothing when there are none). */
kd_status kd_intermediate_save(const kd_intermediate *im, const char *dir);
kd_status kd_intermediate_load(kd_intermediate *im, const char *dir);

#endif
