// End-to-end test of the Verdict gateway with the official OpenAI client.
// VERDICT_BASE_URL points at a running gateway's /v1 (e2e_test.go starts one
// and runs `node --test` here); VERDICT_MODEL names the served model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const baseURL = process.env.VERDICT_BASE_URL;
const model = process.env.VERDICT_MODEL ?? 'stories260K';
if (!baseURL) {
  throw new Error('VERDICT_BASE_URL is not set (e.g. http://127.0.0.1:8080/v1)');
}
const client = new OpenAI({ baseURL, apiKey: process.env.VERDICT_API_KEY ?? 'none', maxRetries: 0 });
const origin = new URL(baseURL).origin;

const messages = [{ role: 'user', content: 'Once upon a time' }];
const hex64 = /^[0-9a-f]{64}$/;

async function fetchReceipt(id) {
  const res = await fetch(`${origin}/v1/receipts/${id}`);
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.equal(body.id, id);
  assert.equal(body.status, 'published');
  return body.receipt;
}

test('chat completion carries a receipt', async () => {
  const { data, response } = await client.chat.completions
    .create({ model, messages, max_tokens: 24, temperature: 0 })
    .withResponse();
  assert.equal(data.object, 'chat.completion');
  assert.equal(data.choices.length, 1);
  assert.equal(data.choices[0].message.role, 'assistant');
  assert.ok(data.choices[0].message.content.length > 0);
  assert.equal(data.choices[0].finish_reason, 'length');
  assert.equal(data.usage.completion_tokens, 24);
  assert.match(data.system_fingerprint, /^fp_[0-9a-f]{16}$/);
  const id = data.verdict.receipt_id;
  assert.match(id, hex64);
  assert.equal(response.headers.get('x-verdict-receipt'), id);
  const receipt = await fetchReceipt(id);
  assert.equal(receipt.model, data.verdict.model_id);
  assert.equal(receipt.spec, data.verdict.spec);
  assert.match(receipt.signature, /^[0-9a-f]{128}$/);
});

test('streamed chat completion equals the plain one', async () => {
  const plain = await client.chat.completions.create({ model, messages, max_tokens: 24, temperature: 0 });
  const stream = await client.chat.completions.create({
    model, messages, max_tokens: 24, temperature: 0, stream: true, stream_options: { include_usage: true },
  });
  let text = '';
  let finish = null;
  let usage = null;
  let receiptId = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    if (chunk.verdict) receiptId = chunk.verdict.receipt_id;
    for (const c of chunk.choices) {
      text += c.delta.content ?? '';
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(text, plain.choices[0].message.content);
  assert.equal(finish, 'length');
  assert.equal(usage.completion_tokens, 24);
  // Same request, same deterministic output, but a receipt of its own
  // (every generation gets its own nonce and is billed on its own).
  assert.notEqual(receiptId, plain.verdict.receipt_id);
  const r1 = await fetchReceipt(receiptId);
  const r0 = await fetchReceipt(plain.verdict.receipt_id);
  assert.deepEqual(r1.output, r0.output);
  assert.notEqual(r1.nonce, r0.nonce);
});

test('a seeded sampled completion repeats exactly', async () => {
  const req = { model, messages: [{ role: 'user', content: 'Lily' }], max_tokens: 40, temperature: 0.9, top_p: 0.95, seed: 4242 };
  const a = await client.chat.completions.create(req);
  const b = await client.chat.completions.create(req);
  const c = await client.chat.completions.create({ ...req, seed: 4243 });
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
  assert.notEqual(a.verdict.receipt_id, b.verdict.receipt_id);
  assert.notEqual(a.choices[0].message.content, c.choices[0].message.content);
  const receipt = await fetchReceipt(a.verdict.receipt_id);
  assert.equal(receipt.seed, '4242');
});

test('legacy completions and models', async () => {
  const models = await client.models.list();
  const ids = [];
  for await (const m of models) ids.push(m.id);
  assert.ok(ids.includes(model), `models: ${ids}`);
  const r = await client.completions.create({ model, prompt: 'The little dog', max_tokens: 10, temperature: 0, logprobs: 2 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices[0].logprobs.tokens.join(''), r.choices[0].text);
  assert.match(r.verdict.receipt_id, hex64);
});

test('errors are OpenAI errors', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'no-such-model', messages }),
    (err) => err instanceof OpenAI.NotFoundError && err.code === 'model_not_found',
  );
  await assert.rejects(
    client.chat.completions.create({ model, messages, n: 2 }),
    (err) => err instanceof OpenAI.BadRequestError && err.param === 'n',
  );
  await assert.rejects(
    client.chat.completions.create({ model, messages: [{ role: 'user', content: 'dog '.repeat(400) }] }),
    (err) => err instanceof OpenAI.BadRequestError && err.code === 'context_length_exceeded',
  );
});

// metric reads one counter of the gateway's /metrics (null when the
// gateway serves none on its API address: `verdict gateway` serves them at
// --metrics).
async function metric(name) {
  const res = await fetch(`${origin}/metrics`);
  if (res.status === 404) return null;
  const text = await res.text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  assert.ok(line, `${name} in /metrics`);
  return Number(line.split(' ')[1]);
}

test("a conversation's next turn takes the first from the prefix cache", async (t) => {
  const first = [{ role: 'user', content: 'Tom had a red ball and a small blue kite' }];
  const a = await client.chat.completions.create({ model, messages: first, max_tokens: 16, temperature: 0 });
  const hits = await metric('verdict_worker_prefix_cache_hits_total');
  if (hits === null) {
    t.skip('no /metrics on the API address');
    return;
  }
  const tokens = await metric('verdict_worker_prefix_cache_tokens_total');
  const second = [...first, { role: 'assistant', content: a.choices[0].message.content }, { role: 'user', content: 'What did Tom do next?' }];
  const b = await client.chat.completions.create({ model, messages: second, max_tokens: 16, temperature: 0 });
  assert.equal(await metric('verdict_worker_prefix_cache_hits_total'), hits + 1);
  assert.ok(await metric('verdict_worker_prefix_cache_tokens_total') >= tokens + a.usage.prompt_tokens,
    'the second turn took at least the first turn\'s prompt from the cache');
  // OpenAI's usage field says so too.
  assert.ok(b.usage.prompt_tokens_details.cached_tokens >= a.usage.prompt_tokens, JSON.stringify(b.usage));
  assert.ok(b.usage.prompt_tokens_details.cached_tokens < b.usage.prompt_tokens);
  const receipt = await fetchReceipt(b.verdict.receipt_id);
  assert.equal(receipt.model, b.verdict.model_id);
});
