#!/usr/bin/env node
// llama.cpp reference harness for arkor's GGUF tests.
//
// Runs llama.cpp (the prebuilt CPU binaries shipped by npm `node-llama-cpp`, pinned in
// package.json) as an independent runtime, so that arkor's GGUF import/export can be checked
// against something other than itself. Every subcommand prints exactly ONE JSON object on
// stdout; errors go to stderr with a non-zero exit status.
//
//   node run.mjs info     --model F.gguf
//       -> {"vocab_size", "bos", "eos", "eot", "eog_ids": [...], "add_bos": bool}
//   node run.mjs tokenize --model F.gguf --text-file T.json      (T.json: JSON array of strings)
//       -> {"ids": [[...], ...]}   model.tokenize(text, true): special tokens parsed, no BOS added
//   node run.mjs greedy   --model F.gguf [--lora A.gguf] --prompt-ids IDS --max-tokens N [--threads 1]
//       -> {"ids": [...], "stopped": "eog"|"length"}
//          temperature 0, no penalties; the prompt ids are fed verbatim (no BOS, no chat template).
//          When generation stops on an end-of-generation token, that token is the last id.
//   node run.mjs logits   --model F.gguf [--lora A.gguf] --prompt-ids IDS [--threads 1]
//       -> {"logprobs": [...vocab floats, null where exp underflowed...], "argmax": id}
//          node-llama-cpp does not expose raw logits; with temperature 0 the sampler chain is
//          greedy-only, so it returns softmax over the full vocab. logprobs = log(p) =
//          logits - logsumexp(logits) (f32; compare after subtracting each side's logsumexp).
//
//   node run.mjs speed    --model F.gguf --prompt-ids IDS --max-tokens N [--threads 1]
//       -> {"prompt_tokens", "new_tokens", "prefill_tok_s", "decode_tok_s"}
//          greedy like `greedy`, but never stops early (end-of-generation tokens are generated
//          through); prefill = time to the first new token, decode = the tokens after it.
//
// IDS is a JSON array ("[1,2,3]") or a path to a file holding one. Setup: `npm ci` in this folder.
import { getLlama, LlamaLogLevel } from "node-llama-cpp";
import { readFileSync, existsSync } from "node:fs";

function fail(msg) {
    process.stderr.write(`run.mjs: ${msg}\n`);
    process.exit(2);
}

function parseArgs(argv) {
    const [cmd, ...rest] = argv;
    const opts = {};
    for (let i = 0; i < rest.length; i++) {
        const a = rest[i];
        if (!a.startsWith("--")) fail(`unexpected argument ${JSON.stringify(a)}`);
        const v = rest[i + 1];
        if (v === undefined) fail(`missing value for ${a}`);
        opts[a.slice(2)] = v;
        i++;
    }
    return { cmd, opts };
}

function need(opts, key) {
    if (opts[key] === undefined) fail(`missing --${key}`);
    return opts[key];
}

function readIds(spec) {
    const text = spec.trim().startsWith("[") ? spec : readFileSync(spec, "utf8");
    const ids = JSON.parse(text);
    if (!Array.isArray(ids) || ids.length === 0 || !ids.every((x) => Number.isInteger(x) && x >= 0))
        fail("--prompt-ids must be a non-empty JSON array of token ids");
    return ids;
}

async function loadModel(opts) {
    const modelPath = need(opts, "model");
    if (!existsSync(modelPath)) fail(`no such model file: ${modelPath}`);
    const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
    return llama.loadModel({ modelPath, gpuLayers: 0 });
}

async function makeSequence(model, opts, nCtx) {
    // One thread by default: ggml's worker threads spin on barriers, which on a small, busy
    // machine turns a sub-second run into minutes. Override with --threads N.
    const threads = Number(opts.threads ?? 1);
    if (!Number.isInteger(threads) || threads < 1) fail("--threads must be a positive integer");
    const contextOpts = { contextSize: Math.max(256, nCtx), sequences: 1, threads };
    if (opts.lora !== undefined) {
        if (!existsSync(opts.lora)) fail(`no such LoRA file: ${opts.lora}`);
        contextOpts.lora = { adapters: [{ filePath: opts.lora, scale: 1 }] };
    }
    const context = await model.createContext(contextOpts);
    return context.getSequence();
}

// The prompt, token budget (at least `least`), model and sequence of `greedy` and `speed`.
async function generation(opts, least) {
    const prompt = readIds(need(opts, "prompt-ids"));
    const maxTokens = Number(need(opts, "max-tokens"));
    if (!Number.isInteger(maxTokens) || maxTokens < least) fail(`--max-tokens must be an integer >= ${least}`);
    const model = await loadModel(opts);
    const seq = await makeSequence(model, opts, prompt.length + maxTokens + 8);
    return { prompt, maxTokens, model, seq };
}

async function main() {
    const { cmd, opts } = parseArgs(process.argv.slice(2));
    let out;
    switch (cmd) {
        case "info": {
            const model = await loadModel(opts);
            const vocab = model.fileInfo.metadata.tokenizer.ggml.tokens.length;
            const eog = [];
            for (let t = 0; t < vocab; t++) if (model.isEogToken(t)) eog.push(t);
            out = {
                vocab_size: vocab,
                bos: model.tokens.bos, eos: model.tokens.eos, eot: model.tokens.eot,
                eog_ids: eog,
                add_bos: model.tokens.shouldPrependBosToken,
            };
            break;
        }
        case "tokenize": {
            const texts = JSON.parse(readFileSync(need(opts, "text-file"), "utf8"));
            if (!Array.isArray(texts) || !texts.every((s) => typeof s === "string"))
                fail("--text-file must hold a JSON array of strings");
            const model = await loadModel(opts);
            out = { ids: texts.map((s) => Array.from(model.tokenize(s, true))) };
            break;
        }
        case "greedy": {
            const { prompt, maxTokens, model, seq } = await generation(opts, 1);
            const ids = [];
            let stopped = "length";
            for await (const t of seq.evaluate(prompt, { temperature: 0, yieldEogToken: true })) {
                ids.push(t);
                if (model.isEogToken(t)) { stopped = "eog"; break; }
                if (ids.length >= maxTokens) break;
            }
            out = { ids, stopped };
            break;
        }
        case "speed": {
            const { prompt, maxTokens, seq } = await generation(opts, 2);
            let n = 0, first = 0;
            const start = performance.now();
            for await (const _ of seq.evaluate(prompt, { temperature: 0, yieldEogToken: true })) {
                n++;
                if (n === 1) first = performance.now();
                if (n >= maxTokens) break;
            }
            const end = performance.now();
            out = {
                prompt_tokens: prompt.length, new_tokens: n,
                prefill_tok_s: prompt.length / ((first - start) / 1000),
                decode_tok_s: (n - 1) / ((end - first) / 1000),
            };
            break;
        }
        case "logits": {
            const prompt = readIds(need(opts, "prompt-ids"));
            const model = await loadModel(opts);
            const seq = await makeSequence(model, opts, prompt.length + 8);
            const items = prompt.map((t, i) => (i === prompt.length - 1
                ? [t, { generateNext: { token: true, probabilities: true, options: { temperature: 0 } } }]
                : t));
            const res = await seq.controlledEvaluate(items);
            const next = res[prompt.length - 1]?.next;
            if (next?.probabilities == null) fail("llama.cpp returned no probabilities");
            const vocab = model.fileInfo.metadata.tokenizer.ggml.tokens.length;
            const logprobs = new Array(vocab).fill(null);
            for (const [tok, p] of next.probabilities) logprobs[tok] = p > 0 ? Math.log(p) : null;
            out = { argmax: next.token, logprobs };
            break;
        }
        default:
            fail(`unknown subcommand ${JSON.stringify(cmd)} (info | tokenize | greedy | speed | logits)`);
    }
    // Exit only after stdout is flushed (pipes are async in node; large outputs would be cut).
    process.stdout.write(JSON.stringify(out) + "\n", () => process.exit(0));
}

main().catch((e) => fail(e?.stack ?? String(e)));
