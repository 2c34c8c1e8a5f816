// llama.cjs runs llama.cpp (through node-llama-cpp, CPU only) for the
// refcheck harness. Go feeds it to `node` on standard input, with the working
// directory in e2e/ so that the dynamic import finds node-llama-cpp there.
//
// It is CommonJS with a dynamic import on purpose: under
// `node --input-type=module` the child process that node-llama-cpp forks to
// test its prebuilt binary inherits that flag, fails to start, and getLlama
// then reports NoBinaryFoundError.
//
// Input: the environment variable REFCHECK_CONFIG, a JSON object
//   {model, text, positions, topK, threads, batch, genPrompt, genTokens, genTop}
// Output, on standard output, one JSON line: the tokens, llama.cpp's topK
// most probable next tokens at each teacher-forced position with their
// probabilities renormalised over those topK (llama.cpp's softmax of its
// logits restricted to them), the greedy generation with llama.cpp's genTop
// most probable tokens at each step (full softmax), and the settings.
(async () => {
    const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
    const cfg = JSON.parse(process.env.REFCHECK_CONFIG);
    const t0 = Date.now();
    const phase = (what) => { if (process.env.REFCHECK_DEBUG) console.error(`refcheck: ${what} at ${Date.now() - t0} ms`); };

    // llama.cpp's own log lines that show the settings it runs with (the KV
    // cache types, flash attention, batch and thread counts, weight
    // buffers); everything at warning level or above goes to stderr.
    const settingsLog = [];
    const llama = await getLlama({
        gpu: false, build: "never", skipDownload: true, usePrebuiltBinaries: true, progressLogs: false,
        maxThreads: cfg.threads, logLevel: LlamaLogLevel.info,
        logger: (level, message) => {
            const m = String(message).trim();
            if (/^(llama_context: (n_ctx|n_batch|n_ubatch|flash_attn|causal_attn)|llama_kv_cache: size|load_tensors: .*buffer size|print_info: file type)/.test(m))
                settingsLog.push(m.replace(/\s+/g, " "));
            if (level === "error" || level === "fatal" || level === "warn")
                console.error(`llama.cpp ${level}: ${m}`);
        },
    });
    const model = await llama.loadModel({ modelPath: cfg.model, gpuLayers: 0, useMmap: true });

    phase("model loaded");
    let tokens = model.tokenize(cfg.text, false);
    if (model.tokens.shouldPrependBosToken && model.tokens.bos != null) tokens = [model.tokens.bos, ...tokens];
    if (tokens.length < cfg.positions)
        throw new Error(`the text is ${tokens.length} tokens, fewer than the ${cfg.positions} positions asked for`);
    tokens = tokens.slice(0, cfg.positions);
    const n = tokens.length;

    // Room to spare: a sequence that fills its context makes node-llama-cpp
    // shift the context (drop its first tokens) before the last evaluation.
    const context = await model.createContext({
        contextSize: Math.max(n, cfg.genPrompt + cfg.genTokens) + 16, batchSize: cfg.batch, sequences: 1,
        threads: { ideal: cfg.threads, min: cfg.threads }, flashAttention: false,
        experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32",
    });
    const seq = context.getSequence();

    // Teacher forcing: every token of the text in one evaluation (batches of
    // cfg.batch), llama.cpp's topK most probable next tokens at every
    // position. The sampler chain is top-k alone (top-p 1 and min-p 0 are
    // off, temperature 1 leaves the logits as they are), so the
    // probabilities are the softmax of the raw logits over those tokens.
    // (The full distribution, with temperature 0, costs a sort and a
    // transfer of the whole vocabulary per position: minutes for 150k-token
    // vocabularies.)
    const teacherForce = async (seq) => {
        const top = new Array(n);
        await seq.controlledEvaluate(tokens.map((t) => [t, { generateNext: { probabilities: true,
            options: { temperature: 1, topK: cfg.topK, topP: 1, minP: 0, seed: 1 } } }]), {
            onTokenResult(i, result) {
                const p = result.next.probabilities;
                if (p == null || p.size !== cfg.topK)
                    throw new Error(`position ${i}: ${p == null ? "no" : p.size} probabilities, not the ${cfg.topK} asked for`);
                top[i] = [...p.entries()];
            },
        });
        if (top.some((x) => x == null)) throw new Error("llama.cpp left out some positions");
        const held = seq.contextTokens;
        if (held.length !== n || held.some((t, i) => t !== tokens[i]))
            throw new Error(`the sequence holds ${held.length} tokens after the evaluation, not the ${n} evaluated (a context shift?)`);
        return top;
    };
    const top = await teacherForce(seq);
    phase("teacher-forced");

    // llama.cpp against itself: the same teacher-forced evaluation again in
    // fresh contexts that differ from the first only in how the work is cut
    // (batch and micro-batch size, thread count): settings that change the
    // rounding of llama.cpp's arithmetic (which matrix kernel runs, in which
    // order it sums), never what it computes.
    const self = [];
    for (const v of cfg.self || []) {
        const ctx2 = await model.createContext({
            contextSize: n + 16, batchSize: v.batch, sequences: 1,
            threads: { ideal: v.threads, min: v.threads }, flashAttention: false,
            experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32",
        });
        const seq2 = ctx2.getSequence();
        const top2 = await teacherForce(seq2);
        self.push({ batch: ctx2.batchSize, threads: ctx2.currentThreads, top: top2 });
        await ctx2.dispose();
        phase(`self: batch ${v.batch}, ${v.threads} threads`);
    }

    // Greedy generation from the first genPrompt tokens: the generated tokens
    // and, at each step, llama.cpp's genTop most probable tokens.
    const gen = { tokens: [], top: [] };
    if (cfg.genTokens > 0) {
        await seq.clearHistory();
        const it = seq.evaluateWithMetadata(tokens.slice(0, cfg.genPrompt), { probabilities: true }, { temperature: 0, yieldEogToken: true });
        for await (const out of it) {
            gen.tokens.push(out.token);
            const top = [];
            for (const [tok, pr] of out.probabilities) {
                if (top.length === cfg.genTop) break;
                top.push([tok, pr]);
            }
            gen.top.push(top);
            if (gen.tokens.length >= cfg.genTokens || model.isEogToken(out.token)) break;
        }
        const held = seq.contextTokens;
        if (held.length !== cfg.genPrompt + gen.tokens.length - 1 || held.some((t, i) => t !== (i < cfg.genPrompt ? tokens[i] : gen.tokens[i - cfg.genPrompt])))
            throw new Error(`the sequence holds ${held.length} tokens after the generation, not the prompt and the generated tokens (a context shift?)`);
    }

    phase("generated");
    const res = {
        tokens, top, gen, self,
        settings: {
            flash_attention: context.flashAttention, context_size: context.contextSize, batch_size: context.batchSize,
            threads: context.currentThreads, cpu_math_cores: llama.cpuMathCores, log: settingsLog,
        },
    };
    console.log(JSON.stringify(res));
    await context.dispose();
    await model.dispose();
    await llama.dispose();
})().catch((err) => {
    console.error(String(err && err.stack ? err.stack : err));
    process.exit(1);
});
