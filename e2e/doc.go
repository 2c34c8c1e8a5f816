// Package e2e holds the end-to-end tests: a gateway on a loopback port,
// driven by the official OpenAI npm client (openai.test.mjs, run with
// `node --test`). Install the client with `npm ci` in this directory.
package e2e
