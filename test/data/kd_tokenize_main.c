/* test/data/kd_tokenize_main.c — a stand-alone `kd tokenize` for the command's tests: called as
 * `kd_tokenize_main tokenize ARGS`, it hands ("tokenize", ARGS) to kd_cmd_tokenize as `kd` does. */
#include <stdio.h>
#include <string.h>

#include "data/tokenize_cmd.h"

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "tokenize") != 0) {
        fprintf(stderr, "usage: %s tokenize --vocab FILE [--pair] [--max-len N]\n", argv[0]);
        return 2;
    }
    return kd_cmd_tokenize(argc - 1, argv + 1);
}
