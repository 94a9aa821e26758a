// Graceful shutdown: knows every socket, h2 session and in-flight request, so close() can stop new
// work, wait for the calls already running, and then cut off whatever is left.
import type http2 from "node:http2";
import type net from "node:net";
import { isHttp1, type HttpRequest, type HttpResponse } from "./http.js";

export class Connections {
  draining = false;
  /** Every accepted TCP socket (under TLS: the raw one), for the final cut. */
  private readonly sockets = new Set<net.Socket>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  /** HTTP/1.1 connections that have carried a request, with how many calls are open on each. */
  private readonly h1 = new Map<net.Socket, number>();
  private inFlight = 0;
  private onIdle: (() => void) | undefined;

  addSocket(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once("close", () => this.sockets.delete(socket));
  }

  addSession(session: http2.ServerHttp2Session): void {
    this.sessions.add(session);
    session.once("close", () => this.sessions.delete(session));
    if (this.draining) session.close();
  }

  requestStarted(req: HttpRequest, res: HttpResponse): void {
    this.inFlight++;
    const socket = isHttp1(req) ? req.socket : undefined;
    if (socket) {
      if (!this.h1.has(socket)) socket.once("close", () => this.h1.delete(socket));
      this.h1.set(socket, (this.h1.get(socket) ?? 0) + 1);
    }
    res.once("close", () => {
      this.inFlight--;
      if (socket && this.h1.has(socket)) {
        const open = (this.h1.get(socket) ?? 1) - 1;
        this.h1.set(socket, open);
        // A response that started before close() began went out without "Connection: close".
        if (this.draining && open === 0) socket.destroySoon();
      }
      if (this.inFlight === 0) this.onIdle?.();
    });
  }

  /** Graceful first (GOAWAY, idle keep-alives closed), then, after graceMs, force. */
  async drain(graceMs: number, onCutoff: (calls: number) => void): Promise<void> {
    this.draining = true;
    for (const session of this.sessions) session.close(); // sends GOAWAY; open streams may finish
    for (const [socket, open] of this.h1) if (open === 0) socket.destroy();
    if (this.inFlight > 0 && !(await this.idleWithin(graceMs))) {
      // Handlers see ctx.signal abort and get a moment to answer before their sockets go.
      onCutoff(this.inFlight);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    for (const session of this.sessions) session.destroy();
    for (const socket of this.sockets) socket.destroy();
  }

  private idleWithin(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      this.onIdle = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
  }
}
