#!/usr/bin/env bash
# test/train/test_cli.sh — `kd` on bad input: each case must exit non-zero with a message naming what was
# wrong (missing data, unknown preset, label-set mismatch, alpha outside [0, 1], T <= 0, unwritable output
# directory or report, bad flags, CUDA, a bad tokenizer_config.json, a communicator --comm cannot open), and the good path (finetune, eval,
# predict, predict --input) must work on a tiny set; the tokenizer files beside checkpoints, a cased model
# directory's tokenizer_config.json honoured by every command; the training rows a run used are listed in
# OUT/train_subset.txt (all 32, or the 10 of --train-samples 10); students narrower than the teacher (sliced or fresh), and `kd compare` with several
# students.
# usage: test_cli.sh PATH/TO/kd
set -u
kd="$1"
tmp=$(mktemp -d /tmp/kd_test_cli_XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0

# expect CODE SUBSTRING -- ARGS...: exit status and a stderr substring.
expect() {
  local code="$1" want="$2"; shift 3
  local err; err=$("$kd" "$@" 2>&1 >/dev/null </dev/null); local rc=$?
  if [ "$rc" -eq "$code" ] && grep -qF -- "$want" <<<"$err"; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1)); echo "FAIL: kd $* -> exit $rc (want $code), stderr: $err (want '$want')"
  fi
}

printf '[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\ngood\nbad\nfilm\nthe\nwas\nis\ngreat\nawful\n' > "$tmp/vocab.txt"
{ printf 'sentence\tlabel\n'; for i in $(seq 1 16); do printf 'the film was good\t1\nthe film is awful\t0\n'; done; } > "$tmp/train.tsv"
cp "$tmp/train.tsv" "$tmp/dev.tsv"
{ printf 'sentence\tlabel\n'; printf 'the film was good\t1\nthe film is awful\t0\ngood bad\t2\n'; } > "$tmp/three.tsv"

# The good path: a tiny model trains, evaluates and predicts.
if "$kd" finetune --model bert-tiny --vocab "$tmp/vocab.txt" --data "$tmp" --out "$tmp/teacher" --epochs 1 \
     --batch-size 8 --max-len 16 --lr 1e-3 --quiet --threads 1 >/dev/null 2>"$tmp/ft.err"; then
  pass=$((pass + 1))
else
  fail=$((fail + 1)); echo "FAIL: finetune on the tiny set: $(cat "$tmp/ft.err")"
fi
for f in config.json model.safetensors vocab.txt metrics.jsonl chart.svg report.html last/trainer_state.json best/model.safetensors train_subset.txt; do
  if [ -f "$tmp/teacher/$f" ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: no $f in the output"; fi
done
if [ "$(cat "$tmp/teacher/train_subset.txt" 2>/dev/null)" = "$(seq 0 31)" ]; then pass=$((pass + 1));
else fail=$((fail + 1)); echo "FAIL: train_subset.txt of a whole-file run is not the rows 0..31"; fi
# --train-samples 10: ten distinct rows below 32, ascending (the file's order).
"$kd" finetune --model bert-tiny --vocab "$tmp/vocab.txt" --data "$tmp" --out "$tmp/sub" --epochs 1 --max-steps 1 \
  --train-samples 10 --seed 3 --batch-size 8 --max-len 16 --quiet --threads 1 >/dev/null 2>"$tmp/sub.err"
rows=$(cat "$tmp/sub/train_subset.txt" 2>/dev/null)
if [ "$(wc -l <<<"$rows")" -eq 10 ] && [ "$rows" = "$(sort -n -u <<<"$rows")" ] && [ "$(tail -1 <<<"$rows")" -lt 32 ] \
   && [ "$rows" != "$(seq 0 9)" ]; then
  pass=$((pass + 1))
else
  fail=$((fail + 1)); echo "FAIL: --train-samples 10 listed: $rows ($(cat "$tmp/sub.err"))"
fi
if "$kd" eval --model "$tmp/teacher" --data "$tmp/dev.tsv" --threads 1 | grep -q "accuracy"; then pass=$((pass + 1));
else fail=$((fail + 1)); echo "FAIL: kd eval"; fi
out=$(printf 'the film was good\nawful\n' | "$kd" predict --model "$tmp/teacher" --logits --threads 1)
if [ "$(wc -l <<<"$out")" -eq 2 ] && grep -q '"probabilities"' <<<"$out" && grep -q '"logits"' <<<"$out"; then
  pass=$((pass + 1))
else
  fail=$((fail + 1)); echo "FAIL: kd predict printed: $out"
fi
# A NUL inside a line is removed, as Hugging Face's tokenizer removes it: the same answer as without it.
with_nul=$(printf 'the fi\0lm was good\n' | "$kd" predict --model "$tmp/teacher" --logits --threads 1)
without=$(printf 'the film was good\n' | "$kd" predict --model "$tmp/teacher" --logits --threads 1)
if [ -n "$without" ] && [ "$with_nul" = "$without" ]; then pass=$((pass + 1));
else fail=$((fail + 1)); echo "FAIL: kd predict with a NUL printed '$with_nul', without it '$without'"; fi

# --input FILE reads the lines from the file: the same answers as from stdin.
printf 'the film was good\nawful\n' > "$tmp/lines.txt"
from_file=$("$kd" predict --model "$tmp/teacher" --input "$tmp/lines.txt" --threads 1 2>/dev/null)
if [ -n "$from_file" ] && [ "$from_file" = "$("$kd" predict --model "$tmp/teacher" --threads 1 < "$tmp/lines.txt" 2>/dev/null)" ]; then
  pass=$((pass + 1))
else
  fail=$((fail + 1)); echo "FAIL: kd predict --input printed '$from_file'"
fi
# Beside every checkpoint, the tokenizer files transformers reads (tokenizer_config.json with the run's
# --max-len and case, special_tokens_map.json); a model directory's tokenizer_config.json decides the case
# for predict, eval, compare, finetune and distill: "GOOD" is "good" to an uncased model, [UNK] to a cased one.
for f in tokenizer_config.json special_tokens_map.json best/tokenizer_config.json last/special_tokens_map.json; do
  if [ -f "$tmp/teacher/$f" ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: no $f in the output"; fi
done
if grep -q '"model_max_length": 16' "$tmp/teacher/tokenizer_config.json" &&
   grep -q '"do_lower_case": true' "$tmp/teacher/tokenizer_config.json"; then pass=$((pass + 1));
else fail=$((fail + 1)); echo "FAIL: tokenizer_config.json: $(cat "$tmp/teacher/tokenizer_config.json")"; fi
mkdir -p "$tmp/cased"
cp "$tmp/teacher/config.json" "$tmp/teacher/model.safetensors" "$tmp/teacher/vocab.txt" "$tmp/cased/"
printf '{"do_lower_case": false}\n' > "$tmp/cased/tokenizer_config.json"
p1() { printf '%s\n' "$2" | "$kd" predict --model "$1" --logits --threads 1 2>&1; }
if [ "$(p1 "$tmp/teacher" 'the film was GOOD')" = "$(p1 "$tmp/teacher" 'the film was good')" ] &&
   [ "$(p1 "$tmp/cased" 'the film was GOOD')" != "$(p1 "$tmp/cased" 'the film was good')" ] &&
   [ "$(p1 "$tmp/cased" 'the film was good')" = "$(p1 "$tmp/teacher" 'the film was good')" ]; then pass=$((pass + 1));
else fail=$((fail + 1)); echo "FAIL: do_lower_case false not honoured by kd predict: $(p1 "$tmp/cased" 'the film was GOOD')"; fi
c=(--epochs 1 --max-len 16 --quiet --threads 1 --data "$tmp")
if "$kd" finetune --model "$tmp/cased" --out "$tmp/cased-ft" "${c[@]}" >/dev/null 2>"$tmp/cft.err" &&
   grep -q '"do_lower_case": false' "$tmp/cased-ft/tokenizer_config.json" &&
   "$kd" distill --teacher "$tmp/cased" --student bert-tiny --out "$tmp/cased-d" "${c[@]}" >/dev/null 2>>"$tmp/cft.err" &&
   grep -q '"do_lower_case": false' "$tmp/cased-d/tokenizer_config.json"; then pass=$((pass + 1));
else fail=$((fail + 1)); echo "FAIL: a cased model's finetune and distill keep do_lower_case false: $(cat "$tmp/cft.err")"; fi
printf '{"do_lower_case": "no"}\n' > "$tmp/cased/tokenizer_config.json"
bad_case="cased/tokenizer_config.json: field \"do_lower_case\" is not true or false"
expect 1 "$bad_case" -- predict --model "$tmp/cased"
expect 1 "$bad_case" -- eval --model "$tmp/cased" --data "$tmp/dev.tsv"
expect 1 "$bad_case" -- compare --teacher "$tmp/teacher" --student "$tmp/cased" --data "$tmp/dev.tsv"
expect 1 "$bad_case" -- finetune --model "$tmp/cased" --out "$tmp/cased-x" "${c[@]}"
expect 1 "$bad_case" -- distill --teacher "$tmp/cased" --student bert-tiny --out "$tmp/cased-y" "${c[@]}"
# A multi-label model (transformers' problem_type, a sigmoid per class) is refused by name, not run as softmax.
mkdir -p "$tmp/multi"
cp "$tmp/teacher/model.safetensors" "$tmp/teacher/vocab.txt" "$tmp/multi/"
sed 's/"problem_type": "single_label_classification"/"problem_type": "multi_label_classification"/' \
  "$tmp/teacher/config.json" > "$tmp/multi/config.json"
expect 1 'multi/config.json: problem_type is "multi_label_classification", expected "single_label_classification"' -- eval --model "$tmp/multi" --data "$tmp/dev.tsv"
expect 1 "kd trains and runs single-label classifiers" -- finetune --model "$tmp/multi" --data "$tmp" --out "$tmp/multi-ft" --quiet
expect 1 "--input: $tmp/none.txt: cannot open" -- predict --model "$tmp/teacher" --input "$tmp/none.txt"
expect 1 "/dev/null/page.html" -- compare --teacher "$tmp/teacher" --student "$tmp/teacher" --data "$tmp/dev.tsv" --threads 1 \
  --latency-samples 2 --quiet --report /dev/null/page.html

t=(--teacher "$tmp/teacher" --student bert-tiny --out "$tmp/s" --epochs 1 --quiet --threads 1)
expect 1 "no such file" -- distill "${t[@]}" --data "$tmp/missing.tsv" --dev "$tmp/dev.tsv"
expect 2 "--model: got 'bert-huge', expected a preset name" -- finetune --model bert-huge --data "$tmp" --out "$tmp/x" --quiet
expect 2 "unknown preset or missing directory" -- distill --teacher "$tmp/teacher" --student bert-huge --data "$tmp" --out "$tmp/x"
expect 1 "label-set mismatch" -- distill "${t[@]}" --train "$tmp/three.tsv" --dev "$tmp/dev.tsv"
expect 2 "--alpha: got '1.5', expected a number in [0, 1]" -- distill "${t[@]}" --data "$tmp" --alpha 1.5
expect 2 "--alpha: got '-0.1'" -- distill "${t[@]}" --data "$tmp" --alpha -0.1
expect 2 "--temperature: got '0', expected a number > 0" -- distill "${t[@]}" --data "$tmp" --temperature 0
expect 2 "--temperature: got '-2'" -- distill "${t[@]}" --data "$tmp" --temperature -2
expect 1 "/dev/null/out" -- finetune --model bert-tiny --vocab "$tmp/vocab.txt" --data "$tmp" --out /dev/null/out --quiet
expect 2 "--epochs: got 'x'" -- finetune --model bert-tiny --data "$tmp" --out "$tmp/x" --epochs x
expect 2 "--dropout: got '1', expected a number in [0, 1)" -- finetune --model bert-tiny --vocab "$tmp/vocab.txt" --data "$tmp" --out "$tmp/x" --dropout 1
expect 2 "--dropout: got '-0.1'" -- distill "${t[@]}" --data "$tmp" --dropout -0.1
expect 2 "--bogus: unknown flag" -- eval --bogus 1
# Without a GPU, --device cuda fails naming the device (no CUDA in the build, or no GPU visible).
if ! nvidia-smi -L >/dev/null 2>&1; then
  expect 1 "--device cuda: device cuda:" -- eval --model "$tmp/teacher" --data "$tmp" --device cuda
  expect 1 "--device cuda: device cuda:" -- distill "${t[@]}" --data "$tmp" --device cuda
fi
expect 2 "--precision: precision tf32: only the cuda device" -- finetune --model bert-tiny --vocab "$tmp/vocab.txt" --data "$tmp" --out "$tmp/x" --precision tf32
expect 2 "--precision: precision: got 'fp8'" -- eval --model "$tmp/teacher" --data "$tmp" --precision fp8
expect 2 "--device: got 'tpu'" -- eval --model "$tmp/teacher" --data "$tmp" --device tpu
expect 2 "--threads: got '0'" -- predict --model "$tmp/teacher" --threads 0
expect 2 "unknown command" -- frobnicate
expect 2 "--model: got nothing" -- finetune --data "$tmp" --out "$tmp/x"
expect 2 "--comm: got 'bogus', expected auto, none, mpi or nccl" -- finetune --model bert-tiny --vocab "$tmp/vocab.txt" --data "$tmp" --out "$tmp/x" --comm bogus
expect 2 "--bucket-mb: got '-1', expected a number of MB from 0 to 1e6 (0: one flat all-reduce)" -- finetune --model bert-tiny --vocab "$tmp/vocab.txt" --data "$tmp" --out "$tmp/x" --bucket-mb -1
expect 2 "--bucket-mb: got '25MB', expected a number of MB from 0 to 1e6" -- distill "${t[@]}" --data "$tmp" --bucket-mb 25MB
expect 1 "kd finetune: --comm: communicator: " -- finetune --model bert-tiny --vocab "$tmp/vocab.txt" --data "$tmp" --out "$tmp/x" --comm nccl
expect 1 "--resume: no checkpoint" -- finetune --model bert-tiny --vocab "$tmp/vocab.txt" --data "$tmp" --out "$tmp/fresh" --resume --quiet
# An output directory that holds a run is not written over: refused naming what is there, the model left
# byte for byte; --overwrite replaces it, --resume with --overwrite is refused.
cp "$tmp/teacher/model.safetensors" "$tmp/teacher.before"
expect 2 "--out: $tmp/teacher already holds a run (model.safetensors, last/, best/, metrics.jsonl); continue it with --resume, replace it with --overwrite" -- finetune --model bert-tiny --vocab "$tmp/vocab.txt" --data "$tmp" --out "$tmp/teacher" --epochs 1 --quiet --threads 1
expect 2 "--out: $tmp/teacher already holds a run" -- distill --teacher "$tmp/teacher" --student bert-tiny --data "$tmp" --out "$tmp/teacher" --epochs 1 --quiet --threads 1
if cmp -s "$tmp/teacher/model.safetensors" "$tmp/teacher.before"; then pass=$((pass + 1));
else fail=$((fail + 1)); echo "FAIL: a refused run changed $tmp/teacher/model.safetensors"; fi
expect 2 "--overwrite: cannot be used with --resume" -- finetune --model bert-tiny --vocab "$tmp/vocab.txt" --data "$tmp" --out "$tmp/teacher" --resume --overwrite --quiet
mkdir -p "$tmp/ow"
"$kd" finetune --model bert-tiny --vocab "$tmp/vocab.txt" --data "$tmp" --out "$tmp/ow" --epochs 1 --max-steps 1 --batch-size 8 \
  --max-len 16 --quiet --threads 1 >/dev/null 2>"$tmp/ow.err"
if "$kd" finetune --model bert-tiny --vocab "$tmp/vocab.txt" --data "$tmp" --out "$tmp/ow" --epochs 1 --batch-size 8 \
     --max-len 16 --quiet --threads 1 --overwrite >/dev/null 2>>"$tmp/ow.err" && [ -s "$tmp/ow/model.safetensors" ]; then
  pass=$((pass + 1))
else
  fail=$((fail + 1)); echo "FAIL: --overwrite over a stopped run: $(cat "$tmp/ow.err")"
fi
# Integer labels with a gap (a stray 7 in 0/1 data) are refused, naming what was found, unless --num-labels
# gives the classes; a binary file is named as one (and not called a label-set mismatch); a byte-order mark
# is skipped.
{ printf 'sentence\tlabel\n'; printf 'the film was good\t1\nthe film is awful\t0\nthe film\t7\n'; } > "$tmp/gap.tsv"
expect 1 "gap.tsv: integer labels with a gap: found 0 (1 row, first on line 3), 1 (1 row, first on line 2), 7 (1 row, first on line 4); id 2 never occurs" -- finetune --model bert-tiny --vocab "$tmp/vocab.txt" --train "$tmp/gap.tsv" --dev "$tmp/dev.tsv" --out "$tmp/gap" --quiet
if "$kd" finetune --model bert-tiny --vocab "$tmp/vocab.txt" --train "$tmp/gap.tsv" --dev "$tmp/dev.tsv" --out "$tmp/gap8" \
     --num-labels 8 --epochs 1 --max-len 16 --quiet --threads 1 >/dev/null 2>"$tmp/gap8.err" &&
   grep -q '"7": "7"' "$tmp/gap8/config.json"; then pass=$((pass + 1));
else fail=$((fail + 1)); echo "FAIL: finetune --num-labels 8 on labels 0, 1, 7: $(cat "$tmp/gap8.err")"; fi
expect 2 "--batch-size: got '1e9', expected a whole number from 1 to 65536" -- finetune --model bert-tiny --vocab "$tmp/vocab.txt" --data "$tmp" --out "$tmp/x" --batch-size 1e9
expect 2 "--student-layers: got '0', expected a whole number from 1 to 1000" -- distill "${t[@]}" --data "$tmp" --student-layers 0
expect 2 "--num-labels: got '1', expected a whole number from 2 to 1000" -- finetune --model bert-tiny --vocab "$tmp/vocab.txt" --data "$tmp" --out "$tmp/x" --num-labels 1
head -c 64 "$kd" > "$tmp/binary.tsv"
err=$("$kd" eval --model "$tmp/teacher" --data "$tmp/binary.tsv" 2>&1 >/dev/null); rc=$?
if [ "$rc" -eq 1 ] && grep -qF "binary.tsv: byte 0x00 at offset" <<<"$err" && ! grep -q "label-set" <<<"$err" &&
   [ "$(printf '%s' "$err" | tr -d '[:print:]\n' | wc -c)" -eq 0 ]; then pass=$((pass + 1));
else fail=$((fail + 1)); echo "FAIL: kd eval on a binary file -> $rc: $err"; fi
expect 1 "$tmp/nothing-here: no such file or directory" -- eval --model "$tmp/teacher" --data "$tmp/nothing-here"
{ printf '\xef\xbb\xbf'; cat "$tmp/dev.tsv"; } > "$tmp/bom.tsv"
if "$kd" eval --model "$tmp/teacher" --data "$tmp/bom.tsv" --threads 1 | grep -q "accuracy"; then pass=$((pass + 1));
else fail=$((fail + 1)); echo "FAIL: kd eval on a TSV with a byte-order mark"; fi
# An encoder without its head is not run as a classifier (eval, predict, compare, a distillation teacher);
# a vocabulary without [UNK] is named.
if command -v python3 >/dev/null 2>&1; then
  mkdir -p "$tmp/headless"
  cp "$tmp/teacher/config.json" "$tmp/teacher/vocab.txt" "$tmp/headless/"
  python3 - "$tmp/teacher/model.safetensors" "$tmp/headless/model.safetensors" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + n]); data = raw[8 + n:]
keep = {k: v for k, v in hdr.items() if k != "__metadata__" and not k.startswith(("classifier.", "bert.pooler."))}
out, body = {}, b""
for k, v in keep.items():
    b, e = v["data_offsets"]; out[k] = dict(v, data_offsets=[len(body), len(body) + e - b]); body += data[b:e]
h = json.dumps(out).encode(); h += b" " * (-len(h) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(h)) + h + body)
PY
  expect 1 "headless: model.safetensors has no classification head" -- eval --model "$tmp/headless" --data "$tmp/dev.tsv"
  expect 1 "has no classification head (pooler and classifier weights)" -- predict --model "$tmp/headless"
  expect 1 "headless: model.safetensors has no classification head" -- compare --teacher "$tmp/headless" --student "$tmp/teacher" --data "$tmp/dev.tsv"
  expect 1 "fine-tune it first" -- distill --teacher "$tmp/headless" --student bert-tiny --data "$tmp" --out "$tmp/hl" --quiet
fi
mkdir -p "$tmp/nounk"
cp "$tmp/teacher/config.json" "$tmp/teacher/model.safetensors" "$tmp/nounk/"
sed 's/^\[UNK\]$/[NOTUNK]/' "$tmp/teacher/vocab.txt" > "$tmp/nounk/vocab.txt"
expect 1 "nounk/vocab.txt: no [UNK] token" -- predict --model "$tmp/nounk"
# A corrupt trainer state or optimizer file is named on --resume, before anything runs.
r=(finetune --model bert-tiny --vocab "$tmp/vocab.txt" --data "$tmp" --epochs 1 --batch-size 8 --max-len 16 --quiet --threads 1)
"$kd" "${r[@]}" --out "$tmp/cs" --max-steps 1 >/dev/null 2>"$tmp/cs.err"
cp -r "$tmp/cs" "$tmp/cs-neg"; cp -r "$tmp/cs" "$tmp/cs-past"; cp -r "$tmp/cs" "$tmp/cs-tail"
sed -i 's/"global_step": *1,/"global_step": -5,/' "$tmp/cs-neg/last/trainer_state.json"
sed -i 's/"global_step": *1,/"global_step": 999,/' "$tmp/cs-past/last/trainer_state.json"
printf 'garbage' >> "$tmp/cs-tail/last/optimizer.bin"
expect 1 "cs-neg/last/trainer_state.json: global_step < 0 (global_step -5" -- "${r[@]}" --out "$tmp/cs-neg" --resume
expect 1 "cs-past/last/trainer_state.json: global_step past total_steps (global_step 999, total_steps 4" -- "${r[@]}" --out "$tmp/cs-past" --resume
expect 1 "cs-tail/last/optimizer.bin: " -- "${r[@]}" --out "$tmp/cs-tail" --resume
expect 1 "trailing data (expected the file to end there)" -- "${r[@]}" --out "$tmp/cs-tail" --resume
if "$kd" "${r[@]}" --out "$tmp/cs" --resume >/dev/null 2>>"$tmp/cs.err"; then pass=$((pass + 1));
else fail=$((fail + 1)); echo "FAIL: the untouched stopped run resumes: $(cat "$tmp/cs.err")"; fi
# A teacher given as a preset; a student checkpoint whose classes are named otherwise than the teacher's,
# or are fewer: the message says the labels are the teacher's.
expect 2 "--teacher: got 'bert-base', a preset (an untrained shape), expected a fine-tuned model directory" -- distill --teacher bert-base --student bert-tiny --data "$tmp" --out "$tmp/x"
mkdir -p "$tmp/named"
{ printf 'sentence\tlabel\n'; for i in $(seq 1 8); do printf 'the film was good\tpos\nthe film is awful\tneg\n'; done; } > "$tmp/named/train.tsv"
cp "$tmp/named/train.tsv" "$tmp/named/dev.tsv"
sed 's/\tpos$/\tgood/; s/\tneg$/\tbad/' "$tmp/named/train.tsv" > "$tmp/named/other.tsv"
"$kd" finetune --model bert-tiny --vocab "$tmp/vocab.txt" --data "$tmp/named" --out "$tmp/named-t" --epochs 1 --max-len 16 \
  --quiet --threads 1 >/dev/null 2>&1
"$kd" finetune --model bert-tiny --vocab "$tmp/vocab.txt" --train "$tmp/named/other.tsv" --dev "$tmp/named/other.tsv" \
  --out "$tmp/named-s" --epochs 1 --max-len 16 --quiet --threads 1 >/dev/null 2>&1
expect 1 "label-set mismatch: class 0 of $tmp/named-s is 'bad', of the teacher 'neg'" -- distill --teacher "$tmp/named-t" --student "$tmp/named-s" --data "$tmp/named" --out "$tmp/named-d" --quiet
expect 1 "label-set mismatch: $tmp/teacher has 2 labels, the teacher 8" -- distill --teacher "$tmp/gap8" --student "$tmp/teacher" --train "$tmp/gap.tsv" --dev "$tmp/dev.tsv" --out "$tmp/x" --quiet
# A resumed run's metrics.jsonl and batch_order.txt equal an uninterrupted run's (times aside): the metrics
# line being gathered at the stop (log every 3 steps, stopped after 2) is finished with the same loss, and
# the lines a killed run wrote past its checkpoint (here appended by hand) are dropped.
w=(finetune --model bert-tiny --vocab "$tmp/vocab.txt" --data "$tmp" --epochs 2 --batch-size 8 --max-len 16 --lr 1e-3
   --quiet --threads 1 --log-every 3)
"$kd" "${w[@]}" --out "$tmp/mw-full" >/dev/null 2>"$tmp/mw.err"
"$kd" "${w[@]}" --out "$tmp/mw-res" --max-steps 2 >/dev/null 2>>"$tmp/mw.err"
printf '{"type":"train","step":3,"epoch":1,"loss":9}\n' >> "$tmp/mw-res/metrics.jsonl"
printf '3 0 1 2\n4 3 4 5\n' >> "$tmp/mw-res/batch_order.txt"
"$kd" "${w[@]}" --out "$tmp/mw-res" --resume >/dev/null 2>>"$tmp/mw.err"
strip_times() { grep -v '"type":"teacher_eval"' "$1" | sed 's/"samples_per_s":[^,}]*//; s/"tokens_per_s":[^,}]*//; s/"seconds":[^,}]*//'; }
if [ -s "$tmp/mw-full/metrics.jsonl" ] && [ "$(strip_times "$tmp/mw-res/metrics.jsonl")" = "$(strip_times "$tmp/mw-full/metrics.jsonl")" ] &&
   cmp -s "$tmp/mw-res/batch_order.txt" "$tmp/mw-full/batch_order.txt"; then pass=$((pass + 1));
else fail=$((fail + 1)); echo "FAIL: a resumed run's metrics differ from an uninterrupted one's: $(cat "$tmp/mw.err")";
  diff <(strip_times "$tmp/mw-res/metrics.jsonl") <(strip_times "$tmp/mw-full/metrics.jsonl") | head -5; fi
# --resume with another learning rate, or another training file of the same length, is refused naming what
# changed.
"$kd" "${r[@]}" --out "$tmp/rc" --max-steps 1 --lr 1e-3 >/dev/null 2>"$tmp/rc.err"
expect 1 "rc/last was made by a run with other flags or data: lr: was 0.001, now 0.002" -- "${r[@]}" --out "$tmp/rc" --resume --lr 2e-3
mkdir -p "$tmp/other"; sed '2s/good/great/' "$tmp/train.tsv" > "$tmp/other/train.tsv"; cp "$tmp/dev.tsv" "$tmp/other/"
expect 1 "data (the training rows: texts, labels or their order): was " -- finetune --model bert-tiny --vocab "$tmp/vocab.txt" --data "$tmp/other" --epochs 1 --batch-size 8 --max-len 16 --quiet --threads 1 --out "$tmp/rc" --resume --lr 1e-3
if "$kd" "${r[@]}" --out "$tmp/rc" --resume --lr 1e-3 >/dev/null 2>>"$tmp/rc.err"; then pass=$((pass + 1));
else fail=$((fail + 1)); echo "FAIL: a resume with the run's own flags: $(cat "$tmp/rc.err")"; fi
for c in finetune distill eval predict compare demo tokenize; do
  if "$kd" "$c" --help | grep -q "usage: kd $c"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: kd $c --help"; fi
done

# The device path (--device sim: device memory the host cannot touch outside kernels, the CPU's kernels):
# finetune, distill, eval and predict run there and give the CPU's numbers.
for d in cpu sim; do
  "$kd" finetune --model bert-tiny --vocab "$tmp/vocab.txt" --data "$tmp" --out "$tmp/ft-$d" --epochs 1 --batch-size 8 \
    --max-len 16 --lr 1e-3 --quiet --threads 1 --log-every 1 --device "$d" >/dev/null 2>"$tmp/ft-$d.err" || echo "finetune --device $d: $(cat "$tmp/ft-$d.err")"
  "$kd" distill --teacher "$tmp/teacher" --student bert-tiny --data "$tmp" --out "$tmp/kd-$d" --epochs 1 --batch-size 8 \
    --max-len 16 --lr 1e-3 --quiet --threads 1 --log-every 1 --grad-accum 2 --device "$d" >/dev/null 2>"$tmp/kd-$d.err" || echo "distill --device $d: $(cat "$tmp/kd-$d.err")"
  "$kd" distill --teacher "$tmp/teacher" --student bert-tiny --data "$tmp" --out "$tmp/kc-$d" --epochs 1 --batch-size 8 \
    --max-len 16 --lr 1e-3 --quiet --threads 1 --log-every 1 --cache-teacher --device "$d" >/dev/null 2>"$tmp/kc-$d.err" || echo "distill --cache-teacher --device $d: $(cat "$tmp/kc-$d.err")"
done
# Interrupted and resumed on the device: the same steps as one run (checkpoints written from and read into
# device memory, optimizer state included).
"$kd" finetune --model bert-tiny --vocab "$tmp/vocab.txt" --data "$tmp" --out "$tmp/rs-sim" --epochs 1 --batch-size 8 \
  --max-len 16 --lr 1e-3 --quiet --threads 1 --log-every 1 --device sim --max-steps 2 >/dev/null 2>"$tmp/rs.err"
"$kd" finetune --model bert-tiny --vocab "$tmp/vocab.txt" --data "$tmp" --out "$tmp/rs-sim" --epochs 1 --batch-size 8 \
  --max-len 16 --lr 1e-3 --quiet --threads 1 --log-every 1 --device sim --resume >/dev/null 2>>"$tmp/rs.err"
if [ "$(grep '"train"' "$tmp/rs-sim/metrics.jsonl" | sed 's/"samples_per_s":[^,}]*//; s/"tokens_per_s":[^,}]*//')" = \
     "$(grep '"train"' "$tmp/ft-sim/metrics.jsonl" | sed 's/"samples_per_s":[^,}]*//; s/"tokens_per_s":[^,}]*//')" ] && [ -s "$tmp/rs-sim/model.safetensors" ] &&
   cmp -s "$tmp/rs-sim/model.safetensors" "$tmp/ft-sim/model.safetensors"; then
  pass=$((pass + 1))
else
  fail=$((fail + 1)); echo "FAIL: an interrupted and resumed run on sim differs from one run: $(cat "$tmp/rs.err")"
fi
# The resumed run's OUT/batch_order.txt (appended to) lists the batches of one run: step, then the rows.
if [ -s "$tmp/ft-sim/batch_order.txt" ] && cmp -s "$tmp/rs-sim/batch_order.txt" "$tmp/ft-sim/batch_order.txt" &&
   [ "$(tr ' ' '\n' < "$tmp/ft-sim/batch_order.txt" | wc -l)" -eq $((4 + 32)) ] && head -1 "$tmp/ft-sim/batch_order.txt" | grep -q '^1 '; then
  pass=$((pass + 1))
else
  fail=$((fail + 1)); echo "FAIL: batch_order.txt of a resumed run differs from one run's, or is not 4 steps of 8 rows"
fi
# Losses and norms of every step, cpu against sim: equal to 1e-5 (the device sums in f32, the host in double).
# steps_agree A B: every training step's loss, soft and hard parts and gradient norm in metrics file A
# equal B's to 1e-5 relative.
steps_agree() {
  python3 - "$1" "$2" <<'PY'
import json, math, sys
a = [json.loads(l) for l in open(sys.argv[1]) if '"train"' in l]
b = [json.loads(l) for l in open(sys.argv[2]) if '"train"' in l]
assert a and len(a) == len(b), (len(a), len(b))
for x, y in zip(a, b):
    for k in ("loss", "soft", "hard", "grad_norm"):
        assert math.isfinite(x[k]) and abs(x[k] - y[k]) <= 1e-5 * max(1, abs(x[k])), (k, x[k], y[k])
print(len(a), "steps agree")
PY
}
for r in ft kd kc; do
  if steps_agree "$tmp/$r-cpu/metrics.jsonl" "$tmp/$r-sim/metrics.jsonl"
  then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $r: training on sim differs from cpu"; fi
done
e_cpu=$("$kd" eval --model "$tmp/kd-cpu" --data "$tmp/dev.tsv" --threads 1 | grep accuracy)
e_sim=$("$kd" eval --model "$tmp/kd-sim" --data "$tmp/dev.tsv" --threads 1 --device sim | grep accuracy)
if [ -n "$e_cpu" ] && [ "$e_cpu" = "$e_sim" ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: eval cpu '$e_cpu' sim '$e_sim'"; fi
# compare: the models' accuracy and macro-F1 columns, cpu against sim.
c_cpu=$("$kd" compare --teacher "$tmp/teacher" --student "$tmp/kd-cpu" --data "$tmp/dev.tsv" --threads 1 | awk '/^(teacher|student) /{print $1, $2, $3}')
c_sim=$("$kd" compare --teacher "$tmp/teacher" --student "$tmp/kd-cpu" --data "$tmp/dev.tsv" --threads 1 --device sim | awk '/^(teacher|student) /{print $1, $2, $3}')
if [ "$(wc -l <<<"$c_cpu")" -eq 2 ] && [ "$c_cpu" = "$c_sim" ]; then pass=$((pass + 1));
else fail=$((fail + 1)); echo "FAIL: compare cpu '$c_cpu' sim '$c_sim'"; fi
p_sim=$(printf 'the film was good\n' | "$kd" predict --model "$tmp/teacher" --threads 1 --device sim)
p_cpu=$(printf 'the film was good\n' | "$kd" predict --model "$tmp/teacher" --threads 1)
if [ -n "$p_cpu" ] && [ "$p_cpu" = "$p_sim" ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: predict cpu '$p_cpu' sim '$p_sim'"; fi

# Mixed precision (--precision bf16: bf16 activations, f32 weights, optimizer and losses) on cpu and sim:
# the same steps on both (the same kernels); the first step's loss within 2% of the f32 run's (later
# steps drift apart); eval in bf16 gives the same accuracy on both devices.
for d in cpu sim; do
  "$kd" finetune --model bert-tiny --vocab "$tmp/vocab.txt" --data "$tmp" --out "$tmp/fb-$d" --epochs 1 --batch-size 8 \
    --max-len 16 --lr 1e-3 --quiet --threads 1 --log-every 1 --device "$d" --precision bf16 >/dev/null 2>"$tmp/fb-$d.err" || echo "finetune bf16 --device $d: $(cat "$tmp/fb-$d.err")"
  "$kd" distill --teacher "$tmp/teacher" --student bert-tiny --data "$tmp" --out "$tmp/kb-$d" --epochs 1 --batch-size 8 \
    --max-len 16 --lr 1e-3 --quiet --threads 1 --log-every 1 --device "$d" --precision bf16 >/dev/null 2>"$tmp/kb-$d.err" || echo "distill bf16 --device $d: $(cat "$tmp/kb-$d.err")"
done
for r in fb kb; do
  if steps_agree "$tmp/$r-cpu/metrics.jsonl" "$tmp/$r-sim/metrics.jsonl"
  then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $r: bf16 training on sim differs from cpu"; fi
done
if python3 - "$tmp/ft-cpu/metrics.jsonl" "$tmp/fb-cpu/metrics.jsonl" <<'PY'
import json, math, sys
a = [json.loads(l) for l in open(sys.argv[1]) if '"train"' in l][0]
b = [json.loads(l) for l in open(sys.argv[2]) if '"train"' in l][0]
assert math.isfinite(b["loss"]) and abs(a["loss"] - b["loss"]) <= 2e-2 * abs(a["loss"]), (a["loss"], b["loss"])
assert math.isfinite(b["grad_norm"]) and abs(a["grad_norm"] - b["grad_norm"]) <= 5e-2 * a["grad_norm"], (a["grad_norm"], b["grad_norm"])
print("first step: f32 loss", a["loss"], "bf16", b["loss"])
PY
then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: the first bf16 step is not within 2% of the f32 one"; fi
eb_cpu=$("$kd" eval --model "$tmp/kd-cpu" --data "$tmp/dev.tsv" --threads 1 --precision bf16 | grep accuracy)
eb_sim=$("$kd" eval --model "$tmp/kd-cpu" --data "$tmp/dev.tsv" --threads 1 --precision bf16 --device sim | grep accuracy)
if [ -n "$eb_cpu" ] && [ "$eb_cpu" = "$eb_sim" ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: bf16 eval cpu '$eb_cpu' sim '$eb_sim'"; fi

# A transfer set, augmentation and a pruned vocabulary: the student keeps the pieces its text uses.
printf 'the film is great\n\nthe film was good\ngreat great film\n' > "$tmp/more.txt"
if "$kd" distill --teacher "$tmp/teacher" --init-from-teacher --data "$tmp" --out "$tmp/tp" --epochs 1 --batch-size 8 \
     --max-len 16 --lr 1e-3 --threads 1 --transfer "$tmp/more.txt" --augment 2 --prune-vocab --alpha 0.5 \
     >/dev/null 2>"$tmp/tp.err"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: distill with a transfer set: $(cat "$tmp/tp.err")"; fi
grep -qF "more.txt: 3 texts, 2 kept" "$tmp/tp.err" && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: transfer summary: $(cat "$tmp/tp.err")"; }
[ "$(wc -l < "$tmp/tp/augmented.txt" 2>/dev/null)" = 64 ] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: augmented.txt should hold 2 x 32 variants"; }
nv=$(wc -l < "$tmp/tp/vocab.txt" 2>/dev/null)
if cmp -s "$tmp/tp/vocab.txt" "$tmp/tp/pruned_vocab.txt" && grep -q "\"vocab_size\": *$nv\b" "$tmp/tp/config.json" && [ "$nv" -lt 13 ] \
   && grep -qx 'great' "$tmp/tp/vocab.txt" && ! grep -qx 'bad' "$tmp/tp/vocab.txt"; then pass=$((pass + 1))
else fail=$((fail + 1)); echo "FAIL: pruned vocabulary ($nv pieces): $(cat "$tmp/tp/vocab.txt" 2>/dev/null | tr '\n' ' ')"; fi
"$kd" eval --model "$tmp/tp" --data "$tmp/dev.tsv" --threads 1 | grep -q accuracy && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: eval of the pruned student"; }
expect 1 "transfer set is labelled only by a teacher" -- distill "${t[@]}" --data "$tmp" --transfer "$tmp/more.txt" --alpha 0
expect 1 "none.txt: no such file" -- distill "${t[@]}" --data "$tmp" --transfer "$tmp/none.txt"

# Intermediate layers: hidden and attention losses through the default map, logged; bad maps named.
if "$kd" distill --teacher "$tmp/teacher" --init-from-teacher --student-layers 1 --data "$tmp" --out "$tmp/il" --epochs 1 \
     --batch-size 8 --max-len 16 --lr 1e-3 --quiet --threads 1 --log-every 1 --hidden-weight 1 --hidden-loss cos \
     --attention-weight 0.5 >/dev/null 2>"$tmp/il.err" && grep -q '"hidden":[0-9]' "$tmp/il/metrics.jsonl" \
   && grep -q '"attention":[0-9]' "$tmp/il/metrics.jsonl"; then pass=$((pass + 1))
else fail=$((fail + 1)); echo "FAIL: distill with intermediate losses: $(cat "$tmp/il.err")"; fi
expect 2 "--layer-map: got '1:9'" -- distill "${t[@]}" --data "$tmp" --hidden-weight 1 --layer-map 1:9
expect 2 "--hidden-loss: got 'l1', expected mse or cos" -- distill "${t[@]}" --data "$tmp" --hidden-weight 1 --hidden-loss l1
expect 1 "drop --cache-teacher" -- distill "${t[@]}" --data "$tmp" --hidden-weight 1 --cache-teacher

# Narrow students (the teacher: bert-tiny, hidden 128, 2 heads, FFN 512): sliced from the teacher and the
# same shape fresh, both through the hidden-state projection; saved narrow, evaluated, compared side by side.
for init in sliced random; do
  if "$kd" distill --teacher "$tmp/teacher" --init-from-teacher --student-hidden 16 --student-init "$init" --data "$tmp" \
       --out "$tmp/nw-$init" --epochs 1 --batch-size 8 --max-len 16 --lr 1e-3 --quiet --threads 1 --log-every 1 \
       --hidden-weight 1 >/dev/null 2>"$tmp/nw.err" && grep -q '"hidden_size": *16,' "$tmp/nw-$init/config.json" \
     && grep -q '"intermediate_size": *64,' "$tmp/nw-$init/config.json" && grep -q '"num_attention_heads": *2,' "$tmp/nw-$init/config.json" \
     && grep -q '"hidden":[0-9]' "$tmp/nw-$init/metrics.jsonl" \
     && "$kd" eval --model "$tmp/nw-$init" --data "$tmp/dev.tsv" --threads 1 | grep -q accuracy; then pass=$((pass + 1))
  else fail=$((fail + 1)); echo "FAIL: narrow student ($init): $(cat "$tmp/nw.err"; cat "$tmp/nw-$init/config.json" 2>/dev/null)"; fi
done
if ! cmp -s "$tmp/nw-sliced/model.safetensors" "$tmp/nw-random/model.safetensors"; then pass=$((pass + 1))
else fail=$((fail + 1)); echo "FAIL: --student-init sliced and random gave the same student"; fi
# --student-intermediate overrides the proportional FFN; a directory with only config.json is that shape, fresh.
mkdir -p "$tmp/bare"
sed -e 's/"hidden_size": *[0-9]*/"hidden_size": 32/' -e 's/"intermediate_size": *[0-9]*/"intermediate_size": 48/' \
  "$tmp/teacher/config.json" > "$tmp/bare/config.json"
if "$kd" distill --teacher "$tmp/teacher" --init-from-teacher --student-hidden 32 --student-intermediate 40 --data "$tmp" \
     --out "$tmp/ni" --epochs 1 --batch-size 8 --max-len 16 --quiet --threads 1 >/dev/null 2>"$tmp/ni.err" \
   && grep -q '"intermediate_size": *40,' "$tmp/ni/config.json" && grep -q '"hidden_size": *32,' "$tmp/ni/config.json" \
   && "$kd" distill --teacher "$tmp/teacher" --student "$tmp/bare" --data "$tmp" --out "$tmp/nb" --epochs 1 \
     --batch-size 8 --max-len 16 --quiet --threads 1 >/dev/null 2>>"$tmp/ni.err" \
   && grep -q '"hidden_size": *32,' "$tmp/nb/config.json" && grep -q '"intermediate_size": *48,' "$tmp/nb/config.json" \
   && cmp -s "$tmp/nb/vocab.txt" "$tmp/teacher/vocab.txt"; then pass=$((pass + 1))
else fail=$((fail + 1)); echo "FAIL: --student-intermediate or a config-only student: $(cat "$tmp/ni.err")"; fi
# compare with two students: a row and a summary line each, the one-student format unchanged above.
cmp2=$("$kd" compare --teacher "$tmp/teacher" --student "$tmp/nw-sliced" --student "$tmp/nw-random" --data "$tmp/dev.tsv" \
  --threads 1 --latency-samples 4 2>&1)
if grep -q '^teacher ' <<<"$cmp2" && grep -q "^student1 .*nw-sliced" <<<"$cmp2" && grep -q "^student2 .*nw-random" <<<"$cmp2" \
   && grep -q 'acc-share' <<<"$cmp2" && grep -q "^student1: .*of the teacher's accuracy" <<<"$cmp2" \
   && grep -q "^student2: .*of the teacher's accuracy" <<<"$cmp2"; then pass=$((pass + 1))
else fail=$((fail + 1)); echo "FAIL: compare with two students printed: $cmp2"; fi
n=(--teacher "$tmp/teacher" --init-from-teacher --data "$tmp" --out "$tmp/x" --quiet --threads 1)
expect 2 "--student-hidden: got 256, expected at most the teacher's hidden_size 128" -- distill "${n[@]}" --student-hidden 256
expect 2 "--student-hidden: got 15, expected a multiple of num_attention_heads 2" -- distill "${n[@]}" --student-hidden 15
expect 2 "--student-intermediate: got 1024, expected at most the teacher's intermediate_size 512" -- distill "${n[@]}" --student-intermediate 1024
expect 2 "--student-init: got 'zero', expected sliced or random" -- distill "${n[@]}" --student-init zero
expect 2 "--student-init: got 'sliced', which needs --init-from-teacher" -- distill "${t[@]}" --data "$tmp" --student-init sliced
expect 2 "--student-hidden: $tmp/teacher holds weights" -- distill "${t[@]/bert-tiny/$tmp/teacher}" --data "$tmp" --student-hidden 16
expect 1 "num_attention_heads differs (teacher 2, student 4)" -- distill "${n[@]}" --student bert-mini
expect 2 "--student: got nothing" -- compare --teacher "$tmp/teacher" --data "$tmp/dev.tsv"

echo "test_cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
