// Tool calls and reasoning through the official OpenAI client.
// VERDICT_TOOLS_BASE_URL points at a gateway whose model (VERDICT_TOOLS_MODEL)
// has the Qwen3 chat template (tools, thinking) and answers, forced, with a
// <think> block and a <tool_call> for get_weather (e2e_test.go).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const baseURL = process.env.VERDICT_TOOLS_BASE_URL;
const model = process.env.VERDICT_TOOLS_MODEL ?? 'qwen3-tiny';
const skip = baseURL ? false : 'VERDICT_TOOLS_BASE_URL is not set';
const client = new OpenAI({ baseURL: baseURL ?? 'http://127.0.0.1:1/v1', apiKey: 'none', maxRetries: 0 });

const tools = [{
  type: 'function',
  function: {
    name: 'get_weather',
    parameters: { type: 'object', properties: { city: { type: 'string' } } },
  },
}];
const question = [{ role: 'user', content: 'Weather in Paris?' }];

test('a tool call comes back as tool_calls', { skip }, async () => {
  const r = await client.chat.completions.create({ model, messages: question, tools, tool_choice: 'auto', max_tokens: 200, temperature: 0 });
  const choice = r.choices[0];
  assert.equal(choice.finish_reason, 'tool_calls');
  assert.equal(choice.message.role, 'assistant');
  assert.equal(choice.message.tool_calls.length, 1);
  const call = choice.message.tool_calls[0];
  assert.equal(call.type, 'function');
  assert.match(call.id, /^call_/);
  assert.equal(call.function.name, 'get_weather');
  assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris' });
  assert.equal(choice.message.content, 'OK.');
  assert.equal(choice.message.reasoning_content, 'Weather.\n');
  assert.match(r.verdict.receipt_id, /^[0-9a-f]{64}$/);
});

test('streamed tool calls are deltas that add up', { skip }, async () => {
  const stream = await client.chat.completions.create({ model, messages: question, tools, max_tokens: 200, temperature: 0, stream: true });
  let content = '', reasoning = '', finish = null;
  const calls = [];
  for await (const chunk of stream) {
    const c = chunk.choices[0];
    if (!c) continue;
    content += c.delta.content ?? '';
    reasoning += c.delta.reasoning_content ?? '';
    for (const tc of c.delta.tool_calls ?? []) {
      const slot = (calls[tc.index] ??= { id: '', name: '', arguments: '' });
      slot.id += tc.id ?? '';
      slot.name += tc.function?.name ?? '';
      slot.arguments += tc.function?.arguments ?? '';
    }
    finish = c.finish_reason ?? finish;
  }
  assert.equal(finish, 'tool_calls');
  assert.equal(content.trim(), 'OK.');
  assert.equal(reasoning, 'Weather.\n');
  assert.equal(calls.length, 1);
  assert.equal(calls[0].name, 'get_weather');
  assert.deepEqual(JSON.parse(calls[0].arguments), { city: 'Paris' });
  // The client's stream helper assembles the same message from the deltas.
  const runner = client.chat.completions.stream({ model, messages: question, tools, max_tokens: 200, temperature: 0 });
  const final = await runner.finalChatCompletion();
  assert.equal(final.choices[0].finish_reason, 'tool_calls');
  assert.equal(final.choices[0].message.tool_calls[0].function.name, 'get_weather');
  assert.deepEqual(JSON.parse(final.choices[0].message.tool_calls[0].function.arguments), { city: 'Paris' });
});

test('tool results go back in as role tool', { skip }, async () => {
  const first = await client.chat.completions.create({ model, messages: question, tools, max_tokens: 200, temperature: 0 });
  const msg = first.choices[0].message;
  const messages = [...question, msg, { role: 'tool', tool_call_id: msg.tool_calls[0].id, content: '{"temperature": 21}' }];
  const second = await client.chat.completions.create({ model, messages, tools, max_tokens: 200, temperature: 0 });
  assert.equal(second.choices[0].finish_reason, 'tool_calls');
  assert.ok(second.usage.prompt_tokens > first.usage.prompt_tokens);
});

test('a template error is an HTTP 400', { skip }, async () => {
  await assert.rejects(
    client.chat.completions.create({ model, messages: [{ role: 'wizard', content: 'x' }], max_tokens: 5 }),
    (err) => err.status === 400 && /unsupported role/.test(err.message),
  );
  await assert.rejects(
    client.chat.completions.create({ model, messages: question, tools, tool_choice: 'required', max_tokens: 5 }),
    (err) => err.status === 400 && err.param === 'tool_choice',
  );
});
