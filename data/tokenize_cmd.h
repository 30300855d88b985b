/* data/tokenize_cmd.h — `kd tokenize`: text lines on stdin to JSON arrays of token ids on stdout. */
#ifndef KD_TOKENIZE_CMD_H
#define KD_TOKENIZE_CMD_H

/* argv[0] is the command name ("tokenize"). Returns the process exit code: 0 done, 1 bad input or
 * vocabulary (message on stderr), 2 bad usage. */
int kd_cmd_tokenize(int argc, char **argv);

#endif
