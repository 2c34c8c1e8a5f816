// Pays a Verdict gateway with the official x402 client (@x402/core), with a
// client scheme for Verdict's network: the payer signs an openEscrow
// transaction (docs/ledger.md, "Transaction format") with node's built-in
// ed25519. Env: URL, BODY, SEED (hex), NONCE (the payer's ledger nonce),
// CHAIN, SCHEME ("exact" or "upto": the only scheme the client registers,
// so the one it pays with).
import crypto from "node:crypto";
import { x402Client, x402HTTPClient } from "@x402/core/client";

const seed = Buffer.from(process.env.SEED, "hex");
const key = crypto.createPrivateKey({ key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]), format: "der", type: "pkcs8" });
const signer = crypto.createPublicKey(key).export({ format: "der", type: "spki" }).subarray(12).toString("hex");

// The canonical encoding of an openEscrow transaction: members in order,
// no whitespace, pricePerToken omitted when zero; every string here is hex
// or a plain chain id.
function encode(tx) {
  const m = tx.msg.openEscrow;
  const price = m.pricePerToken ? `,"pricePerToken":${m.pricePerToken}` : "";
  let s = `{"chainId":${JSON.stringify(tx.chainId)},"signer":"${tx.signer}","nonce":${tx.nonce},"fee":${tx.fee},` +
    `"msg":{"openEscrow":{"worker":"${m.worker}","modelId":"${m.modelId}","fee":${m.fee},"request":"${m.request}"${price}}}`;
  if (tx.sig !== undefined) s += `,"sig":"${tx.sig}"`;
  return s + "}";
}

// One client scheme for both: upto adds the quoted price per token to the
// escrow, which makes its fee (the amount) a maximum.
const verdictScheme = {
  scheme: process.env.SCHEME,
  async createPaymentPayload(x402Version, req) {
    const price = req.scheme === "upto" ? BigInt(req.extra.pricePerToken) : 0n;
    const tx = { chainId: req.extra.chainId, signer, nonce: BigInt(process.env.NONCE), fee: 1n,
      msg: { openEscrow: { worker: req.payTo, modelId: req.extra.modelId, fee: BigInt(req.amount), request: req.extra.requestHash, pricePerToken: price } } };
    const sig = crypto.sign(null, Buffer.concat([Buffer.from("verdict/tx/v1\n"), Buffer.from(encode(tx))]), key);
    tx.sig = sig.toString("base64");
    return { x402Version, payload: { transaction: Buffer.from(encode(tx)).toString("base64") } };
  },
};

const network = `cosmos:${process.env.CHAIN}`;
// The client only pays assets it is told to: Verdict's coin on this chain.
const client = x402Client.fromConfig({ schemes: [{ network, client: verdictScheme }],
  spendControls: { allowedAssets: [{ network, asset: "verdict", maxAmountPerPayment: "1000" }] } });
const http = new x402HTTPClient(client);
const post = (headers) => fetch(process.env.URL, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: process.env.BODY });
let res = await post({});
const quoteBody = await res.json();
if (res.status !== 402) throw new Error(`unpaid request: status ${res.status}`);
const required = http.getPaymentRequiredResponse((n) => res.headers.get(n), quoteBody);
const payload = await http.createPaymentPayload(required);
res = await post(http.encodePaymentSignatureHeader(payload));
const body = await res.json();
if (res.status !== 200) throw new Error(`paid request: status ${res.status}: ${JSON.stringify(body)}`);
const settle = http.getPaymentSettleResponse((n) => res.headers.get(n));
console.log(JSON.stringify({ required, settle, receiptId: body.verdict.receipt_id }));
