// A site's webhook endpoint for the tests: every request is checked with
// the Standard Webhooks reference library (npm `standardwebhooks`), not
// with Natter's code, and reported on stdout as one JSON line.
//
//   node receiver.mjs PORT   (0: any free port)
//
// stdin takes commands, one per line:
//   secret whsec_…   check signatures with this secret
//   fail             answer 500 from now on
//   ok               answer 204 from now on
//   delay MS         wait this long before answering
// The first stdout line is {"listening": PORT}.

import http from 'node:http';
import readline from 'node:readline';
import { Webhook } from 'standardwebhooks';

let verifier = null;
let failing = false;
let delay = 0;

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const [command, arg] = line.trim().split(/\s+/);
  if (command === 'secret') verifier = new Webhook(arg);
  if (command === 'fail') failing = true;
  if (command === 'ok') failing = false;
  if (command === 'delay') delay = Number(arg);
  console.log(JSON.stringify({ command }));
});

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    const id = req.headers['webhook-id'] ?? null;
    const answer = () => {
      if (verifier === null) {
        res.writeHead(503).end();
        return;
      }
      let payload;
      try {
        payload = verifier.verify(body, req.headers);
      } catch (err) {
        console.log(JSON.stringify({ verified: false, id, error: String(err) }));
        res.writeHead(400).end();
        return;
      }
      const status = failing ? 500 : 204;
      console.log(JSON.stringify({ verified: true, id, status, payload }));
      res.writeHead(status).end();
    };
    if (delay > 0) setTimeout(answer, delay);
    else answer();
  });
});

server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  console.log(JSON.stringify({ listening: server.address().port }));
});
