"""Verifies captured postbacks with the official Standard Webhooks Python library
(standardwebhooks), as a brand's Python receiver would.

Test only: run by pkg/dispatch/interop_test.go as `python3 verify.py cases.json`, with
PYTHONPATH set to the library's source: the python folder of the Go module
github.com/standard-webhooks/standard-webhooks/libraries (the same repository and tag
as the Go library the test uses, checksummed by pkg/go.sum; PyPI is not needed).

cases.json is a list of requests as the receiver got them: method, scheme, host (the
Host header), target (the request target as on the request line), body (base64),
headers, and the secrets to try. It prints one result per case and secret.
"""

import base64
import json
import sys

from standardwebhooks import Webhook

results = []
with open(sys.argv[1], encoding="utf-8") as f:
    cases = json.load(f)
for c in cases:
    # What a Postback signature covers: a GET's method and full URL (it has no body),
    # any other request's raw body bytes.
    if c["method"] == "GET":
        payload = "GET %s://%s%s" % (c["scheme"], c["host"], c["target"])
    else:
        payload = base64.b64decode(c["body"])
    for i, secret in enumerate(c["secrets"]):
        try:
            # json_parse=False, as the payload may be a form, a text or a URL.
            Webhook(secret).verify(payload, c["headers"], json_parse=False)
            results.append({"name": c["name"], "secret": i, "ok": True})
        except Exception as e:  # noqa: BLE001 - every failure is a result
            results.append({"name": c["name"], "secret": i, "ok": False, "error": repr(e)})
json.dump(results, sys.stdout)
