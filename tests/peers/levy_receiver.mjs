// A Levy Fleets partner's webhook receiver, written from the seed's text ("Assinatura de Webhook"):
// it reads `X-Levy-Signature` and checks it with the seed's own `verifyWebhook`, unchanged in what
// it computes. voltbus's tests point an endpoint here to show a Levy partner's code runs as it is.
//
//     node levy_receiver.mjs SECRET
//
// Prints `{"listening": PORT}`, then one JSON line per delivery: whether it verified, and which
// signature headers came.

import crypto from "node:crypto";
import http from "node:http";

const secret = process.argv[2];

function verifyWebhook(payload, signature, secret) {
  const parts = signature.split(",");
  const timestamp = parts.find((p) => p.startsWith("t=")).substring(2);
  const expectedSig = parts.find((p) => p.startsWith("v1=")).substring(3);
  const age = Math.floor(Date.now() / 1000) - parseInt(timestamp);
  if (age > 300) return false;
  const signedPayload = `${timestamp}.${JSON.stringify(payload)}`;
  const computedSig = crypto.createHmac("sha256", secret).update(signedPayload).digest("hex");
  return computedSig === expectedSig;
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    const payload = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    const signature = req.headers["x-levy-signature"];
    const verified = typeof signature === "string" && verifyWebhook(payload, signature, secret);
    const line = {
      verified,
      levy_signature: typeof signature === "string",
      voltbus_signature: "x-voltbus-signature" in req.headers,
      event: payload.event ?? payload.type ?? null,
    };
    process.stdout.write(JSON.stringify(line) + "\n");
    res.writeHead(verified ? 200 : 401).end();
  });
});
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ listening: server.address().port }) + "\n");
});
