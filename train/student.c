/* train/student.c — the student-building policy of `kd distill` (see student.h): where the shape comes
 * from, which flags may change it, and where the weights come from. */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "train/cli.h"
#include "train/student.h"

static int exists(const char *dir, const char *file)
{
    char p[PATH_MAX + 32];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, file);
    return stat(p, &st) == 0;
}

int kd_student_is_config_only(const char *dir)
{
    return dir && !kd_cli_is_preset(dir) && exists(dir, "config.json") && !exists(dir, "model.safetensors") &&
           !exists(dir, "model.safetensors.index.json") && !exists(dir, "pytorch_model.bin") &&
           !exists(dir, "pytorch_model.bin.index.json");
}

/* A flag's value that cannot work: the CLI's usage error. */
#define FLAG_FAIL(...) (flag_error ? (void)(*flag_error = 1) : (void)0, kd_fail(KD_ERR_ARG, __VA_ARGS__))

static void set_labels(kd_bert_config *cfg, const kd_labels *labels)
{
    cfg->num_labels = labels->n;
    for (int i = 0; i < labels->n; i++) snprintf(cfg->labels[i], sizeof cfg->labels[i], "%s", labels->names[i]);
}

kd_status kd_student_config(const kd_student_spec *spec, const kd_bert *teacher, const kd_tokenizer *stok,
                            const kd_labels *labels, kd_bert_config *cfg, int *flag_error)
{
    const kd_bert_config *t = kd_bert_get_config(teacher);
    const char *src = spec->student;
    int checkpoint = 0;
    if (flag_error) *flag_error = 0;
    if (labels->n > KD_BERT_MAX_LABELS)
        return kd_fail(KD_ERR_ARG, "%d labels, at most %d supported", labels->n, KD_BERT_MAX_LABELS);
    if (!src && !spec->init_from_teacher)
        return FLAG_FAIL("--student: got nothing, expected a preset name or a model directory");
    if (spec->init == KD_STUDENT_INIT_SLICED && !spec->init_from_teacher)
        return FLAG_FAIL("--student-init: got 'sliced', which needs --init-from-teacher (a teacher to slice); "
                         "without it the student is initialised fresh");
    *cfg = *t;
    if (src && kd_cli_is_preset(src)) {
        kd_status st = kd_bert_preset(src, cfg);
        if (st != KD_OK) return st;
        cfg->vocab_size = kd_vocab_size(stok->vocab);
        set_labels(cfg, labels);
    } else if (src) {
        char path[PATH_MAX + 16];
        snprintf(path, sizeof path, "%s/config.json", src);
        kd_status st = kd_bert_config_load(path, cfg);
        if (st != KD_OK) return st;
        checkpoint = !kd_student_is_config_only(src);
        if (!checkpoint) {
            cfg->vocab_size = kd_vocab_size(stok->vocab);
            set_labels(cfg, labels);
        }
    }
    if (checkpoint && !spec->init_from_teacher && (spec->layers > 0 || spec->hidden > 0 || spec->intermediate > 0)) {
        const char *flag = spec->layers > 0 ? "--student-layers" : spec->hidden > 0 ? "--student-hidden"
                                                                                    : "--student-intermediate";
        return FLAG_FAIL("%s: %s holds weights (model.safetensors) that fix its shape; give a preset, a directory "
                         "with only config.json, or --init-from-teacher", flag, src);
    }
    if (spec->init_from_teacher) cfg->vocab_size = t->vocab_size;
    if (spec->layers > 0) cfg->num_layers = spec->layers;
    if (spec->hidden > 0) {
        if (spec->init_from_teacher && spec->hidden > t->hidden_size)
            return FLAG_FAIL("--student-hidden: got %d, expected at most the teacher's hidden_size %d (a student "
                             "from the teacher is sliced from it, never wider)", spec->hidden, t->hidden_size);
        if (spec->hidden % cfg->num_heads != 0)
            return FLAG_FAIL("--student-hidden: got %d, expected a multiple of num_attention_heads %d (the heads "
                             "keep their number; each gets hidden/heads dimensions)", spec->hidden, cfg->num_heads);
        /* The FFN keeps its ratio to the hidden size (4 in every BERT preset). */
        int64_t scaled = (int64_t)cfg->intermediate_size * spec->hidden / cfg->hidden_size;
        cfg->intermediate_size = scaled > 0 ? (int)scaled : 1;
        cfg->hidden_size = spec->hidden;
    }
    if (spec->intermediate > 0) {
        if (spec->init_from_teacher && spec->intermediate > t->intermediate_size)
            return FLAG_FAIL("--student-intermediate: got %d, expected at most the teacher's intermediate_size %d (a "
                             "student from the teacher is sliced from it, never wider)", spec->intermediate,
                             t->intermediate_size);
        cfg->intermediate_size = spec->intermediate;
    }
    return kd_bert_config_check(cfg, "student");
}

kd_bert *kd_student_build(const kd_student_spec *spec, const kd_bert *teacher, const kd_tokenizer *stok,
                          const kd_labels *labels, uint64_t seed)
{
    kd_bert_config cfg;
    if (kd_student_config(spec, teacher, stok, labels, &cfg, NULL) != KD_OK) return NULL;
    if (spec->init_from_teacher && spec->init != KD_STUDENT_INIT_RANDOM)
        return kd_bert_from_teacher(teacher, &cfg, NULL, seed);
    if (spec->init_from_teacher || !spec->student || kd_cli_is_preset(spec->student) ||
        kd_student_is_config_only(spec->student))
        return kd_bert_new(&cfg, seed);
    return kd_cli_make_model(spec->student, stok->vocab, labels, "the teacher", seed, spec->cmd ? spec->cmd : "distill");
}
