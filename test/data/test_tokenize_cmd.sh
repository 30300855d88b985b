#!/bin/sh
# test/data/test_tokenize_cmd.sh — `kd tokenize` through test/data/kd_tokenize_main: ids for single
# texts and pairs (checked against the published reference ids), --max-len, --help, a cased model
# directory (tokenizer_config.json beside vocab.txt, --cased/--uncased overriding it), and bad flags
# (exit 2) and bad input (exit 1) with a clear message. Needs ../shared (KD_SHARED); else skips (77).
# usage: test_tokenize_cmd.sh KD_TOKENIZE_EXE
exe=$1
[ -n "$KD_SHARED" ] && [ -f "$KD_SHARED/data/bert-base-uncased/vocab.txt" ] || { echo "no ../shared: skipped"; exit 77; }
vocab=$KD_SHARED/data/bert-base-uncased/vocab.txt
pass=0; fail=0
check() { # name, want, got
  if [ "$2" = "$3" ]; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL $1: want '$2', got '$3'"; fi
}
out=$(printf 'This is a sample sentence to be tok\303\251nized\nhello world\n' | "$exe" tokenize --vocab "$vocab")
check single "[101,2023,2003,1037,7099,6251,2000,2022,19204,3550,102]
[101,7592,2088,102]" "$out"
out=$(printf 'My name is John\tpair\n' | "$exe" tokenize --vocab "$vocab" --pair)
check pair "[101,2026,2171,2003,2198,102,3940,102]" "$out"
out=$(printf 'My name is John\tpair\n' | "$exe" tokenize --vocab "$vocab" --pair --max-len 5)
check pair_maxlen "[101,2026,102,3940,102]" "$out"
out=$(printf 'one two three four five\n' | "$exe" tokenize --vocab "$vocab" --max-len 4)
check single_maxlen "[101,2028,2048,102]" "$out"
out=$(printf '\n' | "$exe" tokenize --vocab "$vocab")
check empty_line "[101,102]" "$out"
"$exe" tokenize --help | grep -q -- '--vocab FILE'; check help 0 $?
"$exe" tokenize --vocab "$vocab" --bogus </dev/null 2>/tmp/kd_tok_err.$$; check bad_flag_rc 2 $?
grep -q "unknown argument '--bogus'" /tmp/kd_tok_err.$$; check bad_flag_msg 0 $?
"$exe" tokenize --vocab "$vocab" --max-len x </dev/null 2>/tmp/kd_tok_err.$$; check bad_maxlen_rc 2 $?
"$exe" tokenize </dev/null 2>/tmp/kd_tok_err.$$; check no_vocab_rc 2 $?
"$exe" tokenize --vocab /nonexistent/vocab.txt </dev/null 2>/tmp/kd_tok_err.$$; check missing_vocab_rc 1 $?
grep -q "/nonexistent/vocab.txt" /tmp/kd_tok_err.$$; check missing_vocab_msg 0 $?
printf 'a\tb\nno tab here\n' | "$exe" tokenize --vocab "$vocab" --pair >/dev/null 2>/tmp/kd_tok_err.$$; check pair_no_tab_rc 1 $?
grep -q "stdin:2: expected two texts separated by a tab" /tmp/kd_tok_err.$$; check pair_no_tab_msg 0 $?
# A cased model directory: tokenizer_config.json beside vocab.txt decides, --uncased/--cased override it.
m=$(mktemp -d)
printf '[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nHello\ncafe\ncaf\303\251\n' > "$m/vocab.txt"
out=$(printf 'Hello caf\303\251\n' | "$exe" tokenize --model "$m"); check no_config_uncased "[2,5,7,3]" "$out"
printf '{"do_lower_case": false}\n' > "$m/tokenizer_config.json"
out=$(printf 'Hello caf\303\251\n' | "$exe" tokenize --model "$m"); check model_cased "[2,6,8,3]" "$out"
out=$(printf 'Hello caf\303\251\n' | "$exe" tokenize --vocab "$m/vocab.txt"); check vocab_cased "[2,6,8,3]" "$out"
out=$(printf 'Hello caf\303\251\n' | "$exe" tokenize --model "$m" --uncased); check uncased_override "[2,5,7,3]" "$out"
printf '{"do_lower_case": "no"}\n' > "$m/tokenizer_config.json"
"$exe" tokenize --model "$m" </dev/null 2>/tmp/kd_tok_err.$$; check bad_config_rc 1 $?
grep -q "tokenizer_config.json: field \"do_lower_case\" is not true or false" /tmp/kd_tok_err.$$; check bad_config_msg 0 $?
"$exe" tokenize --model "$m" --vocab "$m/vocab.txt" </dev/null 2>/tmp/kd_tok_err.$$; check model_and_vocab_rc 2 $?
rm -rf "$m"
rm -f /tmp/kd_tok_err.$$
echo "test_tokenize_cmd: $pass passed, $fail failed"
[ $fail -eq 0 ]
