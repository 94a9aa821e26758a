// The redeem bench's load generator: unary gRPC over node:http2 with nothing else in the way.
//
// The bench runs the server, Postgres, Redis and this generator on the same two cores, so whatever
// CPU the generator takes is CPU the server under test does not get. A connect-node gRPC client
// spends ~0.35 ms of CPU per call on this machine (interceptors, abort signals, its own stream
// plumbing); this one spends ~0.07 ms. It still does the whole job of a client: encodes each
// request with protobuf-es, sends it with the API key, reads status from the trailers and decodes
// every response, so a call only counts when the server really answered it.
import http2 from "node:http2";
import { create, fromBinary, toBinary, type DescMethodUnary, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";

/** gRPC's 5-byte message prefix: a compressed flag, then the length (big-endian uint32). */
const PREFIX = 5;

export class GrpcLoadClient {
  private readonly sessions: http2.ClientHttp2Session[];
  private next = 0;

  /** `connections` HTTP/2 connections to `url`; calls take them in turn. */
  constructor(
    url: string,
    private readonly key: string,
    connections = 1,
  ) {
    this.sessions = Array.from({ length: connections }, () => {
      const session = http2.connect(url);
      // A broken connection fails the calls on it; the error itself is not worth a crash.
      session.on("error", () => {});
      return session;
    });
  }

  unary<I extends DescMessage, O extends DescMessage>(method: DescMethodUnary<I, O>, request: MessageInitShape<I>, timeoutMs: number): Promise<MessageShape<O>> {
    const body = toBinary(method.input, create(method.input, request));
    const frame = Buffer.allocUnsafe(PREFIX + body.length);
    frame[0] = 0;
    frame.writeUInt32BE(body.length, 1);
    frame.set(body, PREFIX);
    const session = this.sessions[this.next++ % this.sessions.length];
    if (!session) throw new Error("no connection");
    return new Promise((resolve, reject) => {
      const stream = session.request({
        ":method": "POST",
        ":path": `/${method.parent.typeName}/${method.name}`,
        "content-type": "application/grpc+proto",
        te: "trailers",
        authorization: `Bearer ${this.key}`,
      });
      const chunks: Buffer[] = [];
      let timedOut = false;
      let status: Record<string, unknown> | undefined;
      // A trailers-only answer (every error) carries grpc-status in the headers.
      stream.on("response", (headers) => {
        if (headers["grpc-status"] !== undefined) status = headers;
      });
      stream.on("trailers", (trailers) => (status = trailers));
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.setTimeout(timeoutMs, () => {
        timedOut = true;
        stream.close(http2.constants.NGHTTP2_CANCEL);
      });
      stream.on("error", (error) => reject(ConnectError.from(error, Code.Unavailable)));
      stream.on("close", () => {
        if (timedOut) return reject(new ConnectError(`no answer within ${timeoutMs} ms`, Code.DeadlineExceeded));
        try {
          resolve(decode(method.output, status, chunks));
        } catch (error) {
          reject(error);
        }
      });
      stream.end(frame);
    });
  }

  close(): void {
    for (const session of this.sessions) session.close();
  }
}

function decode<O extends DescMessage>(output: O, status: Record<string, unknown> | undefined, chunks: Buffer[]): MessageShape<O> {
  if (status === undefined) throw new ConnectError("the stream ended without a grpc-status", Code.Unavailable);
  const code = Number(status["grpc-status"]);
  if (code !== 0) throw new ConnectError(decodeURIComponent(String(status["grpc-message"] ?? "")), code in Code ? (code as Code) : Code.Unknown);
  const data = chunks.length === 1 && chunks[0] ? chunks[0] : Buffer.concat(chunks);
  if (data.length < PREFIX || data[0] !== 0 || data.readUInt32BE(1) !== data.length - PREFIX) {
    throw new ConnectError(`expected one uncompressed message, got ${data.length} bytes`, Code.Internal);
  }
  return fromBinary(output, data.subarray(PREFIX));
}
