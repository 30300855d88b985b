/* data/tokenizer_config.h — Hugging Face's tokenizer_config.json beside a vocab.txt: read, it says how a model
 * directory's text is normalized (cased or uncased, accents kept or stripped); written beside kd's checkpoints
 * (with special_tokens_map.json), it makes transformers' AutoTokenizer lower-case and truncate as kd did. */
#ifndef KD_TOKENIZER_CONFIG_H
#define KD_TOKENIZER_CONFIG_H

#include "data/wordpiece.h"

/* The fields of the tokenizer_config.json at `path`, applied over *opts (absent or null fields keep it):
 * do_lower_case (true/false), strip_accents (true/false; null: follows do_lower_case, as in BertTokenizer),
 * tokenize_chinese_chars (true/false). tokenizer_class, when given, must be BERT's (BertTokenizer,
 * BertTokenizerFast, DistilBertTokenizer[Fast]), and any special token it names must be BERT's ([UNK], [SEP],
 * [PAD], [CLS], [MASK]). A file that is not a JSON object, or a field of another type or value, is
 * KD_ERR_FORMAT naming the file, the field and what was expected. */
kd_status kd_tokenizer_config_read(const char *path, kd_tokenizer_opts *opts);

/* BERT's uncased defaults (kd_tokenizer_opts_default), then the tokenizer_config.json in vocab_path's
 * directory when there is one. *found (may be NULL) is 1 when a file was read. */
kd_status kd_tokenizer_opts_beside(const char *vocab_path, kd_tokenizer_opts *opts, int *found);

/* The tokenizer of a model directory: vocab_path with the options kd_tokenizer_opts_beside finds. Errors
 * name the file. */
kd_status kd_tokenizer_load_beside(const char *vocab_path, kd_tokenizer **out);

/* dir/tokenizer_config.json (tokenizer_class "BertTokenizer", do_lower_case, strip_accents,
 * tokenize_chinese_chars, model_max_length, the special tokens) and dir/special_tokens_map.json, each
 * written to a temporary name and renamed into place. model_max_length must be >= 2. */
kd_status kd_tokenizer_config_save(const char *dir, const kd_tokenizer_opts *opts, int model_max_length);

#endif
