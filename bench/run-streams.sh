#!/usr/bin/env bash
# bench/run-streams.sh: serving many callers at once, Verdict's continuous
# batch beside llama.cpp's context of N sequences, on the same GGUF files,
# same machine, same thread count.
#
# Usage (from anywhere; needs go, node and npm on PATH, ../shared beside the
# repository for the vocabulary):
#
#   bash bench/run-streams.sh [--presets "110m"] [--types "f32 q8_0"] [--threads 2]
#                             [--streams 1,4,16,32] [--prompt 16] [--decode 64]
#                             [--out DIR] [--verdict BIN] [--kv-cache "f32 f16"]
#                             [--rounds R]
#
# The Llama 3.2 1B shape: --presets llama3.2-1b --types q4_k_m (its
# vocabulary comes from ../shared/tokenizers/derived, as in bench/run.sh).
#
# For every model: `verdict bench --streams N1,N2,... --json` (N concurrent
# greedy generations through a worker: receipts signed, every token timed)
# and bench/llama-batch-driver.mjs (N sequences of one llama.cpp context
# evaluated together), each after running every stream alone. Printed: a
# table of the aggregate decode rate while all N streams decode (the tokens
# after the last stream's first token up to the first stream's last one,
# over that span: prefill is in the time to first token), aggregate
# tokens/s end to end (all streams' generated tokens over the wall time,
# prefill included) and per CPU second of the process (both engines;
# steadier than the wall clock on a busy machine), time to first token and
# per output token (p50 / p99), and the answers that differ from the same
# stream run alone. Raw results go to OUT/streams.jsonl. Setup (models,
# node-llama-cpp) as bench/run.sh.
#
# --rounds R (default 1) runs the list of counts R times over, in one
# process per engine and model (1,16,1,16,... for --streams 1,16), and the
# table gives each figure's median over the rounds, the decode rate's
# range beside it, and the ratios to N=1 of the medians: on a shared
# virtual machine a single round's N=1 figure moves by a third from minute
# to minute, and so would a ratio taken from it. Beside the decode ratio,
# "by round": the median and range of each round's own ratio (its rate
# over the N=1 rate of the same round, measured seconds before, in the
# same state of the machine).
#
# --kv-cache lists Verdict's key/value cache precisions to run (default f32;
# "f32 f16" runs both, f16 being the spec verdict-det/2+kv16); llama.cpp
# runs with its default cache, F16.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PRESETS="110m"
TYPES="f32 q8_0"
THREADS=2
STREAMS=1,4,16,32
PROMPT=16
DECODE=64
OUT="$ROOT/bench/out"
VBIN=""
KVS="f32"
ROUNDS=1
while [ $# -gt 0 ]; do
	case "$1" in
	--presets) PRESETS=$2; shift 2 ;;
	--types) TYPES=$2; shift 2 ;;
	--threads) THREADS=$2; shift 2 ;;
	--streams) STREAMS=$2; shift 2 ;;
	--prompt) PROMPT=$2; shift 2 ;;
	--decode) DECODE=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--verdict) VBIN=$2; shift 2 ;;
	--kv-cache) KVS=$2; shift 2 ;;
	--rounds) ROUNDS=$2; shift 2 ;;
	-h|--help) sed -n '2,41p' "${BASH_SOURCE[0]}"; exit 0 ;;
	*) echo "unknown argument $1" >&2; exit 2 ;;
	esac
done
case "$ROUNDS" in
'' | *[!0-9]* | 0) echo "--rounds takes a count of at least 1, not '$ROUNDS'" >&2; exit 2 ;;
esac
RUN_STREAMS=$STREAMS
for ((i = 1; i < ROUNDS; i++)); do RUN_STREAMS="$RUN_STREAMS,$STREAMS"; done
# vocab_of PRESET: the vocabulary GGUF its synthetic model is written on
# (as bench/run.sh).
vocab_of() {
	case "$1" in
	smollm2-*) echo "$ROOT/../shared/tokenizers/derived/ggml-vocab-smollm2.derived.gguf" ;;
	qwen*) echo "$ROOT/../shared/tokenizers/derived/ggml-vocab-qwen2.derived-from-qwen3.gguf" ;;
	llama3*) echo "$ROOT/../shared/tokenizers/derived/ggml-vocab-llama-bpe.derived.gguf" ;;
	*) echo "$ROOT/../shared/models/ggml-vocab-llama-spm.gguf" ;;
	esac
}
mkdir -p "$OUT/models" "$OUT/node"
if [ -n "$VBIN" ]; then
	V=$VBIN
else
	(cd "$ROOT" && go build -o "$OUT/verdict" ./cmd/verdict)
	V="$OUT/verdict"
fi
for p in $PRESETS; do
	for t in $TYPES; do
		f="$OUT/models/$p-$t.gguf"
		[ -f "$f" ] || "$V" model synth --preset "$p" --vocab "$(vocab_of "$p")" --seed 1 --type "$t" --out "$f" >&2
	done
done
# The e2e tests' node-llama-cpp, when installed, serves too.
if [ ! -e "$OUT/node/node_modules" ] && [ -d "$ROOT/e2e/node_modules/node-llama-cpp" ]; then
	ln -s "$ROOT/e2e/node_modules" "$OUT/node/node_modules"
fi
if [ ! -d "$OUT/node/node_modules/node-llama-cpp" ]; then
	(cd "$OUT/node" && { [ -f package.json ] || echo '{"name":"verdict-bench","private":true,"type":"module"}' >package.json; } &&
		npm i -E node-llama-cpp@3.21.1 --no-audit --no-fund >&2)
fi
cp "$ROOT/bench/llama-batch-driver.mjs" "$OUT/node/llama-batch-driver.mjs"

RES="$OUT/streams.jsonl"
: >"$RES"
for p in $PRESETS; do
	for t in $TYPES; do
		f="$OUT/models/$p-$t.gguf"
		# The llama.cpp driver draws the streams' prompt ids below the
		# model's token count, as `verdict bench` does.
		vocab=$("$V" model inspect "$f" | awk '/^vocab:/ && !v {v = $2} END {print v}')
		for kv in $KVS; do
			load=$(cut -d' ' -f1 /proc/loadavg)
			echo "== $p $t threads=$THREADS: verdict, $kv cache (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
			"$V" bench --json --model "$f" --threads "$THREADS" --streams "$RUN_STREAMS" --stream-prompt "$PROMPT" --decode-tokens "$DECODE" --kv-cache "$kv" |
				sed "s/^{/{\"engine\":\"verdict\",\"preset\":\"$p\",\"type\":\"$t\",\"load\":$load,/" >>"$RES"
		done
		load=$(cut -d' ' -f1 /proc/loadavg)
		echo "== $p $t threads=$THREADS: llama.cpp (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
		(cd "$OUT/node" && node llama-batch-driver.mjs "$f" "$THREADS" "$PROMPT" "$DECODE" "$vocab" "$RUN_STREAMS") |
			sed "s/^{\"engine\":\"llama.cpp\",/{\"engine\":\"llama.cpp\",\"preset\":\"$p\",\"type\":\"$t\",\"load\":$load,/" >>"$RES"
	done
done

node - "$RES" <<'EOF'
const fs = require("fs");
const all = fs.readFileSync(process.argv[2], "utf8").trim().split("\n").map((l) => JSON.parse(l));
// One row per engine, model, cache and count: the median of its rounds.
const key = (r) => [r.engine, r.preset, r.type, r.kv_cache ?? "", r.streams].join("|");
const groups = new Map();
for (const r of all) {
	if (!groups.has(key(r))) groups.set(key(r), []);
	groups.get(key(r)).push(r);
}
const median = (xs) => {
	const s = xs.filter((x) => x !== undefined).sort((a, b) => a - b);
	if (s.length === 0) return undefined;
	const m = s.length >> 1;
	return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fields = ["decode_tok_s", "aggregate_tok_s", "tok_per_cpu_s", "ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms"];
const rows = [...groups.values()].map((rs) => {
	const r = { ...rs[0], rounds: rs.length, differ: Math.max(...rs.map((x) => x.differ)), each: rs.map((x) => x.decode_tok_s) };
	for (const k of fields) r[k] = median(rs.map((x) => x[k]));
	const d = rs.map((x) => x.decode_tok_s);
	r.decode_min = Math.min(...d);
	r.decode_max = Math.max(...d);
	return r;
});
const f = (x) => (x === undefined ? "—" : x >= 100 ? x.toFixed(0) : x.toFixed(1));
const multi = rows.some((r) => r.rounds > 1);
console.log(`| model | engine | streams | decode tok/s, all decoding${multi ? " (median; range)" : ""} | x its N=1 | tok/s end to end | x its N=1 | tokens per CPU-second | x its N=1 | TTFT p50 / p99 ms | per token p50 / p99 ms | answers unlike alone${multi ? " (most in a round)" : ""} | load (1 min, at start) |`);
console.log("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
for (const r of rows) {
	const one = rows.find((o) => o.engine === r.engine && o.preset === r.preset && o.type === r.type && o.kv_cache === r.kv_cache && o.streams === 1);
	const engine = r.engine === "verdict" && r.kv_cache === "f16" ? "verdict, f16 cache" : r.engine;
	const ratio = (a, b) => (one && b > 0 ? (a / b).toFixed(2) : "");
	const c = r.tok_per_cpu_s > 0 ? f(r.tok_per_cpu_s) : "—";
	let d = r.decode_tok_s > 0 ? f(r.decode_tok_s) : "—";
	if (r.rounds > 1 && r.decode_tok_s > 0) d += ` (${f(r.decode_min)}–${f(r.decode_max)})`;
	// Round by round: each round's rate over the same round's N=1 (the
	// two measured seconds apart, in the same state of the machine), the
	// median and range of those ratios.
	let x = ratio(r.decode_tok_s, one?.decode_tok_s);
	if (one && r.streams !== 1 && r.rounds > 1 && one.rounds === r.rounds && one.each.every((v) => v > 0)) {
		const each = r.each.map((v, i) => v / one.each[i]);
		x += `; by round ${median(each).toFixed(2)} (${Math.min(...each).toFixed(2)}–${Math.max(...each).toFixed(2)})`;
	}
	console.log(`| ${r.preset} ${r.type} | ${engine} | ${r.streams} | ${d} | ${x} | ${f(r.aggregate_tok_s)} | ${ratio(r.aggregate_tok_s, one?.aggregate_tok_s)} | ${c} | ${ratio(r.tok_per_cpu_s, one?.tok_per_cpu_s)} | ${f(r.ttft_p50_ms)} / ${f(r.ttft_p99_ms)} | ${f(r.tpot_p50_ms)} / ${f(r.tpot_p99_ms)} | ${r.differ} of ${r.streams} | ${r.load ?? ""} |`);
}
EOF
