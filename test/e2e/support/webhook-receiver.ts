// A real HTTP receiver on loopback for the webhook tests: records every request (headers, raw body,
// arrival time) and answers what the test says, per webhook-id (fail N times, always fail, sleep).
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";

export interface Received {
  headers: Record<string, string>;
  body: string;
  path: string;
  host: string;
  at: number;
}

export interface Receiver {
  url: string;
  port: number;
  received: Received[];
  /** Connections accepted so far (a delivery refused before connecting adds none). */
  connections(): number;
  /** What to answer a request: status code (and an optional delay), given how often this webhook-id came before. */
  respond: (webhookId: string, previousAttempts: number) => { status: number; delayMs?: number };
  /** Resolves once `predicate` holds for what was received (or rejects after timeoutMs). */
  waitFor(predicate: (received: Received[]) => boolean, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  const received: Received[] = [];
  const seen = new Map<string, number>();
  const sockets = new Set<Socket>();
  let connections = 0;
  const receiver: Receiver = {
    url: "",
    port: 0,
    received,
    connections: () => connections,
    respond: () => ({ status: 204 }),
    async waitFor(predicate, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      while (!predicate(received)) {
        if (Date.now() > deadline) throw new Error(`receiver: condition not met within ${timeoutMs} ms (${received.length} requests received)`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers[k] = v;
      const id = headers["webhook-id"] ?? "";
      const before = seen.get(id) ?? 0;
      seen.set(id, before + 1);
      received.push({ headers, body: Buffer.concat(chunks).toString("utf8"), path: req.url ?? "", host: headers.host ?? "", at: Date.now() });
      const answer = receiver.respond(id, before);
      const send = () => {
        res.statusCode = answer.status;
        res.end(answer.status >= 300 ? "no thanks" : "");
      };
      if (answer.delayMs) setTimeout(send, answer.delayMs).unref();
      else send();
    });
  });
  server.on("connection", (socket: Socket) => {
    connections++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  receiver.port = port;
  receiver.url = `http://127.0.0.1:${port}`;
  return receiver;
}
