// The explorer in a real browser (headless Chromium driven by
// puppeteer-core), against two devnets: an honest one and one whose worker
// cheats. Called by TestBrowser as `node browser.cjs PUPPETEER INPUT`;
// INPUT is a JSON file (see the Go test). Prints one JSON object: the
// checks that failed (empty when all passed), the screenshots written and
// what was measured. CommonJS with require, no build step.
"use strict";
const fs = require("fs");
const path = require("path");

const puppeteer = require(process.argv[2]);
const input = JSON.parse(fs.readFileSync(process.argv[3], "utf8"));
const failures = [];
const shots = [];
const measured = {};
const fail = (msg) => failures.push(msg);
const check = (ok, msg) => { if (!ok) fail(msg); };

// ledger reads the node's JSON-RPC: an ABCI query's JSON answer.
async function ledger(rpc, p) {
  const r = await fetch(`${rpc}/abci_query?path=${encodeURIComponent(JSON.stringify(p))}`);
  const j = await r.json();
  const resp = j.result.response;
  if (resp.code) throw new Error(`query ${p}: code ${resp.code}: ${resp.log}`);
  return JSON.parse(Buffer.from(resp.value, "base64").toString("utf8"));
}

async function validators(rpc) {
  const j = await (await fetch(`${rpc}/validators`)).json();
  return j.result.validators.map((v) => ({ address: Buffer.from(v.pub_key.value, "base64").toString("hex"), power: Number(v.voting_power) }));
}

async function complete(net, prompt) {
  const r = await fetch(`${net.gateway}/v1/completions`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${net.apiKey}` },
    body: JSON.stringify({ model: net.model, prompt, max_tokens: 8, temperature: 0 }),
  });
  const j = await r.json();
  if (r.status !== 200) throw new Error(`completion: ${r.status} ${JSON.stringify(j)}`);
  return j.verdict.receipt_id;
}

// waitPublished polls the explorer until the receipt's page exists (the
// worker publishes from its outbox a block or two after answering).
async function waitPublished(net, id) {
  const until = Date.now() + 60000;
  for (;;) {
    const r = await fetch(`${net.explorer}receipt/${id}`);
    if (r.status === 200) return;
    if (Date.now() > until) throw new Error(`receipt ${id} never published (last ${r.status})`);
    await new Promise((res) => setTimeout(res, 150));
  }
}

async function shot(page, name) {
  const file = path.join(input.artifacts, name + ".png");
  await page.screenshot({ path: file, fullPage: true });
  shots.push(file);
}

const text = (page, sel) => page.$eval(sel, (e) => e.textContent.trim());
const status = (page) => page.$eval("#status [data-status]", (e) => e.dataset.status);

async function watchReceipt(page, net, id, want, name) {
  await page.goto(`${net.explorer}receipt/${id}`, { waitUntil: "load" });
  const first = await status(page);
  measured[name + "_first_status"] = first;
  await page.evaluate(() => { window.__stay = "same document"; });
  const t0 = Date.now();
  // The status is the ledger's; the timeline is the explorer's index,
  // which reads each block once it is committed and may trail by one.
  await page.waitForFunction((w) => {
    const s = document.querySelector("#status [data-status]");
    const steps = document.querySelectorAll("#timeline li[data-status]");
    return s && s.dataset.status === w && steps.length > 0 && steps[steps.length - 1].dataset.status === w;
  }, { timeout: 90000, polling: 100 }, want);
  measured[name + "_seconds_to_" + want] = (Date.now() - t0) / 1000;
  check(await page.evaluate(() => window.__stay) === "same document", `${name}: the page reloaded instead of updating live`);
  check(await page.evaluate(() => window.explorerRefreshes) > 0, `${name}: no live refresh counted`);
  const rec = await ledger(net.rpc, `receipt/${id}`);
  check(rec.status === want, `${name}: the page says ${want}, the ledger ${rec.status}`);
  const steps = await page.$$eval("#timeline li[data-status]", (ls) => ls.map((l) => l.dataset.status));
  check(steps[0] === "published" && steps[steps.length - 1] === want, `${name}: timeline ${steps.join(" → ")} does not run from published to ${want}`);
  measured[name + "_timeline"] = steps.join(" → ");
  return first;
}

async function main() {
  const browser = await puppeteer.launch({
    executablePath: input.chromium, headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  try {
    const page = await browser.newPage();
    page.on("dialog", async (d) => { fail(`a dialog opened: ${d.message()}`); await d.dismiss(); });
    page.on("pageerror", (e) => fail(`page error: ${e.message}`));
    page.on("console", (m) => { if (m.type() === "error" && !/404|Failed to load resource/.test(m.text())) fail(`console error: ${m.text()}`); });
    await page.setViewport({ width: 1100, height: 900 });
    const honest = input.honest, cheat = input.cheat;

    // A receipt goes published → final while its page is open.
    const prompt = "Once upon a time " + input.hostile;
    const id = await complete(honest, prompt);
    await waitPublished(honest, id);
    const first = await watchReceipt(page, honest, id, "final", "honest");
    check(first === "published" || first === "audited", `honest: first status ${first}`);
    check((await text(page, "#prompt")).includes(input.hostile), "honest: the prompt's markup is not shown as text");
    check(await page.$eval("#verify-cmd", (e) => e.textContent.startsWith(`verdict verify receipt-`)), "honest: no verify command");
    const dl = await page.$eval("#download", (a) => a.href);
    const body = await (await fetch(dl)).text();
    check(body.includes(`"prompt"`) && body.length > 100, "honest: the receipt download is not the receipt");
    await shot(page, "receipt-final");

    // The overview against the ledger.
    await page.goto(honest.explorer, { waitUntil: "load" });
    const h0 = (await ledger(honest.rpc, "chain")).height;
    await page.waitForFunction((h) => Number(document.getElementById("height").textContent) >= h, { timeout: 10000 }, h0);
    const shown = Number(await text(page, "#height"));
    const h1 = (await ledger(honest.rpc, "chain")).height;
    check(shown >= h0 && shown <= h1, `overview: height ${shown} outside the ledger's ${h0}..${h1}`);
    const vals = await validators(honest.rpc);
    check(Number(await text(page, "#validators-count")) === vals.length, "overview: validator count differs from the ledger's");
    check(Number(await text(page, "#total-power")) === vals.reduce((s, v) => s + v.power, 0), "overview: total power differs from the ledger's");
    check(await page.$(`#recent tr[data-receipt="${id}"]`) !== null, "overview: the receipt is not among the latest");
    check(await page.$("#rate-chart rect.bar") !== null, "overview: no receipts-per-second bars");
    measured.overview_height = shown;
    await shot(page, "overview");

    // Models: the attestation share from the model record and the validators.
    await page.goto(honest.explorer + "models", { waitUntil: "load" });
    const m = await ledger(honest.rpc, `model/${honest.modelId}`);
    const power = Object.fromEntries(vals.map((v) => [v.address, v.power]));
    const total = vals.reduce((s, v) => s + v.power, 0);
    const att = m.attesters.reduce((s, a) => s + (power[a] || 0), 0);
    const share = (Math.round((att * 1000) / total) / 10).toFixed(1) + "%";
    const shownShare = await text(page, `tr[data-model="${honest.modelId}"] [data-field="share"]`);
    check(shownShare.startsWith(share), `models: share ${shownShare}, the ledger says ${share}`);
    check((await text(page, `tr[data-model="${honest.hostileModel}"] [data-field="name"]`)) === input.hostile, "models: the hostile model name is not shown as text");
    await shot(page, "models");

    // Workers: the stake from the ledger, the hostile agent URI as text.
    await page.goto(honest.explorer + "workers", { waitUntil: "load" });
    const st = await ledger(honest.rpc, `stake/${honest.worker}`);
    check(Number(await text(page, `tr[data-address="${honest.worker}"] [data-field="bonded"]`)) === st.bonded, "workers: bonded stake differs from the ledger's");
    check(Number(await text(page, `tr[data-address="${honest.worker}"] [data-field="receipts"]`)) >= 1, "workers: no receipt served");
    check((await text(page, `tr[data-address="${honest.user}"] [data-field="agent-uri"]`)) === input.hostileURI, "workers: the hostile agent URI is not shown as text");
    check((await text(page, `tr[data-address="${honest.user}"] [data-field="agent-name"]`)) === input.hostile, "workers: the hostile agent name is not shown as text");
    check(await page.$('a[href^="javascript:"]') === null, "workers: a javascript: link");
    await shot(page, "workers");

    // The account of the user, against the ledger.
    await page.goto(`${honest.explorer}account/${honest.user}`, { waitUntil: "load" });
    const acct = await ledger(honest.rpc, `account/${honest.user}`);
    check(Number(await text(page, "#balance")) === acct.balance, `account: balance ${await text(page, "#balance")}, the ledger says ${acct.balance}`);
    check(Number(await text(page, "#nonce")) === acct.nonce, "account: nonce differs from the ledger's");

    // Bad input: unknown and malformed ids are 404 pages.
    for (const p of [`receipt/${"0".repeat(64)}`, `account/${"e".repeat(64)}`, "receipt/%3Cscript%3Ewindow.__pwned=1%3C%2Fscript%3E", "account/nothex"]) {
      const r = await page.goto(honest.explorer + p, { waitUntil: "load" });
      check(r.status() === 404, `${p}: status ${r.status()}, want 404`);
      check((await text(page, "h1")) === "Not found", `${p}: no "Not found" page`);
    }
    await shot(page, "not-found");

    // Phone width: the pages fit without sideways scrolling.
    await page.setViewport({ width: 390, height: 844, isMobile: true, deviceScaleFactor: 1 });
    for (const p of ["", "models", "workers", `receipt/${id}`, `account/${honest.user}`]) {
      await page.goto(honest.explorer + p, { waitUntil: "load" });
      const [sw, iw] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
      check(sw <= iw + 1, `phone width: /${p} is ${sw}px wide in a ${iw}px screen`);
      if (p.startsWith("receipt/")) await shot(page, "receipt-phone");
    }
    await page.setViewport({ width: 1100, height: 900 });

    // A cheating worker's receipt goes to slashed, its dispute drawn.
    const cid = await complete(cheat, "Once upon a time");
    await waitPublished(cheat, cid);
    await watchReceipt(page, cheat, cid, "slashed", "cheat");
    const rec = await ledger(cheat.rpc, `receipt/${cid}`);
    const d = await ledger(cheat.rpc, `dispute/${rec.disputeId}`);
    check(d.status === "worker_lost", `cheat: dispute ${d.status}`);
    await page.waitForFunction((n) => document.querySelectorAll("svg.rounds g.round").length > 0, { timeout: 20000 });
    const game = JSON.parse(Buffer.from(d.game, "base64").toString("utf8"));
    const rounds = new Set();
    const ranges = [];
    for (const e of game.entries) {
      if (!e.msg) continue;
      const msg = JSON.parse(Buffer.from(e.msg, "base64").toString("utf8"));
      if (!rounds.has(msg.round)) ranges.push([msg.start, msg.end]);
      rounds.add(msg.round);
    }
    const drawn = await page.$$eval(".rounds-list li", (ls) => ls.map((l) => [Number(l.dataset.start), Number(l.dataset.end)]));
    check(JSON.stringify(drawn) === JSON.stringify(ranges), `cheat: rounds drawn ${JSON.stringify(drawn)}, the ledger's transcript has ${JSON.stringify(ranges)}`);
    for (let i = 1; i < drawn.length; i++) {
      check(drawn[i][0] >= drawn[i - 1][0] && drawn[i][1] <= drawn[i - 1][1] && drawn[i][1] - drawn[i][0] < drawn[i - 1][1] - drawn[i - 1][0], `cheat: round ${i + 1} does not narrow`);
    }
    check(await page.$eval(`[data-dispute="${rec.disputeId}"] [data-status]`, (e) => e.dataset.status) === "worker_lost", "cheat: the dispute's status is not shown");
    measured.cheat_rounds = drawn.length;
    await shot(page, "receipt-slashed");

    await page.goto(cheat.explorer + "workers", { waitUntil: "load" });
    check((await text(page, `tr[data-address="${cheat.worker}"] [data-field="state"]`)).includes("jailed"), "cheat: the worker is not shown jailed");
    check((await text(page, `tr[data-address="${cheat.worker}"] [data-field="disputes"]`)).includes("1 lost"), "cheat: the lost dispute is not counted");
    await shot(page, "workers-jailed");

    // The README's picture (docs/explorer.png): the cheating devnet's
    // overview, one screen at a modest width.
    await page.setViewport({ width: 900, height: 720 });
    await page.goto(cheat.explorer, { waitUntil: "load" });
    const readme = path.join(input.artifacts, "readme-overview.png");
    await page.screenshot({ path: readme });
    shots.push(readme);
    await page.setViewport({ width: 1100, height: 900 });

    // No injected script ran anywhere.
    for (const net of [honest, cheat]) {
      await page.goto(net.explorer, { waitUntil: "load" });
      check(await page.evaluate(() => window.__pwned) === undefined, "an injected script ran");
    }
  } finally {
    await browser.close();
  }
}

main().then(
  () => { process.stdout.write(JSON.stringify({ failures, shots, measured })); },
  (e) => { failures.push("script: " + (e && e.stack || e)); process.stdout.write(JSON.stringify({ failures, shots, measured })); },
);
