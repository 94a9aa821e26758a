// Which lane a plaintext HTTP/2 connection belongs to, from its first request: gRPC
// (content-type application/grpc, not grpc-web) goes to the grpc-js lane, everything else (Connect,
// gRPC-Web, plain GETs) to connect-node. The opening bytes are kept and replayed to the chosen
// server, which then sees the connection as if it had been its own from the start.
//
// Most clients send their first request right behind the preface, and are handed over as soon as
// its header block is complete. Some (grpc-go, grpcio) send nothing but the preface until they
// have the server's SETTINGS; for them the listener sends an empty SETTINGS frame (every setting
// at its default) when no request follows the preface at once (SETTINGS_AFTER_MS). The chosen
// server sends its real SETTINGS later, which the client applies on top, as HTTP/2 allows at any
// time. The client acknowledges the empty SETTINGS with a SETTINGS ACK; the chosen server never
// sent it, and to nghttp2 an ACK with nothing outstanding is a connection error, so that first
// ACK is cut out of the replayed bytes, and such a connection is handed over once both the first
// header block and that ACK are in (one round trip, which those clients spend waiting anyway).
// The header block is decoded with hpack.js (a fresh decoder: the first block of a connection
// refers to no dynamic table entry but its own).
import hpack from "hpack.js";

export const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** SETTINGS with no parameters, no flags, stream 0. */
export const EMPTY_SETTINGS = Buffer.from([0, 0, 0, 0x04, 0, 0, 0, 0, 0]);

/** More than any real opening (SETTINGS, WINDOW_UPDATE, a header block, a first DATA frame) needs. */
const MAX_OPENING_BYTES = 256 * 1024;
/** How long after the preface the listener waits for a request before sending SETTINGS itself. */
export const SETTINGS_AFTER_MS = 5;
/** HPACK's default dynamic table size, which neither server changes. */
const HEADER_TABLE_SIZE = 4096;

const HEADERS = 0x1;
const SETTINGS = 0x4;
const CONTINUATION = 0x9;
const FLAG_ACK = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;

export type Lane = "grpc" | "connect";

/** Picks the lane of a connection from the headers of its first request. */
export type ChooseLane = (header: (name: string) => string | undefined) => Lane;

/**
 * gRPC to a path the gRPC lane serves goes there; everything else (Connect, gRPC-Web, a gRPC call
 * of a method no service has, which connect-node answers with an ErrorDetail and a near-miss hint)
 * stays on the Connect lane.
 */
export function grpcTo(paths: ReadonlySet<string>): ChooseLane {
  return (header) => {
    const contentType = header("content-type");
    return contentType !== undefined && isGrpc(contentType) && paths.has(header(":path") ?? "") ? "grpc" : "connect";
  };
}

/**
 * Reads the opening of one connection, chunk by chunk (the preface included). `push` returns the
 * decision and the bytes to replay once it can be made; undefined while it needs more.
 */
export class Opening {
  private bytes: Buffer = Buffer.alloc(0);
  /** Where the next unparsed frame starts. */
  private at = H2_PREFACE.length;
  private ack: { start: number; end: number } | undefined;
  private block: Buffer[] = [];
  private blockStream = -1;
  private blockDone = false;
  /** The listener sent its own SETTINGS: the client's first ACK is for them. */
  private settingsSent = false;

  constructor(private readonly choose: ChooseLane) {}

  push(chunk: Buffer): { lane: Lane; replay: Buffer } | undefined {
    this.bytes = this.bytes.length === 0 ? chunk : Buffer.concat([this.bytes, chunk]);
    this.parse();
    if (this.blockDone && (!this.settingsSent || this.ack)) return { lane: this.laneOfBlock(), replay: this.withoutAck() };
    // A client that sends this much without completing both is not one this lane serves; the
    // Connect lane's server answers whatever it is (or refuses it as HTTP/2 says).
    if (this.bytes.length > MAX_OPENING_BYTES) return { lane: "connect", replay: this.withoutAck() };
    return undefined;
  }

  /** True when the client has not begun a request: it may be waiting for the server's SETTINGS. Marks them sent. */
  sendSettings(): boolean {
    if (this.settingsSent || this.blockStream !== -1) return false;
    this.settingsSent = true;
    return true;
  }

  /** The client's HTTP/2 opening so far has been well formed (preface, then frames). */
  get spoke(): boolean {
    return this.at > H2_PREFACE.length;
  }

  private parse(): void {
    const b = this.bytes;
    while (this.at + 9 <= b.length) {
      const length = b.readUIntBE(this.at, 3);
      const type = b[this.at + 3] ?? 0;
      const flags = b[this.at + 4] ?? 0;
      const stream = b.readUInt32BE(this.at + 5) & 0x7fffffff;
      const start = this.at;
      const end = start + 9 + length;
      if (end > b.length) return;
      const payload = b.subarray(start + 9, end);
      if (type === SETTINGS && (flags & FLAG_ACK) !== 0 && this.ack === undefined && this.settingsSent) {
        this.ack = { start, end };
      } else if (type === HEADERS && this.blockStream === -1) {
        this.blockStream = stream;
        this.block.push(headerFragment(payload, flags));
        this.blockDone = (flags & FLAG_END_HEADERS) !== 0;
      } else if (type === CONTINUATION && stream === this.blockStream && !this.blockDone) {
        this.block.push(payload);
        this.blockDone = (flags & FLAG_END_HEADERS) !== 0;
      }
      this.at = end;
    }
  }

  private withoutAck(): Buffer {
    if (!this.ack) return this.bytes;
    return Buffer.concat([this.bytes.subarray(0, this.ack.start), this.bytes.subarray(this.ack.end)]);
  }

  private laneOfBlock(): Lane {
    const fields = decodeBlock(Buffer.concat(this.block));
    if (fields === undefined) return "connect";
    return this.choose((name) => fields.get(name));
  }
}

/** application/grpc, application/grpc+proto, application/grpc;charset=…; never application/grpc-web. */
export function isGrpc(contentType: string): boolean {
  return /^application\/grpc(?:[+;]|$)/i.test(contentType.trim());
}

/** The header block fragment of a HEADERS frame: without its padding and priority fields. */
function headerFragment(payload: Buffer, flags: number): Buffer {
  let start = 0;
  let end = payload.length;
  if ((flags & FLAG_PADDED) !== 0) {
    start = 1;
    end -= payload[0] ?? 0;
  }
  if ((flags & FLAG_PRIORITY) !== 0) start += 5;
  return start <= end ? payload.subarray(start, end) : Buffer.alloc(0);
}

/** The fields of an HPACK block (the first of each name); undefined when the block does not decode. */
function decodeBlock(block: Buffer): Map<string, string> | undefined {
  const decoder = hpack.decompressor.create({ table: { size: HEADER_TABLE_SIZE } });
  let failed = false;
  decoder.on("error", () => (failed = true));
  decoder.write(block);
  decoder.execute();
  if (failed) return undefined;
  const fields = new Map<string, string>();
  for (let field = decoder.read(); field !== null; field = decoder.read()) {
    if (!fields.has(field.name)) fields.set(field.name, field.value);
  }
  return fields;
}
