// A second implementation of the ledger's transaction format
// (docs/ledger.md, "Transaction format"), with nothing but Node's built-in
// modules. It reads {"vectors": [...], "build": {...}, "rpc"?: URL} on
// stdin, checks that it encodes and signs every vector byte for byte as the
// Go ledger does, builds and signs new transactions, submits them to a
// node when given its RPC address, and writes the results as JSON.
import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';

const DOMAIN = 'verdict/tx/v1\n';

// enc writes the canonical encoding of a value whose objects already hold
// their fields in the specified order.
function enc(v) {
  if (typeof v === 'string') {
    return JSON.stringify(v).replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
  }
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0) throw new Error(`not a safe unsigned integer: ${v}`);
    return String(v);
  }
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (Array.isArray(v)) return '[' + v.map(enc).join(',') + ']';
  return '{' + Object.entries(v).map(([k, x]) => JSON.stringify(k) + ':' + enc(x)).join(',') + '}';
}

function keyOf(seedHex) {
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), Buffer.from(seedHex, 'hex')]);
  const priv = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  const pub = createPublicKey(priv).export({ format: 'der', type: 'spki' }).subarray(12);
  return { priv, pub: Buffer.from(pub) };
}

// signTx fills signer and sig of a transaction object ({chainId, signer,
// nonce, fee, msg}) and returns its canonical encoding.
function signTx(tx, key) {
  tx.signer = key.pub.toString('hex');
  const { sig, ...unsigned } = tx;
  const s = sign(null, Buffer.from(DOMAIN + enc(unsigned), 'utf8'), key.priv);
  return enc({ ...unsigned, sig: s.toString('base64') });
}

const input = JSON.parse(await new Promise((resolve) => {
  let s = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d) => { s += d; });
  process.stdin.on('end', () => resolve(s));
}));

const out = { vectors: [], built: [], submitted: [] };
for (const v of input.vectors ?? []) {
  const tx = JSON.parse(v.tx);
  const reencoded = enc(tx);
  const { sig, ...unsigned } = tx;
  const key = keyOf(v.seed);
  const ok = verify(null, Buffer.from(DOMAIN + enc(unsigned), 'utf8'), createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), Buffer.from(tx.signer, 'hex')]), format: 'der', type: 'spki' }), Buffer.from(sig, 'base64'));
  const resigned = signTx({ ...unsigned }, key);
  out.vectors.push({ name: v.name, same: reencoded === v.tx, verified: ok, resigned: resigned === v.tx });
}

const b = input.build;
const key = keyOf(b.seed);
out.built.push(signTx({
  chainId: b.chainId, signer: '', nonce: b.nonce, fee: b.fee,
  msg: { register: { agentURI: b.agentURI, metadata: [{ metadataKey: b.metaKey, metadataValue: Buffer.from(b.metaValueHex, 'hex').toString('base64') }] } },
}, key));
out.built.push(signTx({
  chainId: b.chainId, signer: '', nonce: b.nonce + 1, fee: BigInt(b.fee),
  msg: { setAgentURI: { agentId: b.agentId, agentURI: b.agentURI2 } },
}, key));
out.built.push(signTx({
  chainId: b.chainId, signer: '', nonce: b.nonce + 2, fee: b.fee,
  msg: { send: { to: b.to, amount: 5n } },
}, key));
// With "rpc", submit the built transactions to a node (CometBFT's
// JSON-RPC broadcast_tx_commit) and report what it answered.
if (input.rpc) {
  for (const tx of out.built) {
    const res = await fetch(input.rpc, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'broadcast_tx_commit', params: { tx: Buffer.from(tx, 'utf8').toString('base64') } }),
    });
    const body = await res.json();
    const r = body.result ?? {};
    out.submitted.push({ error: body.error ? JSON.stringify(body.error) : '', check: r.check_tx?.code ?? -1, code: r.tx_result?.code ?? -1, log: (r.check_tx?.log || '') + (r.tx_result?.log || ''), height: r.height ?? '' });
  }
}
process.stdout.write(JSON.stringify(out));
