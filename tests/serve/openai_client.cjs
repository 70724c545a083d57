// Drives `moe-ref serve` with the official `openai` npm client (run by
// tests/serve/test_serve_openai.sh, which starts the server). Every check compares what the
// client returns with what docs/serve.md says the server computes: byte-level tokens
// (prompt_tokens = prompt bytes; chat: the template's bytes), exactly max_tokens tokens with
// ignore_eos, greedy decoding (streamed text = non-streamed text for the same request).
// Arguments: MODULE_ROOT (folder holding node_modules/openai) PORT MODEL_NAME
'use strict';
const path = require('path');
const { createRequire } = require('module');
const [modRoot, port, modelName] = process.argv.slice(2);
const req = createRequire(path.join(path.resolve(modRoot), 'package.json'));
const OpenAI = req('openai').default || req('openai');
const version = JSON.parse(require('fs').readFileSync(path.join(modRoot, 'node_modules', 'openai', 'package.json'), 'utf8')).version;

let failed = 0;
function check(cond, name, detail) {
  console.log((cond ? 'ok - ' : 'not ok - ') + name);
  if (!cond) { failed++; if (detail !== undefined) console.log('# ' + JSON.stringify(detail).slice(0, 1500)); }
}

async function main() {
  const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 60000 });
  console.log(`# openai npm client ${version}`);
  check(/^6\./.test(version), `client is openai 6.x (${version})`);

  const models = await client.models.list();
  const ids = [];
  for await (const m of models) ids.push(m.id);
  check(ids.length === 1 && ids[0] === modelName, 'models.list() lists the served model', ids);

  const prompt = 'hello world';
  const N = 7;
  const c = await client.completions.create({ model: modelName, prompt, max_tokens: N, ignore_eos: true });
  const text = c.choices[0].text;
  check(text.length === N && c.choices[0].finish_reason === 'length' && c.model === modelName &&
        c.usage.prompt_tokens === Buffer.byteLength(prompt) && c.usage.completion_tokens === N &&
        c.usage.total_tokens === Buffer.byteLength(prompt) + N,
        'completions.create: max_tokens tokens, usage = prompt bytes + max_tokens', c);

  const s = await client.completions.create({ model: modelName, prompt, max_tokens: N, ignore_eos: true,
                                              stream: true, stream_options: { include_usage: true } });
  let stext = '', chunks = 0, usage = null, finish = null;
  for await (const ch of s) {
    if (ch.usage) usage = ch.usage;
    for (const ci of ch.choices) {
      if (ci.text) { stext += ci.text; chunks++; }
      if (ci.finish_reason) finish = ci.finish_reason;
    }
  }
  check(stext === text && chunks === N && finish === 'length' && usage && usage.completion_tokens === N &&
        usage.prompt_tokens === Buffer.byteLength(prompt),
        'streamed completion with usage: same text as non-streamed, one chunk per token, usage chunk', { stext, text, chunks, usage });

  const msgs = [{ role: 'user', content: 'hi' }];
  const templ = Buffer.byteLength('<|user|>\nhi\n<|assistant|>\n');
  const chat = await client.chat.completions.create({ model: modelName, messages: msgs, max_completion_tokens: N, ignore_eos: true });
  const content = chat.choices[0].message.content;
  check(chat.choices[0].message.role === 'assistant' && content.length === N && chat.usage.prompt_tokens === templ &&
        chat.usage.completion_tokens === N && chat.object === 'chat.completion',
        'chat.completions.create: assistant message, usage = template bytes + max tokens', chat);

  const cs = await client.chat.completions.create({ model: modelName, messages: msgs, max_completion_tokens: N,
                                                    ignore_eos: true, stream: true, stream_options: { include_usage: true } });
  let ctext = '', role = null, cusage = null;
  for await (const ch of cs) {
    if (ch.usage) cusage = ch.usage;
    for (const ci of ch.choices) {
      if (ci.delta.role) role = ci.delta.role;
      if (ci.delta.content) ctext += ci.delta.content;
    }
  }
  check(ctext === content && role === 'assistant' && cusage && cusage.prompt_tokens === templ && cusage.completion_tokens === N,
        'streamed chat: role delta, same content as non-streamed, usage chunk', { ctext, content, role, cusage });

  try {
    await client.completions.create({ model: 'no-such-model', prompt, max_tokens: 1 });
    check(false, 'unknown model -> 404 NotFoundError', 'request succeeded');
  } catch (e) {
    check(e instanceof OpenAI.NotFoundError && e.status === 404 && /no-such-model/.test(e.message),
          'unknown model -> 404 NotFoundError', { name: e.constructor.name, status: e.status, message: e.message });
  }
  try {
    await client.chat.completions.create({ model: 'no-such-model', messages: msgs });
    check(false, 'unknown model on chat -> 404 NotFoundError', 'request succeeded');
  } catch (e) {
    check(e instanceof OpenAI.NotFoundError && e.status === 404, 'unknown model on chat -> 404 NotFoundError',
          { name: e.constructor.name, status: e.status });
  }
}

main().then(() => process.exit(failed ? 1 : 0), (e) => { console.log('not ok - client run: ' + e.stack); process.exit(1); });
