#!/usr/bin/env bash
# bench/run.sh: Verdict beside llama.cpp on the same GGUF files, same machine,
# same thread count.
#
# Usage (from anywhere; needs go, node and npm on PATH, ../shared beside the
# repository for the vocabulary):
#
#   bash bench/run.sh [--runs 5] [--presets "15m 110m"] [--types "f32 q8_0"]
#                     [--threads "1 2"] [--prompt 256] [--decode 64] [--out DIR]
#                     [--verdict BIN]   (use this verdict binary instead of building one)
#
# What it does:
#   1. builds verdict into OUT (default bench/out, git-ignored);
#   2. writes the synthetic models with
#        verdict model synth --preset P --vocab ../shared/models/ggml-vocab-llama-spm.gguf --seed 1 --type T
#      (kept between runs);
#   3. installs llama.cpp through `npm i -E node-llama-cpp@3.21.1` into
#      OUT/node (once; the package ships prebuilt CPU binaries, and the
#      driver runs with gpu off, build "never" and skipDownload, so nothing is
#      fetched or compiled at run time);
#   4. for every model and thread count, runs `verdict bench --json` and
#      bench/llama-driver.mjs alternately (the engine that goes first swaps
#      each run), RUNS times each: a 256-token prefill (one batch) and a
#      greedy decode of DECODE tokens after BOS, both after a warm-up token;
#   5. prints a table of tokens/s (min / median / max), the ratio of the
#      medians Verdict/llama.cpp, and peak RSS (Verdict: VmHWM; llama.cpp:
#      the node process's maxRSS, which includes node itself).
# Raw results go to OUT/results.jsonl.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=5
PRESETS="15m 110m"
TYPES="f32 q8_0"
THREADS="1 2"
PROMPT=256
DECODE=64
OUT="$ROOT/bench/out"
VBIN=""
while [ $# -gt 0 ]; do
	case "$1" in
	--runs) RUNS=$2; shift 2 ;;
	--presets) PRESETS=$2; shift 2 ;;
	--types) TYPES=$2; shift 2 ;;
	--threads) THREADS=$2; shift 2 ;;
	--prompt) PROMPT=$2; shift 2 ;;
	--decode) DECODE=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--verdict) VBIN=$2; shift 2 ;;
	-h|--help) sed -n '2,30p' "${BASH_SOURCE[0]}"; exit 0 ;;
	*) echo "run.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
	esac
done
VOCAB="$ROOT/../shared/models/ggml-vocab-llama-spm.gguf"
[ -f "$VOCAB" ] || { echo "run.sh: $VOCAB not found (the shared material must sit beside the repository)" >&2; exit 1; }
mkdir -p "$OUT/models" "$OUT/node"

if [ -n "$VBIN" ]; then
	V=$(cd "$(dirname "$VBIN")" && pwd)/$(basename "$VBIN")
else
	echo "== building verdict" >&2
	(cd "$ROOT" && go build -o "$OUT/verdict" ./cmd/verdict)
	V="$OUT/verdict"
fi

echo "== synthetic models" >&2
for p in $PRESETS; do
	for t in $TYPES; do
		f="$OUT/models/$p-$t.gguf"
		[ -f "$f" ] || "$V" model synth --preset "$p" --vocab "$VOCAB" --seed 1 --type "$t" --out "$f" >&2
	done
done

echo "== node-llama-cpp" >&2
if [ ! -d "$OUT/node/node_modules/node-llama-cpp" ]; then
	(cd "$OUT/node" && { [ -f package.json ] || echo '{"name":"verdict-bench","private":true,"type":"module"}' >package.json; } &&
		npm i -E node-llama-cpp@3.21.1 --no-audit --no-fund >&2)
fi
cp "$ROOT/bench/llama-driver.mjs" "$OUT/node/llama-driver.mjs"

RES="$OUT/results.jsonl"
: >"$RES"
# vocabulary size of the synthetic models (the Llama SPM vocabulary)
NVOCAB=32000
for p in $PRESETS; do
	for t in $TYPES; do
		f="$OUT/models/$p-$t.gguf"
		size=$(stat -c %s "$f")
		for th in $THREADS; do
			for i in $(seq 1 "$RUNS"); do
				echo "== $p $t threads=$th run $i/$RUNS" >&2
				v() {
					"$V" bench --json --model "$f" --threads "$th" --prompt-tokens "$PROMPT" --decode-tokens "$DECODE" |
						sed "s/^{/{\"engine\":\"verdict\",\"preset\":\"$p\",\"type\":\"$t\",\"file\":$size,\"run\":$i,/" >>"$RES"
				}
				l() {
					(cd "$OUT/node" && node llama-driver.mjs "$f" "$th" "$PROMPT" "$DECODE" "$NVOCAB") |
						sed "s/^{/{\"engine\":\"llama.cpp\",\"preset\":\"$p\",\"type\":\"$t\",\"file\":$size,\"run\":$i,/" >>"$RES"
				}
				if [ $((i % 2)) -eq 1 ]; then v; l; else l; v; fi
			done
		done
	done
done

node - "$RES" <<'EOF'
const fs = require("fs");
const rows = fs.readFileSync(process.argv[2], "utf8").trim().split("\n").map((l) => JSON.parse(l));
const key = (r) => `${r.preset} ${r.type} ${r.threads}`;
const groups = new Map();
for (const r of rows) {
	if (!groups.has(key(r))) groups.set(key(r), { verdict: [], "llama.cpp": [], first: r });
	groups.get(key(r))[r.engine].push(r);
}
const stats = (xs) => {
	const s = [...xs].sort((a, b) => a - b);
	const med = s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
	return { min: s[0], med, max: s[s.length - 1] };
};
const f1 = (x) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
const mmm = (s) => `${f1(s.min)} / ${f1(s.med)} / ${f1(s.max)}`;
const mib = (b) => (b / 1048576).toFixed(0);
console.log("| model | threads | metric | Verdict tok/s min / median / max | llama.cpp tok/s min / median / max | ratio (medians) |");
console.log("|---|---|---|---|---|---|");
const rss = [];
for (const [k, g] of groups) {
	const [preset, type, threads] = k.split(" ");
	for (const [metric, field] of [["decode", "decode_tok_s"], ["prefill " + g.first.prompt_tokens, "prefill_tok_s"]]) {
		const a = stats(g.verdict.map((r) => r[field]).filter((x) => x > 0));
		const b = stats(g["llama.cpp"].map((r) => r[field]).filter((x) => x > 0));
		if (!(a.med > 0) || !(b.med > 0)) continue;
		console.log(`| ${preset} ${type} | ${threads} | ${metric} | ${mmm(a)} | ${mmm(b)} | ${(a.med / b.med).toFixed(2)} |`);
	}
	const v = g.verdict[0];
	rss.push(`| ${preset} ${type} | ${threads} | ${mib(Math.max(...g.verdict.map((r) => r.peak_rss_bytes)))} | ${mib(Math.max(...g["llama.cpp"].map((r) => r.peak_rss_bytes)))} | ${mib(v.file)} | ${mib(v.kv_cache_bytes)} | ${mib(v.file + v.kv_cache_bytes + 64 * 1048576)} |`);
}
console.log("\n| model | threads | Verdict peak RSS MiB | llama.cpp (node) peak RSS MiB | GGUF MiB | Verdict KV cache MiB | budget: file + KV + 64 MiB |");
console.log("|---|---|---|---|---|---|---|");
for (const l of rss) console.log(l);
EOF
