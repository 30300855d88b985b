/* data/tokenize_cmd.c — `kd tokenize --model DIR | --vocab FILE [--pair] [--max-len N] [--cased|--uncased]`:
 * each stdin line (a pair: two fields separated by a tab) becomes one JSON array of ids, [CLS] and [SEP]
 * included, for debugging inputs and checking parity with other tokenizers from outside. Case and accents
 * follow the tokenizer_config.json beside the vocabulary, as for every command that loads a model. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/tokenize_cmd.h"
#include "data/tokenizer_config.h"
#include "data/wordpiece.h"

static void usage(FILE *f)
{
    fputs("usage: kd tokenize --model DIR | --vocab FILE [--pair] [--max-len N] [--cased | --uncased]\n"
          "\n"
          "Reads lines of text from stdin and prints, for each, one JSON array of token ids\n"
          "([CLS] ... [SEP]), as Hugging Face's BertTokenizer would give for that vocabulary.\n"
          "Case and accents follow the tokenizer_config.json beside the vocabulary (do_lower_case,\n"
          "strip_accents), as every kd command that loads a model does; without one, uncased.\n"
          "\n"
          "  --model DIR    a model directory: its vocab.txt and tokenizer_config.json\n"
          "  --vocab FILE   vocab.txt of the model (one token per line)\n"
          "  --pair         each line is two texts separated by a tab: [CLS] a [SEP] b [SEP]\n"
          "  --max-len N    truncate to N ids, special tokens included (longest first for pairs)\n"
          "  --cased        keep case and accents, whatever tokenizer_config.json says\n"
          "  --uncased      lower-case and strip accents, whatever tokenizer_config.json says\n"
          "  --help         this text\n",
          f);
}

int kd_cmd_tokenize(int argc, char **argv)
{
    const char *vocab = NULL, *model = NULL;
    int pair = 0, cased = 0, uncased = 0;
    long max_len = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--vocab")) {
            if (++i >= argc) {
                fprintf(stderr, "kd tokenize: --vocab needs a file (vocab.txt)\n");
                return 2;
            }
            vocab = argv[i];
        } else if (!strcmp(a, "--model")) {
            if (++i >= argc) {
                fprintf(stderr, "kd tokenize: --model needs a model directory\n");
                return 2;
            }
            model = argv[i];
        } else if (!strcmp(a, "--max-len")) {
            char *end;
            if (++i >= argc) {
                fprintf(stderr, "kd tokenize: --max-len needs a number\n");
                return 2;
            }
            errno = 0;
            max_len = strtol(argv[i], &end, 10);
            if (errno || *end || end == argv[i] || max_len < (pair ? 3 : 2) || max_len > 1000000) {
                fprintf(stderr, "kd tokenize: --max-len '%s': expected a whole number from 3 to 1000000\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--pair")) {
            pair = 1;
        } else if (!strcmp(a, "--cased")) {
            cased = 1;
        } else if (!strcmp(a, "--uncased")) {
            uncased = 1;
        } else {
            fprintf(stderr, "kd tokenize: unknown argument '%s' (see kd tokenize --help)\n", a);
            return 2;
        }
    }
    if (pair && max_len && max_len < 3) {
        fprintf(stderr, "kd tokenize: --max-len %ld is too short for a pair: expected at least 3\n", max_len);
        return 2;
    }
    if (!vocab == !model) {
        fprintf(stderr, "kd tokenize: %s\n", vocab ? "--model and --vocab: give one of them, not both"
                                                  : "--model DIR or --vocab FILE is required (see kd tokenize --help)");
        return 2;
    }
    if (cased && uncased) {
        fprintf(stderr, "kd tokenize: --cased and --uncased: give at most one\n");
        return 2;
    }
    char path[4096];
    if (model) snprintf(path, sizeof path, "%s/vocab.txt", model);
    else snprintf(path, sizeof path, "%s", vocab);
    kd_tokenizer_opts o;
    kd_tokenizer *t = NULL;
    kd_vocab *v = NULL;
    kd_status st = kd_tokenizer_opts_beside(path, &o, NULL);
    if (cased || uncased) {
        o.lowercase = uncased;
        o.strip_accents = -1;
    }
    if (st == KD_OK) st = kd_vocab_load(path, &v);
    if (st == KD_OK && kd_tokenizer_new(v, &o, &t) != KD_OK) {
        fprintf(stderr, "kd tokenize: %s\n", kd_last_error());
        return 1;
    }
    if (st != KD_OK) {
        fprintf(stderr, "kd tokenize: %s\n", kd_last_error());
        return 1;
    }
    kd_encoding e;
    kd_encoding_init(&e);
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t n;
    int rc = 0;
    char num[16];
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        size_t len = (size_t)n;
        if (len && line[len - 1] == '\n') len--;
        if (len && line[len - 1] == '\r') len--;
        const char *b = NULL;
        size_t alen = len, blen = 0;
        if (pair) {
            char *tab = memchr(line, '\t', len);
            if (!tab) {
                fprintf(stderr, "kd tokenize: stdin:%zu: expected two texts separated by a tab (--pair)\n", lineno);
                rc = 1;
                break;
            }
            alen = (size_t)(tab - line);
            b = tab + 1;
            blen = len - alen - 1;
        }
        if (kd_encode(t, line, alen, b, blen, (size_t)max_len, &e) != KD_OK) {
            fprintf(stderr, "kd tokenize: stdin:%zu: %s\n", lineno, kd_last_error());
            rc = 1;
            break;
        }
        putchar('[');
        for (size_t i = 0; i < e.len; i++) {
            int k = snprintf(num, sizeof num, i ? ",%d" : "%d", (int)e.ids[i]);
            fwrite(num, 1, (size_t)k, stdout);
        }
        fputs("]\n", stdout);
    }
    if (ferror(stdin)) {
        fprintf(stderr, "kd tokenize: error reading stdin\n");
        rc = 1;
    }
    if (fflush(stdout) != 0) rc = 1;
    free(line);
    kd_encoding_free(&e);
    kd_tokenizer_free(t);
    return rc;
}
