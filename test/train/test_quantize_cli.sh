#!/usr/bin/env bash
# test/train/test_quantize_cli.sh — `kd quantize`: a tiny fine-tuned model quantized (dynamic, and static with
# --calibration) holds I8 weights and says kd_quantization in config.json; kd eval, predict and compare run it
# with the f32 model's accuracy on the tiny set; bad input exits non-zero naming what was wrong (no --model,
# a missing model, an int8 model quantized again, an --out that holds a model or is the model's own
# directory, a missing calibration file), and training on an int8 model (finetune --model, distill --teacher,
# distill --student), running it off the CPU or in bf16 is refused with a message.
# usage: test_quantize_cli.sh PATH/TO/kd
set -u
kd="$1"
tmp=$(mktemp -d /tmp/kd_test_quantize_XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0

ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
# expect CODE SUBSTRING -- ARGS...: exit status and a stderr substring.
expect() {
  local code="$1" want="$2"; shift 3
  local err; err=$("$kd" "$@" 2>&1 >/dev/null </dev/null); local rc=$?
  if [ "$rc" -eq "$code" ] && grep -qF -- "$want" <<<"$err"; then ok
  else bad "kd $* -> exit $rc (want $code), stderr: $err (want '$want')"; fi
}
# accuracy of `kd eval` (the "accuracy" line's number)
acc() { "$kd" eval --model "$1" --data "$tmp/dev.tsv" --threads 1 --quiet 2>"$tmp/eval.err" | awk '/accuracy/ { print $2; exit }'; }

printf '[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\ngood\nbad\nfilm\nthe\nwas\nis\ngreat\nawful\n' > "$tmp/vocab.txt"
{ printf 'sentence\tlabel\n'; for i in $(seq 1 16); do printf 'the film was good\t1\nthe film is awful\t0\n'; done; } > "$tmp/train.tsv"
cp "$tmp/train.tsv" "$tmp/dev.tsv"
printf 'the film was great\nthe film is bad\n' > "$tmp/calib.txt"

if "$kd" finetune --model bert-tiny --vocab "$tmp/vocab.txt" --data "$tmp" --out "$tmp/f32" --epochs 10 \
     --batch-size 8 --max-len 16 --lr 2e-3 --quiet --threads 1 >/dev/null 2>"$tmp/ft.err"; then ok
else bad "finetune on the tiny set: $(cat "$tmp/ft.err")"; fi

# dynamic
if out=$("$kd" quantize --model "$tmp/f32" --out "$tmp/q" 2>&1) && grep -q "dynamic-per-token" <<<"$out"; then ok
else bad "kd quantize: $out"; fi
for f in config.json model.safetensors vocab.txt tokenizer_config.json; do
  if [ -f "$tmp/q/$f" ]; then ok; else bad "no $f beside the int8 model"; fi
done
if grep -q '"kd_quantization"' "$tmp/q/config.json" && grep -q '"activations": "dynamic-per-token"' "$tmp/q/config.json"; then ok
else bad "config.json lacks kd_quantization: $(cat "$tmp/q/config.json")"; fi
hdr=$(head -c 20000 "$tmp/q/model.safetensors" | tr -d '\0')
if grep -q '"bert.encoder.layer.0.attention.self.query.weight":{"dtype":"I8"' <<<"$hdr" &&
   grep -q '"bert.encoder.layer.0.attention.self.query.weight_scale":{"dtype":"F32"' <<<"$hdr"; then ok
else bad "model.safetensors has no I8 query weight with an F32 scale"; fi

a32=$(acc "$tmp/f32"); a8=$(acc "$tmp/q")
if [ -n "$a32" ] && [ -n "$a8" ] && awk -v a="$a32" -v b="$a8" 'BEGIN { exit !(b >= a - 0.0001) }'; then ok
else bad "int8 accuracy $a8 below f32 $a32 on the tiny set ($(cat "$tmp/eval.err"))"; fi
echo "tiny set: f32 accuracy $a32, int8 (dynamic) $a8"
out=$(printf 'the film was good\nawful\n' | "$kd" predict --model "$tmp/q" --threads 1)
if [ "$(wc -l <<<"$out")" -eq 2 ] && grep -q '"probabilities"' <<<"$out"; then ok; else bad "kd predict on int8: $out"; fi
if "$kd" compare --teacher "$tmp/f32" --student "$tmp/q" --data "$tmp/dev.tsv" --threads 1 --quiet --latency-samples 5 \
     >"$tmp/cmp.out" 2>&1; then ok; else bad "kd compare f32 vs int8: $(cat "$tmp/cmp.out")"; fi

# static, calibrated on a plain text file
if out=$("$kd" quantize --model "$tmp/f32" --out "$tmp/qs" --calibration "$tmp/calib.txt" --quiet 2>&1) &&
   grep -q "static-per-tensor" <<<"$out" && grep -q "2 texts" <<<"$out"; then ok
else bad "kd quantize --calibration: $out"; fi
if grep -q '"activations": "static-per-tensor"' "$tmp/qs/config.json" &&
   grep -q '"calibration": "percentile 99.99 of |x| over the real tokens of 2 texts"' "$tmp/qs/config.json"; then ok
else bad "static config.json: $(cat "$tmp/qs/config.json")"; fi
hdr=$(head -c 20000 "$tmp/qs/model.safetensors" | tr -d '\0')
if grep -q '"bert.encoder.layer.1.output.dense.input_scale":{"dtype":"F32","shape":\[1\]' <<<"$hdr"; then ok
else bad "static model.safetensors has no input_scale F32 [1]"; fi
# max-abs static scales (--calibration-percentile 100): one calibration pass
if out=$("$kd" quantize --model "$tmp/f32" --out "$tmp/qm" --calibration "$tmp/calib.txt" --calibration-percentile 100 \
         --quiet 2>&1) && grep -q "max-abs over the real tokens of 2 texts" <<<"$out"; then ok
else bad "kd quantize --calibration-percentile 100: $out"; fi
as=$(acc "$tmp/qs")
if [ -n "$as" ] && awk -v a="$a32" -v b="$as" 'BEGIN { exit !(b >= a - 0.0001) }'; then ok
else bad "static int8 accuracy $as below f32 $a32 ($(cat "$tmp/eval.err"))"; fi
echo "tiny set: int8 (static) $as"

# bad input
expect 2 "--model: got nothing" -- quantize --out "$tmp/x"
expect 2 "--out: got nothing" -- quantize --model "$tmp/f32"
expect 2 "--model: got '$tmp/missing'" -- quantize --model "$tmp/missing" --out "$tmp/x"
expect 2 "already int8" -- quantize --model "$tmp/q" --out "$tmp/x"
expect 2 "already holds a model" -- quantize --model "$tmp/f32" --out "$tmp/q"
expect 2 "the model's own directory" -- quantize --model "$tmp/f32" --out "$tmp/f32" --overwrite
expect 1 "no such file" -- quantize --model "$tmp/f32" --out "$tmp/x" --calibration "$tmp/missing.txt"
expect 2 "--calibration-samples" -- quantize --model "$tmp/f32" --out "$tmp/x" --calibration-samples 0
# training on an int8 model, or running it off the CPU
t=(--data "$tmp" --epochs 1 --batch-size 8 --max-len 16 --quiet --threads 1)
expect 1 "is an int8 model" -- finetune --model "$tmp/q" --out "$tmp/ft-q" "${t[@]}"
expect 1 "is an int8 model" -- distill --teacher "$tmp/q" --student bert-tiny --out "$tmp/d-q" "${t[@]}"
expect 1 "is an int8 model" -- distill --teacher "$tmp/f32" --student "$tmp/q" --out "$tmp/d-q2" "${t[@]}"
expect 1 "runs on the CPU" -- eval --model "$tmp/q" --data "$tmp/dev.tsv" --device sim
expect 1 "f32 activations" -- eval --model "$tmp/q" --data "$tmp/dev.tsv" --precision bf16
for d in ft-q d-q d-q2; do if [ -e "$tmp/$d/model.safetensors" ]; then bad "a refused run wrote $d"; else ok; fi; done

echo "test_quantize_cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
