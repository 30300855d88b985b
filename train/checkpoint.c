/* train/checkpoint.c — checkpoint directories: model through models/, trainer state as JSON, optimizer
 * state through train/adamw.c, all under DIR.tmp and swapped in with renames (see checkpoint.h). */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/tokenizer_config.h"
#include "engine/json.h"
#include "train/checkpoint.h"

kd_status kd_series_push(kd_series *s, double x, double y)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        double *nx = realloc(s->x, cap * sizeof *nx);
        if (!nx) return kd_fail(KD_ERR_NOMEM, "series: out of memory");
        s->x = nx;
        double *ny = realloc(s->y, cap * sizeof *ny);
        if (!ny) return kd_fail(KD_ERR_NOMEM, "series: out of memory");
        s->y = ny;
        s->cap = cap;
    }
    s->x[s->n] = x;
    s->y[s->n] = y;
    s->n++;
    return KD_OK;
}

void kd_series_free(kd_series *s)
{
    free(s->x);
    free(s->y);
    memset(s, 0, sizeof *s);
}

void kd_train_state_free(kd_train_state *s)
{
    kd_series_free(&s->loss);
    kd_series_free(&s->dev);
    for (int k = 0; k < KD_LOSS_PARTS; k++) kd_series_free(&s->parts[k]);
    free(s->epochs);
    free(s->best_confusion);
    s->epochs = NULL;
    s->best_confusion = NULL;
    s->n_epochs = s->cap_epochs = 0;
    s->num_labels = 0;
}

kd_status kd_train_state_push_epoch(kd_train_state *s, const kd_epoch_record *e)
{
    if (s->n_epochs == s->cap_epochs) {
        size_t cap = s->cap_epochs ? 2 * s->cap_epochs : 16;
        kd_epoch_record *p = realloc(s->epochs, cap * sizeof *p);
        if (!p) return kd_fail(KD_ERR_NOMEM, "trainer state: out of memory");
        s->epochs = p;
        s->cap_epochs = cap;
    }
    s->epochs[s->n_epochs++] = *e;
    return KD_OK;
}

kd_status kd_train_state_set_confusion(kd_train_state *s, const int64_t *confusion, int k)
{
    size_t n = (size_t)k * (size_t)k;
    if (k != s->num_labels) {
        int64_t *p = realloc(s->best_confusion, (n ? n : 1) * sizeof *p);
        if (!p) return kd_fail(KD_ERR_NOMEM, "trainer state: out of memory");
        s->best_confusion = p;
        s->num_labels = k;
    }
    memcpy(s->best_confusion, confusion, n * sizeof *confusion);
    return KD_OK;
}

kd_status kd_make_dirs(const char *dir)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf) return kd_fail(KD_ERR_ARG, "path too long: %s", dir);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return kd_fail(KD_ERR_IO, "%s: cannot create the directory: %s", buf, strerror(errno));
            *p = c;
            if (c == '\0') break;
        }
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return kd_fail(KD_ERR_IO, "%s: exists and is not a directory", dir);
    return KD_OK;
}

kd_status kd_remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? KD_OK : kd_fail(KD_ERR_IO, "%s: cannot open: %s", dir, strerror(errno));
    struct dirent *e;
    char path[PATH_MAX];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        remove(path);
    }
    closedir(d);
    if (rmdir(dir) != 0) return kd_fail(KD_ERR_IO, "%s: cannot remove: %s", dir, strerror(errno));
    return KD_OK;
}

static void write_series(kd_jw *w, const char *key, const kd_series *s)
{
    kd_jw_key(w, key);
    kd_jw_array_begin(w);
    for (size_t i = 0; i < s->n; i++) {
        kd_jw_array_begin(w);
        kd_jw_number(w, s->x[i]);
        kd_jw_number(w, s->y[i]);
        kd_jw_array_end(w);
    }
    kd_jw_array_end(w);
}

static kd_status save_state_json(const char *path, const kd_train_state *s)
{
    kd_jw w;
    kd_jw_init(&w, 1);
    char hex[3][32];
    snprintf(hex[0], sizeof hex[0], "%016llx", (unsigned long long)s->seed);
    snprintf(hex[1], sizeof hex[1], "%016llx", (unsigned long long)s->rng.seed);
    snprintf(hex[2], sizeof hex[2], "%016llx", (unsigned long long)s->rng.counter);
    kd_jw_object_begin(&w);
    kd_jw_field_string(&w, "format", "kd-trainer-state-1");
    kd_jw_field_int(&w, "global_step", s->global_step);
    kd_jw_field_int(&w, "total_steps", s->total_steps);
    kd_jw_field_int(&w, "epoch", s->epoch);
    kd_jw_field_int(&w, "next_batch", s->next_batch);
    kd_jw_field_string(&w, "seed", hex[0]);
    kd_jw_field_string(&w, "rng_seed", hex[1]);
    kd_jw_field_string(&w, "rng_counter", hex[2]);
    kd_jw_field_number(&w, "best_accuracy", s->best_accuracy);
    kd_jw_field_int(&w, "best_epoch", s->best_epoch);
    kd_jw_field_number(&w, "train_seconds", s->train_seconds);
    write_series(&w, "loss_history", &s->loss);
    write_series(&w, "dev_history", &s->dev);
    /* [step, soft, hard, hidden, attention] per step, null where a step had none */
    kd_jw_key(&w, "parts_history");
    kd_jw_array_begin(&w);
    for (size_t i = 0; i < s->parts[0].n; i++) {
        kd_jw_array_begin(&w);
        kd_jw_number(&w, s->parts[0].x[i]);
        for (int k = 0; k < KD_LOSS_PARTS; k++) kd_jw_number(&w, i < s->parts[k].n ? s->parts[k].y[i] : NAN);
        kd_jw_array_end(&w);
    }
    kd_jw_array_end(&w);
    kd_jw_key(&w, "epoch_history");
    kd_jw_array_begin(&w);
    for (size_t i = 0; i < s->n_epochs; i++) {
        const kd_epoch_record *e = &s->epochs[i];
        kd_jw_object_begin(&w);
        kd_jw_field_int(&w, "epoch", e->epoch);
        kd_jw_field_int(&w, "step", e->step);
        kd_jw_field_number(&w, "accuracy", e->accuracy);
        kd_jw_field_number(&w, "macro_f1", e->macro_f1);
        kd_jw_field_number(&w, "macro_recall", e->macro_recall);
        kd_jw_field_number(&w, "dev_loss", e->dev_loss);
        kd_jw_field_number(&w, "train_loss", e->train_loss);
        kd_jw_field_number(&w, "seconds", e->seconds);
        kd_jw_object_end(&w);
    }
    kd_jw_array_end(&w);
    kd_jw_field_number(&w, "teacher_accuracy", s->teacher_accuracy);
    kd_jw_field_number(&w, "teacher_macro_f1", s->teacher_macro_f1);
    kd_jw_field_int(&w, "samples", s->samples);
    kd_jw_field_string(&w, "recipe", s->recipe);
    /* [sum, count] of the loss, then of each part, since the last metrics line */
    kd_jw_key(&w, "log_window");
    kd_jw_array_begin(&w);
    for (int k = 0; k <= KD_LOSS_PARTS; k++) {
        kd_jw_array_begin(&w);
        kd_jw_number(&w, s->window_sum[k]);
        kd_jw_int(&w, s->window_n[k]);
        kd_jw_array_end(&w);
    }
    kd_jw_array_end(&w);
    kd_jw_key(&w, "best_confusion");
    kd_jw_array_begin(&w);
    for (int a = 0; a < s->num_labels; a++) {
        kd_jw_array_begin(&w);
        for (int b = 0; b < s->num_labels; b++) kd_jw_int(&w, s->best_confusion[(size_t)a * (size_t)s->num_labels + (size_t)b]);
        kd_jw_array_end(&w);
    }
    kd_jw_array_end(&w);
    kd_jw_object_end(&w);
    const char *text = kd_jw_text(&w);
    kd_status st = text ? kd_write_file_atomic(path, text, strlen(text))
                        : kd_fail(KD_ERR_NOMEM, "%s: out of memory writing the trainer state", path);
    kd_jw_free(&w);
    return st;
}

kd_status kd_checkpoint_save_tokenizer(const char *dir, const kd_checkpoint_tokenizer *t)
{
    kd_status st = kd_bert_copy_vocab(t->vocab_path, dir);
    return st == KD_OK ? kd_tokenizer_config_save(dir, &t->opts, t->max_len) : st;
}

kd_status kd_checkpoint_save(const char *dir, const kd_bert *m, const kd_checkpoint_tokenizer *tok,
                             const kd_adamw *opt, const kd_train_state *state)
{
    char tmp[PATH_MAX], old[PATH_MAX], path[PATH_MAX + 64];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", dir) >= (int)sizeof tmp || snprintf(old, sizeof old, "%s.old", dir) >= (int)sizeof old)
        return kd_fail(KD_ERR_ARG, "checkpoint path too long: %s", dir);
    kd_status st = kd_remove_dir(tmp);
    if (st == KD_OK) st = kd_make_dirs(tmp);
    if (st == KD_OK) st = kd_bert_save(m, tmp);
    if (st == KD_OK && tok) st = kd_checkpoint_save_tokenizer(tmp, tok);
    if (st == KD_OK && opt) {
        snprintf(path, sizeof path, "%s/optimizer.bin", tmp);
        st = kd_adamw_save(opt, path);
    }
    if (st == KD_OK && state) {
        snprintf(path, sizeof path, "%s/trainer_state.json", tmp);
        st = save_state_json(path, state);
    }
    if (st != KD_OK) return st;
    /* Swap: DIR -> DIR.old, DIR.tmp -> DIR, drop DIR.old. At every instant one whole copy exists. */
    struct stat sb;
    kd_remove_dir(old);
    if (stat(dir, &sb) == 0 && rename(dir, old) != 0)
        return kd_fail(KD_ERR_IO, "%s: cannot move the previous checkpoint aside: %s", dir, strerror(errno));
    if (rename(tmp, dir) != 0) return kd_fail(KD_ERR_IO, "%s: cannot move the checkpoint into place: %s", dir, strerror(errno));
    kd_remove_dir(old);
    return KD_OK;
}

const char *kd_checkpoint_find(const char *dir, char *buf, size_t n)
{
    struct stat sb;
    char probe[PATH_MAX];
    snprintf(probe, sizeof probe, "%s/trainer_state.json", dir);
    if (stat(probe, &sb) == 0) {
        snprintf(buf, n, "%s", dir);
        return buf;
    }
    snprintf(probe, sizeof probe, "%s.old/trainer_state.json", dir);
    if (stat(probe, &sb) == 0) {
        snprintf(buf, n, "%s.old", dir);
        return buf;
    }
    return NULL;
}

static int get_int(const kd_json *o, const char *key, int64_t *v)
{
    const kd_json *j = kd_json_get(o, key);
    if (!j || j->type != KD_JSON_NUMBER || !j->is_integer) return 0;
    *v = j->integer;
    return 1;
}

static int get_hex(const kd_json *o, const char *key, uint64_t *v)
{
    const kd_json *j = kd_json_get(o, key);
    if (!j || j->type != KD_JSON_STRING) return 0;
    char *end;
    errno = 0;
    *v = strtoull(j->string, &end, 16);
    return errno == 0 && *end == '\0' && end != j->string;
}

static int get_num(const kd_json *o, const char *key, double *v)
{
    const kd_json *j = kd_json_get(o, key);
    if (!j || j->type != KD_JSON_NUMBER) return 0;
    *v = j->number;
    return 1;
}

static int get_series(const kd_json *o, const char *key, kd_series *s)
{
    const kd_json *a = kd_json_get(o, key);
    if (!a || a->type != KD_JSON_ARRAY) return 0;
    for (size_t i = 0; i < a->count; i++) {
        const kd_json *p = a->items[i];
        if (p->type != KD_JSON_ARRAY || p->count != 2 || p->items[0]->type != KD_JSON_NUMBER ||
            p->items[1]->type != KD_JSON_NUMBER)
            return 0;
        if (kd_series_push(s, p->items[0]->number, p->items[1]->number) != KD_OK) return 0;
    }
    return 1;
}

static double num_or_nan(const kd_json *j) { return j && j->type == KD_JSON_NUMBER ? j->number : NAN; }

/* What the chart and the report need beyond resuming: optional (an older state has none), each checked. */
static int get_report_history(const kd_json *o, kd_train_state *s)
{
    const kd_json *a = kd_json_get(o, "parts_history");
    for (size_t i = 0; a && a->type == KD_JSON_ARRAY && i < a->count; i++) {
        const kd_json *p = a->items[i];
        if (p->type != KD_JSON_ARRAY || p->count != 1 + KD_LOSS_PARTS || p->items[0]->type != KD_JSON_NUMBER) return 0;
        for (int k = 0; k < KD_LOSS_PARTS; k++)
            if (kd_series_push(&s->parts[k], p->items[0]->number, num_or_nan(p->items[1 + k])) != KD_OK) return 0;
    }
    a = kd_json_get(o, "epoch_history");
    for (size_t i = 0; a && a->type == KD_JSON_ARRAY && i < a->count; i++) {
        const kd_json *e = a->items[i];
        int64_t epoch, step;
        if (e->type != KD_JSON_OBJECT || !get_int(e, "epoch", &epoch) || !get_int(e, "step", &step)) return 0;
        kd_epoch_record r = { .epoch = (int)epoch, .step = step,
                              .accuracy = num_or_nan(kd_json_get(e, "accuracy")),
                              .macro_f1 = num_or_nan(kd_json_get(e, "macro_f1")),
                              .macro_recall = num_or_nan(kd_json_get(e, "macro_recall")),
                              .dev_loss = num_or_nan(kd_json_get(e, "dev_loss")),
                              .train_loss = num_or_nan(kd_json_get(e, "train_loss")),
                              .seconds = num_or_nan(kd_json_get(e, "seconds")) };
        if (kd_train_state_push_epoch(s, &r) != KD_OK) return 0;
    }
    s->teacher_accuracy = s->teacher_macro_f1 = -1.0;
    get_num(o, "teacher_accuracy", &s->teacher_accuracy);
    get_num(o, "teacher_macro_f1", &s->teacher_macro_f1);
    get_int(o, "samples", &s->samples);
    const kd_json *recipe = kd_json_get(o, "recipe");
    if (recipe && recipe->type != KD_JSON_STRING) return 0;
    if (recipe) snprintf(s->recipe, sizeof s->recipe, "%s", recipe->string);
    a = kd_json_get(o, "log_window");
    if (a && (a->type != KD_JSON_ARRAY || a->count != 1 + KD_LOSS_PARTS)) return 0;
    for (size_t k = 0; a && k < a->count; k++) {
        const kd_json *p = a->items[k];
        if (p->type != KD_JSON_ARRAY || p->count != 2 || p->items[0]->type != KD_JSON_NUMBER ||
            p->items[1]->type != KD_JSON_NUMBER || !p->items[1]->is_integer || p->items[1]->integer < 0)
            return 0;
        s->window_sum[k] = p->items[0]->number;
        s->window_n[k] = p->items[1]->integer;
    }
    a = kd_json_get(o, "best_confusion");
    if (a && a->type == KD_JSON_ARRAY && a->count > 0) {
        int k = (int)a->count;
        int64_t *c = malloc((size_t)k * (size_t)k * sizeof *c);
        int ok = c != NULL;
        for (int r = 0; ok && r < k; r++) {
            const kd_json *row = a->items[r];
            ok = row->type == KD_JSON_ARRAY && row->count == (size_t)k;
            for (int j = 0; ok && j < k; j++) {
                ok = row->items[j]->type == KD_JSON_NUMBER && row->items[j]->is_integer;
                if (ok) c[(size_t)r * (size_t)k + (size_t)j] = row->items[j]->integer;
            }
        }
        if (ok) ok = kd_train_state_set_confusion(s, c, k) == KD_OK;
        free(c);
        if (!ok) return 0;
    }
    return 1;
}

kd_status kd_checkpoint_load_state(const char *dir, kd_adamw *opt, kd_train_state *s)
{
    char path[PATH_MAX];
    memset(s, 0, sizeof *s);
    snprintf(path, sizeof path, "%s/trainer_state.json", dir);
    kd_json *j = kd_json_read_file(path);
    if (!j) return kd_last_status();
    kd_status st = KD_OK;
    int64_t step, total, epoch, next, best_epoch;
    const kd_json *fmt = kd_json_get(j, "format");
    int ok = fmt && fmt->type == KD_JSON_STRING && strcmp(fmt->string, "kd-trainer-state-1") == 0 &&
             get_int(j, "global_step", &step) && get_int(j, "total_steps", &total) && get_int(j, "epoch", &epoch) &&
             get_int(j, "next_batch", &next) && get_hex(j, "seed", &s->seed) && get_hex(j, "rng_seed", &s->rng.seed) &&
             get_hex(j, "rng_counter", &s->rng.counter) && get_num(j, "best_accuracy", &s->best_accuracy) &&
             get_int(j, "best_epoch", &best_epoch) && get_num(j, "train_seconds", &s->train_seconds) &&
             get_series(j, "loss_history", &s->loss) && get_series(j, "dev_history", &s->dev) &&
             get_report_history(j, s);
    kd_json_free(j);
    if (!ok) {
        kd_train_state_free(s);
        return kd_fail(KD_ERR_FORMAT,
                       "%s: expected format kd-trainer-state-1 with global_step, total_steps, epoch, next_batch, seed, "
                       "rng_seed, rng_counter, best_accuracy, best_epoch, train_seconds and the histories",
                       path);
    }
    /* Positions a run could have reached, each named when it is not: a hand-edited or corrupt state must
     * not reach the optimizer or the data order. */
    const char *bad = NULL;
    if (total < 1) bad = "total_steps < 1";
    else if (step < 0) bad = "global_step < 0";
    else if (step > total) bad = "global_step past total_steps";
    else if (epoch < 0 || epoch > INT_MAX) bad = "epoch out of range";
    else if (next < 0) bad = "next_batch < 0";
    else if (best_epoch < -1 || best_epoch > INT_MAX) bad = "best_epoch out of range";
    if (bad) {
        kd_train_state_free(s);
        return kd_fail(KD_ERR_FORMAT, "%s: %s (global_step %lld, total_steps %lld, epoch %lld, next_batch %lld, "
                                      "best_epoch %lld), expected 0 <= global_step <= total_steps and positions >= 0",
                       path, bad, (long long)step, (long long)total, (long long)epoch, (long long)next,
                       (long long)best_epoch);
    }
    s->global_step = step;
    s->total_steps = total;
    s->epoch = (int)epoch;
    s->next_batch = next;
    s->best_epoch = (int)best_epoch;
    if (opt) {
        snprintf(path, sizeof path, "%s/optimizer.bin", dir);
        st = kd_adamw_load(opt, path);
        if (st != KD_OK) kd_train_state_free(s);
    }
    return st;
}
