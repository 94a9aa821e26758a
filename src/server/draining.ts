// Graceful shutdown over the connection registry: stop new work, let the calls already running
// finish within the grace period, and then cut off whatever is left.
import type { Connections } from "./connections.js";

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
  for (const conn of [...connections.all()]) {
    conn.session?.destroy();
    conn.socket.destroy();
  }
}
