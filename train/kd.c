/* train/kd.c — the `kd` command: the subcommand table, `kd --help`, and dispatch. */
#include <stdio.h>
#include <string.h>

#include "data/tokenize_cmd.h"
#include "engine/backend.h"
#include "train/cli.h"

typedef struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} subcommand;

static const subcommand commands[] = {
    { "finetune", kd_cmd_finetune, "train a classifier (the teacher, or a baseline) on labelled text" },
    { "distill", kd_cmd_distill, "train a student on a frozen teacher's soft targets and the labels" },
    { "eval", kd_cmd_eval, "accuracy, macro-F1, macro-recall and the per-class table on a labelled set" },
    { "predict", kd_cmd_predict, "label stdin lines; one JSON object per line" },
    { "compare", kd_cmd_compare, "teacher vs student: accuracy, parameters, size, latency, throughput" },
    { "quantize", kd_cmd_quantize, "an int8 copy of a trained model for CPU inference" },
    { "demo", kd_cmd_demo, "the built-in example: teacher, KD student and no-KD student on a grammar corpus" },
    { "tokenize", kd_cmd_tokenize, "stdin lines to WordPiece token ids" },
};

static void usage(FILE *f)
{
    fputs("usage: kd COMMAND [flags]      (kd COMMAND --help for its flags)\n\n"
          "Knowledge distillation of BERT text classifiers, on the CPU, from scratch.\n\nCommands:\n", f);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fputs("\nStart with `kd demo` (a few minutes on 2 cores, no download).\n", f);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return KD_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return KD_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            int rc = commands[i].run(argc - 1, argv + 1);
            kd_shutdown();
            return rc;
        }
    }
    fprintf(stderr, "kd: '%s': unknown command, expected one of finetune, distill, eval, predict, compare, quantize, "
                    "demo, tokenize (see kd --help)\n", argv[1]);
    return KD_EXIT_USAGE;
}
