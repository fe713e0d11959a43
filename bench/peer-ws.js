// The Node.js peer: the same frames as natter for what the benchmarks use
// (auth with an HS256 token, sync with cursors, send -> ack + event to the
// room's followers), rooms and history kept in memory, nothing stored.
// Usage: node peer-ws.js PORT SECRET
const { WebSocketServer } = require("ws");
const { createHmac, timingSafeEqual } = require("node:crypto");
const [port, secret] = [Number(process.argv[2]), process.argv[3]];
const rooms = new Map(); // id -> { seq, events: [json], subs: Set<ws> }
const room = (id) => rooms.get(id) || rooms.set(id, { seq: 0, events: [], subs: new Set() }).get(id);

function verify(token) {
  const [h, c, s] = String(token).split(".");
  const sig = createHmac("sha256", secret).update(`${h}.${c}`).digest();
  const got = Buffer.from(s || "", "base64url");
  if (got.length !== sig.length || !timingSafeEqual(got, sig)) return null;
  const claims = JSON.parse(Buffer.from(c, "base64url"));
  return claims.exp * 1000 >= Date.now() ? claims.sub : null;
}

const wss = new WebSocketServer({ port, host: "127.0.0.1", backlog: 4096 });
wss.on("connection", (ws) => {
  ws.rooms = [];
  ws.on("close", () => ws.rooms.forEach((r) => r.subs.delete(ws)));
  ws.on("message", (data) => {
    const f = JSON.parse(data);
    if (!ws.user) {
      ws.user = f.type === "auth" && verify(f.token);
      if (!ws.user) return ws.close(4001, "token_invalid");
      return ws.send(JSON.stringify({ type: "hello", protocol: "natter.v1", user: ws.user }));
    }
    if (f.type === "sync") {
      for (const { room: id, seq } of f.cursors || []) {
        const r = room(id);
        r.subs.add(ws);
        ws.rooms.push(r);
        for (let from = seq; from < r.seq; from += 200) {
          const events = r.events.slice(from, from + 200);
          ws.send(`{"type":"page","room":${JSON.stringify(id)},"events":[${events.join(",")}],"more":${from + 200 < r.seq}}`);
        }
      }
      ws.send('{"type":"synced"}');
    } else if (f.type === "send") {
      const r = room(f.room);
      const seq = ++r.seq, ts = Date.now();
      const event = JSON.stringify({ room: f.room, seq, ts, sender: ws.user, kind: "message", body: f.body, client_id: f.client_id });
      r.events.push(event);
      ws.send(JSON.stringify({ type: "ack", client_id: f.client_id, room: f.room, seq, ts }));
      const frame = `{"type":"event","event":${event}}`;
      for (const s of r.subs) s.send(frame);
    } else if (f.type === "ping") {
      ws.send(JSON.stringify({ type: "pong", nonce: f.nonce }));
    }
  });
});
wss.on("listening", () => console.log("listening"));
