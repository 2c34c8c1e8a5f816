// llama-driver.mjs times llama.cpp (through node-llama-cpp, CPU only) the
// way `verdict bench --json` times Verdict, and prints one JSON line:
//
//   node llama-driver.mjs MODEL.gguf THREADS PROMPT_TOKENS DECODE_TOKENS VOCAB [DECODE_AT]
//
// - load: getLlama (the native library) timed as init_s, then loadModel
//   (mmap) and createContext timed as load_s;
// - warm-up: one token evaluated (touches every weight), timed as
//   warmup_s, then cleared;
// - prefill: PROMPT_TOKENS fixed pseudo-random token ids (the same ids
//   Verdict uses) evaluated in one batch, without generating;
// - decode: after one BOS token (and, with DECODE_AT, that many more
//   pseudo-random tokens, untimed), DECODE_TOKENS greedy tokens, each one
//   evaluation; the clock starts when the first token comes out.
// llama.cpp runs with its defaults otherwise (KV cache F16, flash attention
// "auto"); the result says what they resolved to.
// run.sh copies this file next to its node_modules and runs it from there.
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

const [modelPath, threadsArg, promptArg, decodeArg, vocabArg, atArg] = process.argv.slice(2);
const threads = Number(threadsArg), promptN = Number(promptArg), decodeN = Number(decodeArg), vocab = Number(vocabArg);
const decodeAt = Number(atArg ?? 0);
if (!modelPath || !(threads > 0) || !(promptN >= 0) || !(decodeN >= 0) || !(vocab > 3) || !(decodeAt >= 0)) {
    console.error("usage: node llama-driver.mjs MODEL.gguf THREADS PROMPT_TOKENS DECODE_TOKENS VOCAB [DECODE_AT]");
    process.exit(2);
}

// benchTokens mirrors cmd/verdict/bench.go.
function benchTokens(n) {
    const t = [];
    let x = 12345;
    for (let i = 0; i < n; i++) {
        x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
        t.push(3 + ((x >>> 8) % (vocab - 3)));
    }
    return t;
}

const initStart = process.hrtime.bigint();
const llama = await getLlama({
    gpu: false, build: "never", skipDownload: true, usePrebuiltBinaries: true,
    progressLogs: false, logLevel: LlamaLogLevel.error, maxThreads: threads,
});
const initS = Number(process.hrtime.bigint() - initStart) / 1e9;
const loadStart = process.hrtime.bigint();
const model = await llama.loadModel({ modelPath, gpuLayers: 0, useMmap: true });
const ctxSize = Math.max(promptN, decodeAt + decodeN + 1, 8) + 8;
const context = await model.createContext({
    contextSize: ctxSize, batchSize: Math.max(promptN, Math.min(decodeAt, 512), 8), threads: { ideal: threads, min: threads }, sequences: 1,
});
const seq = context.getSequence();
const bos = model.tokens.bos ?? 1;
const loadS = Number(process.hrtime.bigint() - loadStart) / 1e9;

const warmStart = process.hrtime.bigint();
await seq.evaluateWithoutGeneratingNewTokens([bos]);
const warmupS = Number(process.hrtime.bigint() - warmStart) / 1e9;
await seq.clearHistory();

const res = { threads, prompt_tokens: promptN, decode_tokens: decodeN, llama_cpu: llama.cpuMathCores, flash_attention: context.flashAttention,
    init_s: initS, load_s: loadS, warmup_s: warmupS };
if (decodeAt > 0) res.decode_at = decodeAt;
if (promptN > 0) {
    const toks = benchTokens(promptN);
    const t0 = process.hrtime.bigint();
    await seq.evaluateWithoutGeneratingNewTokens(toks);
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    res.prefill_s = s;
    res.prefill_tok_s = promptN / s;
    await seq.clearHistory();
}
if (decodeN > 0) {
    let n = 0, t0 = 0n, last = -1, cpu0 = null;
    // BOS and the DECODE_AT filler tokens, all but the last untimed.
    const fill = [bos, ...benchTokens(decodeAt)];
    if (fill.length > 1) await seq.evaluateWithoutGeneratingNewTokens(fill.slice(0, -1));
    for await (const tok of seq.evaluate(fill.slice(-1), { temperature: 0 })) {
        last = tok;
        if (n === 0) {
            cpu0 = process.cpuUsage();
            t0 = process.hrtime.bigint();
        }
        if (n === decodeN) break;
        n++;
    }
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    res.decode_s = s;
    res.decode_tok_s = decodeN / s;
    const cpu = process.cpuUsage(cpu0);
    res.decode_cpu_s = (cpu.user + cpu.system) / 1e6;
    res.last_token = last;
}
res.peak_rss_bytes = process.resourceUsage().maxRSS * 1024;
console.log(JSON.stringify(res));
await context.dispose();
await model.dispose();
await llama.dispose();
