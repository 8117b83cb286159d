// Verifies captured postbacks with the official Standard Webhooks library from npm
// (standardwebhooks, pinned in package-lock.json), as a brand's Node receiver would.
// Test only: run by pkg/dispatch/interop_test.go as `node verify.js cases.json`, with
// the package installed next to a copy of this file by `npm ci`.
//
// cases.json is a list of requests as the receiver got them: method, scheme, host (the
// Host header), target (the request target as on the request line), body (base64),
// headers, and the secrets to try. It prints one result per case and secret.
'use strict';

const fs = require('node:fs');
const { Webhook } = require('standardwebhooks');

const cases = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const results = [];
for (const c of cases) {
  // What a Postback signature covers: a GET's method and full URL (it has no body),
  // any other request's raw body bytes.
  const payload = c.method === 'GET'
    ? `GET ${c.scheme}://${c.host}${c.target}`
    : Buffer.from(c.body, 'base64');
  c.secrets.forEach((secret, i) => {
    try {
      // jsonParse: false, as the payload may be a form, a text or a URL.
      new Webhook(secret).verify(payload, c.headers, { jsonParse: false });
      results.push({ name: c.name, secret: i, ok: true });
    } catch (e) {
      results.push({ name: c.name, secret: i, ok: false, error: String((e && e.message) || e) });
    }
  });
}
process.stdout.write(JSON.stringify(results));
