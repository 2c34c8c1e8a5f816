// End-to-end test of `verdict devnet` with the official OpenAI client: a
// chat completion, a streamed one and a seeded sampled one each return a
// receipt id, and each receipt becomes final on the ledger after its
// challenge window. Run by cmd/verdict's TestDevnetE2E (node --test
// devnet.mjs) with VERDICT_BASE_URL, VERDICT_API_KEY and VERDICT_MODEL; it
// writes the receipt ids, one per line, to VERDICT_RECEIPTS_OUT.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import OpenAI from 'openai';

const baseURL = process.env.VERDICT_BASE_URL;
const apiKey = process.env.VERDICT_API_KEY;
const model = process.env.VERDICT_MODEL ?? 'verdict-tiny';
const out = process.env.VERDICT_RECEIPTS_OUT;
if (!baseURL || !apiKey) {
  throw new Error('VERDICT_BASE_URL and VERDICT_API_KEY must be set (verdict devnet prints both)');
}
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const origin = new URL(baseURL).origin;
const hex64 = /^[0-9a-f]{64}$/;

async function receipt(id) {
  const res = await fetch(`${origin}/v1/receipts/${id}`, { headers: { Authorization: `Bearer ${apiKey}` } });
  assert.equal(res.status, 200);
  return res.json();
}

// final waits until the ledger says the receipt is final.
async function final(id) {
  const seen = [];
  for (let i = 0; i < 900; i++) {
    const r = await receipt(id);
    if (seen.at(-1) !== r.status) seen.push(r.status);
    if (r.status === 'final') {
      if (out) appendFileSync(out, id + '\n');
      return r;
    }
    assert.ok(['pending', 'published', 'audited', 'challenged'].includes(r.status), `receipt ${id} is ${r.status}`);
    await new Promise((ok) => setTimeout(ok, 100));
  }
  throw new Error(`receipt ${id} not final in 90 s (statuses ${seen.join(' -> ')})`);
}

const messages = [{ role: 'user', content: 'Once upon a time' }];

test('chat completion: receipt id, final on the ledger', async () => {
  const { data, response } = await client.chat.completions
    .create({ model, messages, max_tokens: 20, temperature: 0 })
    .withResponse();
  const id = data.verdict.receipt_id;
  assert.match(id, hex64);
  assert.equal(response.headers.get('x-verdict-receipt'), id);
  const r = await final(id);
  assert.equal(r.receipt.model, data.verdict.model_id);
});

test('streamed chat completion: receipt id, final on the ledger', async () => {
  const stream = await client.chat.completions.create({
    model, messages: [{ role: 'user', content: 'The little dog' }], max_tokens: 20, temperature: 0,
    stream: true, stream_options: { include_usage: true },
  });
  let id = null;
  let text = '';
  for await (const chunk of stream) {
    if (chunk.verdict) id = chunk.verdict.receipt_id;
    for (const c of chunk.choices) text += c.delta.content ?? '';
  }
  assert.match(id, hex64);
  assert.ok(text.length > 0);
  await final(id);
});

test('seeded sampled completion: same seed, same text and receipt outputs', async () => {
  const req = { model, messages: [{ role: 'user', content: 'Lily' }], max_tokens: 30, temperature: 0.9, top_p: 0.95, seed: 4242 };
  const a = await client.chat.completions.create(req);
  const b = await client.chat.completions.create(req);
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
  const ra = await final(a.verdict.receipt_id);
  const rb = await receipt(b.verdict.receipt_id);
  assert.deepEqual(ra.receipt.output, rb.receipt.output);
});
