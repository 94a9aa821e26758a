import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../support/app.js";

// An oversized HTTP/1.1 body sent without a declared length is refused before it has been read;
// the server must then close the connection, or the rest of the body would be parsed as the next
// request and a client reusing the connection would stall.

let t: TestApp;

beforeAll(async () => {
  t = await startTestApp("body_limit", { MAX_BODY_BYTES: "65536" });
});

afterAll(async () => {
  await t?.stop();
});

describe("oversized chunked bodies over HTTP/1.1", () => {
  it("answer RESOURCE_EXHAUSTED with connection: close, and the connection ends promptly", async () => {
    const { port } = new URL(t.url);
    const socket = connect(Number(port), "127.0.0.1");
    const received: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => received.push(chunk));
    const closed = new Promise<number>((resolve) => {
      const started = Date.now();
      socket.on("close", () => resolve(Date.now() - started));
    });
    socket.on("error", () => undefined); // the server may reset while we are still sending
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    socket.write(
      "POST /promotions.v1.PromotionService/ListPromotions HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
        "Content-Type: application/json\r\nConnect-Protocol-Version: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    const chunk = "x".repeat(16_384);
    for (let i = 0; i < 16 && !socket.destroyed; i++) socket.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
    const ms = await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(-1), 5_000))]);
    socket.destroy();
    const head = Buffer.concat(received).toString("latin1");
    expect(head).toMatch(/^HTTP\/1\.1 (413|429|400|200)/);
    expect(head.toLowerCase()).toContain("connection: close");
    expect(ms).toBeGreaterThanOrEqual(0); // closed by the server, not by our 5 s timeout
  });
});
