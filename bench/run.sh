#!/usr/bin/env bash
# bench/run.sh: Verdict beside llama.cpp on the same GGUF files, same machine,
# same thread count.
#
# Usage (from anywhere; needs go, node and npm on PATH, ../shared beside the
# repository for the vocabulary):
#
#   bash bench/run.sh [--runs 5] [--presets "15m 110m"] [--types "f32 q8_0"]
#                     [--threads "1 2"] [--prompt 256] [--decode 64] [--out DIR]
#                     [--decode-at "256 2048 8192"] (also time the decode from these
#                                positions, after an untimed fill of the KV cache)
#                     [--verdict BIN]   (use this verdict binary instead of building one)
#
# Presets in real shapes (smollm2-135m, qwen2.5-0.5b, qwen3-0.6b, llama3.2-1b,
# qwen3-8b, llama3.1-8b) are written on their real vocabularies from
# ../shared/tokenizers/derived; types are any of `verdict model synth
# --type` (f32 f16 bf16 q8_0 q4_0 ... q4_k_m q5_k_m).
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
#      medians Verdict/llama.cpp, decode also as GB/s of weights read (the
#      bytes of the matrices one token reads, times tokens/s, for both
#      engines) and per CPU-second of the process (less sensitive to a
#      busy machine than the wall clock), and peak RSS (Verdict: VmHWM; llama.cpp: the node process's
#      maxRSS, which includes node itself), and the load time (Verdict:
#      model.Load and engine.New; llama.cpp: loadModel and createContext,
#      after getLlama; both map the file) and the first
#      token's time (the warm-up, which touches every weight), medians;
#   6. measures the memory read bandwidth first (go run ./bench/membw), the
#      physical limit of the decode figures.
# Raw results go to OUT/results.jsonl.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=5
PRESETS="15m 110m"
TYPES="f32 q8_0"
THREADS="1 2"
PROMPT=256
DECODE=64
DECODE_AT=""
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
	--decode-at) DECODE_AT=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--verdict) VBIN=$2; shift 2 ;;
	-h|--help) sed -n '2,45p' "${BASH_SOURCE[0]}"; exit 0 ;;
	*) echo "run.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
	esac
done
# vocab_of PRESET: the vocabulary GGUF its synthetic model is written on.
vocab_of() {
	case "$1" in
	smollm2-*) echo "$ROOT/../shared/tokenizers/derived/ggml-vocab-smollm2.derived.gguf" ;;
	qwen*) echo "$ROOT/../shared/tokenizers/derived/ggml-vocab-qwen2.derived-from-qwen3.gguf" ;;
	llama3*) echo "$ROOT/../shared/tokenizers/derived/ggml-vocab-llama-bpe.derived.gguf" ;;
	*) echo "$ROOT/../shared/models/ggml-vocab-llama-spm.gguf" ;;
	esac
}
for p in $PRESETS; do
	[ -f "$(vocab_of "$p")" ] || { echo "run.sh: $(vocab_of "$p") not found (the shared material must sit beside the repository)" >&2; exit 1; }
done
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
		[ -f "$f" ] || "$V" model synth --preset "$p" --vocab "$(vocab_of "$p")" --seed 1 --type "$t" --out "$f" >&2
	done
done

echo "== node-llama-cpp" >&2
if [ ! -d "$OUT/node/node_modules/node-llama-cpp" ]; then
	(cd "$OUT/node" && { [ -f package.json ] || echo '{"name":"verdict-bench","private":true,"type":"module"}' >package.json; } &&
		npm i -E node-llama-cpp@3.21.1 --no-audit --no-fund >&2)
fi
cp "$ROOT/bench/llama-driver.mjs" "$OUT/node/llama-driver.mjs"

echo "== memory bandwidth" >&2
MEMBW=$(cd "$ROOT" && go run ./bench/membw -mib 1024 -runs 5 -threads "$THREADS")
echo "$MEMBW" >&2

RES="$OUT/results.jsonl"
: >"$RES"
for p in $PRESETS; do
	for t in $TYPES; do
		f="$OUT/models/$p-$t.gguf"
		size=$(stat -c %s "$f")
		nvocab=$("$V" model inspect "$f" | awk '$1 == "vocab:" && !n {print $2; n = 1}')
		for th in $THREADS; do
			# "0": prefill PROMPT and decode DECODE after BOS; P > 0: decode
			# DECODE tokens from position P (no prefill timed).
			for at in 0 $DECODE_AT; do
				pr=$PROMPT
				[ "$at" -gt 0 ] && pr=0
				for i in $(seq 1 "$RUNS"); do
					echo "== $p $t threads=$th decode-at=$at run $i/$RUNS" >&2
					v() {
						"$V" bench --json --model "$f" --threads "$th" --prompt-tokens "$pr" --decode-tokens "$DECODE" --decode-at "$at" |
							sed "s/^{/{\"engine\":\"verdict\",\"preset\":\"$p\",\"type\":\"$t\",\"file\":$size,\"run\":$i,\"at\":$at,/" >>"$RES"
					}
					l() {
						(cd "$OUT/node" && node llama-driver.mjs "$f" "$th" "$pr" "$DECODE" "$nvocab" "$at") |
							sed "s/^{/{\"engine\":\"llama.cpp\",\"preset\":\"$p\",\"type\":\"$t\",\"file\":$size,\"run\":$i,\"at\":$at,/" >>"$RES"
					}
					if [ $((i % 2)) -eq 1 ]; then v; l; else l; v; fi
				done
			done
		done
	done
done
echo "memory read bandwidth (go run ./bench/membw): $MEMBW"

node - "$RES" <<'EOF'
const fs = require("fs");
const rows = fs.readFileSync(process.argv[2], "utf8").trim().split("\n").map((l) => JSON.parse(l));
const key = (r) => `${r.preset} ${r.type} ${r.threads} ${r.at || 0}`;
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
console.log("| model | threads | metric | Verdict tok/s min / median / max | llama.cpp tok/s min / median / max | ratio (medians) | GB/s of weights, Verdict / llama.cpp (medians) | decode tokens per CPU-second, Verdict / llama.cpp (medians) |");
console.log("|---|---|---|---|---|---|---|---|");
const rss = [];
for (const [k, g] of groups) {
	const [preset, type, threads, at] = k.split(" ");
	const wb = g.verdict[0].weight_bytes_per_token;
	const gbs = (x) => ((wb * x) / 1e9).toFixed(1);
	for (const [metric, field] of [[at > 0 ? `decode from ${Number(at) + 1}` : "decode", "decode_tok_s"], ["prefill " + g.first.prompt_tokens, "prefill_tok_s"]]) {
		const a = stats(g.verdict.map((r) => r[field]).filter((x) => x > 0));
		const b = stats(g["llama.cpp"].map((r) => r[field]).filter((x) => x > 0));
		if (!(a.med > 0) || !(b.med > 0)) continue;
		const bw = field === "decode_tok_s" ? `${gbs(a.med)} / ${gbs(b.med)}` : "—";
		const perCPU = (rs) => stats(rs.filter((r) => r.decode_cpu_s > 0).map((r) => r.decode_tokens / r.decode_cpu_s)).med;
		const cpu = field === "decode_tok_s" ? `${f1(perCPU(g.verdict))} / ${f1(perCPU(g["llama.cpp"]))}` : "—";
		console.log(`| ${preset} ${type} | ${threads} | ${metric} | ${mmm(a)} | ${mmm(b)} | ${(a.med / b.med).toFixed(2)} | ${bw} | ${cpu} |`);
	}
	if (at > 0) continue;
	const v = g.verdict[0];
	const secs = (e, f) => { const xs = g[e].map((r) => r[f]).filter((x) => x > 0); return xs.length ? stats(xs).med.toFixed(3) : "—"; };
	rss.push(`| ${preset} ${type} | ${threads} | ${mib(Math.max(...g.verdict.map((r) => r.peak_rss_bytes)))} | ${mib(Math.max(...g["llama.cpp"].map((r) => r.peak_rss_bytes)))} | ${mib(v.file)} | ${mib(v.kv_cache_bytes)} | ${mib(v.file + v.kv_cache_bytes + 64 * 1048576)} | ${secs("verdict", "load_s")} / ${secs("llama.cpp", "load_s")} | ${secs("verdict", "warmup_s")} / ${secs("llama.cpp", "warmup_s")} |`);
}
console.log("\n| model | threads | Verdict peak RSS MiB | llama.cpp (node) peak RSS MiB | GGUF MiB | Verdict KV cache MiB | budget: file + KV + 64 MiB | load s, Verdict / llama.cpp (medians) | first token s, Verdict / llama.cpp (medians) |");
console.log("|---|---|---|---|---|---|---|---|---|");
for (const l of rss) console.log(l);
EOF
