// llama-batch-driver.mjs times llama.cpp (through node-llama-cpp, CPU only)
// serving N concurrent streams the way `verdict bench --streams` times
// Verdict's continuous batch, and prints one JSON line per N:
//
//   node llama-batch-driver.mjs MODEL.gguf THREADS PROMPT_TOKENS DECODE_TOKENS VOCAB N1,N2,...
//
// - stream i's prompt: BOS, then PROMPT_TOKENS pseudo-random ids from the
//   generator of cmd/verdict/bench.go seeded with 12345+i (the same ids
//   Verdict uses);
// - alone: every stream's greedy answer (DECODE_TOKENS tokens) in a context
//   of one sequence, one after another (after a warm-up token);
// - for each N: a context of N sequences; the N streams are started together
//   and evaluated by llama.cpp in shared batches. Reported: generated tokens
//   over the wall time (first request to last token); the decode rate while
//   every stream decodes (the tokens after the last stream's first token up
//   to the first stream's last one, over that span: decodeRate in
//   cmd/verdict/benchstreams.go); time to first token and between tokens
//   (p50, p99), and how many answers differ from alone.
// run-streams.sh copies this file next to its node_modules and runs it there.
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

const [modelPath, threadsArg, promptArg, decodeArg, vocabArg, nsArg] = process.argv.slice(2);
const threads = Number(threadsArg), promptN = Number(promptArg), decodeN = Number(decodeArg), vocab = Number(vocabArg);
const ns = (nsArg ?? "").split(",").map(Number);
if (!modelPath || !(threads > 0) || !(promptN >= 0) || !(decodeN >= 1) || !(vocab > 3) || !ns.every((n) => n >= 1)) {
    console.error("usage: node llama-batch-driver.mjs MODEL.gguf THREADS PROMPT_TOKENS DECODE_TOKENS VOCAB N1,N2,...");
    process.exit(2);
}

function streamTokens(bos, i) {
    const t = [bos];
    let x = (12345 + i) >>> 0;
    for (let j = 0; j < promptN; j++) {
        x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
        t.push(3 + ((x >>> 8) % (vocab - 3)));
    }
    return t;
}

const llama = await getLlama({
    gpu: false, build: "never", skipDownload: true, usePrebuiltBinaries: true,
    progressLogs: false, logLevel: LlamaLogLevel.error, maxThreads: threads,
});
const model = await llama.loadModel({ modelPath, gpuLayers: 0, useMmap: true });
const bos = model.tokens.bos ?? 1;
const eos = model.tokens.eos ?? 2;
const maxN = Math.max(...ns);
const prompts = Array.from({ length: maxN }, (_, i) => streamTokens(bos, i));
const per = promptN + 1 + decodeN + 8;

// run generates one stream's greedy answer on seq, timing every token.
async function run(seq, prompt) {
    const r = { tokens: [], times: [], start: process.hrtime.bigint() };
    for await (const tok of seq.evaluate(prompt, { temperature: 0 })) {
        r.tokens.push(tok);
        r.times.push(process.hrtime.bigint());
        if (r.tokens.length === decodeN || tok === eos) break;
    }
    return r;
}

async function newContext(n) {
    return model.createContext({
        contextSize: n * per, batchSize: Math.max(512, n * 8), threads: { ideal: threads, min: threads }, sequences: n,
    });
}

const alone = [];
{
    const ctx = await newContext(1);
    const seq = ctx.getSequence();
    await seq.evaluateWithoutGeneratingNewTokens([bos]);
    await seq.clearHistory();
    for (const p of prompts) {
        alone.push((await run(seq, p)).tokens);
        await seq.clearHistory();
    }
    await ctx.dispose();
}

const pct = (xs, p) => {
    if (xs.length === 0) return 0;
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.floor(((s.length - 1) * p) / 100)];
};
// decodeRate: tokens per second that arrived while every run was decoding,
// and that span in seconds.
function decodeRate(runs) {
    if (runs.some((r) => r.times.length === 0)) return [0, 0];
    let from = runs[0].times[0], to = runs[0].times[runs[0].times.length - 1];
    for (const r of runs) {
        if (r.times[0] > from) from = r.times[0];
        if (r.times[r.times.length - 1] < to) to = r.times[r.times.length - 1];
    }
    if (to <= from) return [0, 0];
    let n = 0;
    for (const r of runs) for (const t of r.times) if (t > from && t <= to) n++;
    const d = Number(to - from) / 1e9;
    return [n / d, d];
}

for (const n of ns) {
    const ctx = await newContext(n);
    const seqs = Array.from({ length: n }, () => ctx.getSequence());
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const runs = await Promise.all(seqs.map((s, i) => run(s, prompts[i])));
    let last = t0, tokens = 0, differ = 0;
    const ttft = [], tpot = [];
    runs.forEach((r, i) => {
        tokens += r.tokens.length;
        if (r.tokens.length !== alone[i].length || r.tokens.some((t, j) => t !== alone[i][j])) differ++;
        if (r.times.length === 0) return;
        ttft.push(Number(r.times[0] - r.start) / 1e6);
        for (let j = 1; j < r.times.length; j++) tpot.push(Number(r.times[j] - r.times[j - 1]) / 1e6);
        if (r.times[r.times.length - 1] > last) last = r.times[r.times.length - 1];
    });
    const wall = Number(last - t0) / 1e9;
    const [decodeTokS, decodeS] = decodeRate(runs);
    const cu = process.cpuUsage(cpu0); // the node process: llama.cpp's threads included
    const cpu = (cu.user + cu.system) / 1e6;
    console.log(JSON.stringify({
        engine: "llama.cpp", model: modelPath, threads, streams: n, prompt_tokens: promptN + 1, decode_tokens: decodeN,
        output_tokens: tokens, wall_s: wall, aggregate_tok_s: tokens / wall, decode_tok_s: decodeTokS, decode_s: decodeS, cpu_s: cpu, tok_per_cpu_s: tokens / cpu,
        ttft_p50_ms: pct(ttft, 50), ttft_p99_ms: pct(ttft, 99), tpot_p50_ms: pct(tpot, 50), tpot_p99_ms: pct(tpot, 99), differ,
    }));
    await ctx.dispose();
}
await model.dispose();
await llama.dispose();
