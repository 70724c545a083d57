#!/usr/bin/env node
// llama.cpp behind an OpenAI-compatible /v1/completions, through node-llama-cpp's own API
// (the npm prebuilt libllama, unmodified), so `moecap bench` can drive llama.cpp exactly as it
// drives `moe-ref serve` and `moecap report` can join the client's latencies to the steps the
// shim saw (docs/llama.md).
//
//   node engines/llama/serve.mjs --model MODEL.gguf [--port 8000] [--host 127.0.0.1]
//        [--sequences 4] [--context 2048] [--threads 1] [--llama-dir build/llama]
//
// Endpoints: POST /v1/completions (prompt: a string or [token ids]; max_tokens (16);
// stream; stream_options.include_usage; ignore_eos), GET /v1/models, GET /health.
// Decoding is greedy (temperature 0); other sampling fields are accepted and ignored. Up to
// --sequences requests run at once (node-llama-cpp evaluates them in shared batches: one
// llama_decode for the sequences that are ready); later ones wait for a free sequence.
// Exit: 2 on bad arguments, 1 when the model cannot be loaded. SIGTERM/SIGINT end it.
import http from "node:http";
import path from "node:path";
import url from "node:url";

const here = path.dirname(url.fileURLToPath(import.meta.url));
const opts = { port: 8000, host: "127.0.0.1", sequences: 4, context: 2048, threads: 1,
               "llama-dir": path.join(here, "..", "..", "build", "llama"), model: null };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "-h" || a === "--help") {
        console.log("usage: node engines/llama/serve.mjs --model MODEL.gguf [--port N] [--host ADDR] " +
                    "[--sequences N] [--context N] [--threads N] [--llama-dir DIR]");
        process.exit(0);
    }
    const k = a.replace(/^--/, "");
    if (!a.startsWith("--") || !(k in opts) || i + 1 >= argv.length) {
        console.error(`serve.mjs: unknown or incomplete option '${a}'`);
        process.exit(2);
    }
    opts[k] = typeof opts[k] === "number" ? Number(argv[++i]) : argv[++i];
    if (typeof opts[k] === "number" && !(Number.isInteger(opts[k]) && opts[k] > 0)) {
        console.error(`serve.mjs: ${a} needs a positive integer`);
        process.exit(2);
    }
}
if (!opts.model) { console.error("serve.mjs: --model MODEL.gguf is required"); process.exit(2); }

let nlc;
try {
    nlc = await import(path.join(path.resolve(opts["llama-dir"]), "node_modules", "node-llama-cpp", "dist", "index.js"));
} catch (e) {
    console.error(`serve.mjs: node-llama-cpp not found under ${opts["llama-dir"]} (run scripts/install-llama.sh): ${e.message}`);
    process.exit(1);
}
let model, context;
try {
    const llama = await nlc.getLlama({ gpu: false, build: "never", logLevel: "error", progressLogs: false });
    model = await llama.loadModel({ modelPath: opts.model });
    context = await model.createContext({ sequences: opts.sequences, contextSize: opts.context, threads: opts.threads });
} catch (e) {
    console.error(`serve.mjs: cannot load ${opts.model}: ${e.message}`);
    process.exit(1);
}
const modelId = path.basename(opts.model);

// free sequences, and requests waiting for one
const free = [];
for (let i = 0; i < opts.sequences; i++) free.push(context.getSequence());
const waiting = [];
function acquire() {
    if (free.length) return Promise.resolve(free.pop());
    return new Promise((resolve) => waiting.push(resolve));
}
async function release(seq) {
    await seq.clearHistory();
    const w = waiting.shift();
    if (w) w(seq); else free.push(seq);
}

function send(res, code, obj) {
    const body = JSON.stringify(obj);
    res.writeHead(code, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
    res.end(body);
}
function bad(res, code, msg) { send(res, code, { error: { message: msg, type: "invalid_request_error", code } }); }

async function completions(req, res, body) {
    let tokens;
    if (typeof body.prompt === "string") tokens = model.tokenize(body.prompt, false);
    else if (Array.isArray(body.prompt) && body.prompt.length && body.prompt.every((x) => Number.isInteger(x) && x >= 0))
        tokens = body.prompt;
    else return bad(res, 400, "prompt must be a non-empty string or an array of token ids");
    if (!tokens.length) return bad(res, 400, "the prompt has no tokens");
    const maxTokens = body.max_tokens ?? 16;
    if (!Number.isInteger(maxTokens) || maxTokens < 1) return bad(res, 400, "max_tokens must be a positive integer");
    if (tokens.length + maxTokens > opts.context) return bad(res, 400, "prompt + max_tokens exceed the context");
    const stream = body.stream === true;
    const usage = stream && body.stream_options && body.stream_options.include_usage === true;
    const ignoreEos = body.ignore_eos === true;
    const id = "cmpl-" + Math.random().toString(36).slice(2);
    const created = Math.floor(Date.now() / 1000);
    const chunk = (text, finish) => ({ id, object: "text_completion", created, model: modelId,
                                       choices: [{ index: 0, text, finish_reason: finish, logprobs: null }] });
    if (stream) res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" });
    const seq = await acquire();
    let n = 0, text = "", finish = "length";
    const eos = model.tokens.eos;
    let aborted = false;
    res.on("close", () => { if (!res.writableFinished) aborted = true; });
    try {
        for await (const t of seq.evaluate(tokens, { temperature: 0 })) {
            n++;
            const isEos = !ignoreEos && eos !== null && t === eos;
            const piece = isEos ? "" : model.detokenize([t]);
            if (!isEos) text += piece;
            if (stream && !isEos) res.write(`data: ${JSON.stringify(chunk(piece, null))}\n\n`);
            if (isEos) { finish = "stop"; break; }
            if (n >= maxTokens || aborted) break;
        }
    } catch (e) {
        await release(seq);
        if (stream) { res.write(`data: ${JSON.stringify({ error: { message: e.message } })}\n\n`); res.end(); return; }
        return send(res, 500, { error: { message: e.message, type: "server_error", code: 500 } });
    }
    await release(seq);
    const u = { prompt_tokens: tokens.length, completion_tokens: n, total_tokens: tokens.length + n };
    if (!stream) return send(res, 200, { ...chunk(text, finish), usage: u });
    res.write(`data: ${JSON.stringify(chunk("", finish))}\n\n`);
    if (usage) res.write(`data: ${JSON.stringify({ id, object: "text_completion", created, model: modelId, choices: [], usage: u })}\n\n`);
    res.write("data: [DONE]\n\n");
    res.end();
}

const server = http.createServer((req, res) => {
    const p = req.url.split("?")[0];
    if (req.method === "GET" && (p === "/health")) return send(res, 200, { status: "ok" });
    if (req.method === "GET" && p === "/v1/models")
        return send(res, 200, { object: "list", data: [{ id: modelId, object: "model", owned_by: "llama.cpp", max_model_len: opts.context }] });
    if (p !== "/v1/completions") return bad(res, 404, `unknown path ${p}`);
    if (req.method !== "POST") return bad(res, 405, "POST only");
    let raw = "";
    req.on("data", (d) => { raw += d; if (raw.length > (1 << 24)) req.destroy(); });
    req.on("end", () => {
        let body;
        try { body = JSON.parse(raw); } catch { return bad(res, 400, "invalid JSON"); }
        if (body === null || typeof body !== "object") return bad(res, 400, "the body must be a JSON object");
        completions(req, res, body).catch((e) => { try { bad(res, 500, e.message); } catch { /* closed */ } });
    });
});
server.listen(opts.port, opts.host, () => console.error(`serve.mjs: llama.cpp (${modelId}) on http://${opts.host}:${opts.port}/v1`));
const stop = () => { server.close(); process.exit(0); };
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
