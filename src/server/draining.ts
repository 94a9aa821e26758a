// Graceful shutdown over the connection registry: stop new work, let the calls already running
// finish within the grace period, and then cut off whatever is left.
import type { Connections } from "./connections.js";

/** How long gRPC-lane connections may take to close by themselves once their calls are done. */
const LINGER_MS = 1_000;

/** Graceful first (GOAWAY, idle keep-alives closed), then, after graceMs, force. */
export async function drain(connections: Connections, graceMs: number, onCutoff: (calls: number) => void): Promise<void> {
  connections.draining = true;
  for (const conn of connections.all()) {
    if (conn.handedOver) continue; // the gRPC lane sends its own GOAWAY (grpc-lane.ts)
    if (conn.session) conn.session.close(); // sends GOAWAY; open streams may finish
    else if (conn.calls === 0) conn.socket.destroy(); // idle keep-alive, or still saying hello
  }
  if (!(await connections.untilNoCalls(graceMs))) {
    // Handlers see ctx.signal abort and get a moment to answer before their sockets go.
    onCutoff(connections.inFlight);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  connections.stopSweeping();
  // The gRPC lane's calls leave the registry as they hand grpc-js their last words, which may not
  // be on the wire yet; its connections close themselves once their streams are done (GOAWAY was
  // sent), so they get a moment to before being cut.
  const lanes = [...connections.all()].filter((conn) => conn.handedOver && !conn.socket.destroyed);
  if (lanes.length > 0) {
    await Promise.race([
      Promise.all(lanes.map((conn) => new Promise((resolve) => conn.socket.once("close", resolve)))),
      new Promise((resolve) => setTimeout(resolve, LINGER_MS)),
    ]);
  }
  for (const conn of [...connections.all()]) {
    conn.session?.destroy();
    conn.socket.destroy();
  }
}
