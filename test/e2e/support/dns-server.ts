// A tiny authoritative DNS server on loopback (UDP) for the webhook tests: answers A queries from a
// map the test changes at will (a host that rebinds from a public address to loopback, say), NXDOMAIN
// for names it does not know, no records for AAAA. The service under test resolves endpoint hosts
// through it (WEBHOOK_DNS_SERVERS), so no test query leaves the machine.
import dgram from "node:dgram";

export interface DnsServer {
  /** "127.0.0.1:<port>": the value of WEBHOOK_DNS_SERVERS. */
  address: string;
  /** Host (lower case, no trailing dot) -> the IPv4 addresses to answer. */
  answers: Map<string, string[]>;
  /** A queries received per host. */
  queries(host: string): number;
  stop(): Promise<void>;
}

function readName(msg: Buffer, offset: number): { name: string; end: number } {
  const labels: string[] = [];
  let i = offset;
  for (;;) {
    const length = msg[i] ?? 0;
    if (length === 0) return { name: labels.join(".").toLowerCase(), end: i + 1 };
    labels.push(msg.subarray(i + 1, i + 1 + length).toString("ascii"));
    i += 1 + length;
  }
}

export async function startDnsServer(): Promise<DnsServer> {
  const answers = new Map<string, string[]>();
  const counts = new Map<string, number>();
  const socket = dgram.createSocket("udp4");
  socket.on("message", (msg, remote) => {
    if (msg.length < 12) return;
    const { name, end } = readName(msg, 12);
    const qtype = msg.readUInt16BE(end);
    const question = msg.subarray(12, end + 4);
    const known = answers.get(name);
    const records = qtype === 1 ? (known ?? []) : [];
    if (qtype === 1) counts.set(name, (counts.get(name) ?? 0) + 1);
    const header = Buffer.alloc(12);
    msg.copy(header, 0, 0, 2); // id
    header.writeUInt16BE(known === undefined ? 0x8183 : 0x8180, 2); // response, RD+RA, NXDOMAIN or NOERROR
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(records.length, 6);
    const body = records.map((ip) => {
      const rr = Buffer.alloc(16);
      rr.writeUInt16BE(0xc00c, 0); // pointer to the question's name
      rr.writeUInt16BE(1, 2); // A
      rr.writeUInt16BE(1, 4); // IN
      rr.writeUInt32BE(0, 6); // TTL 0: every lookup asks again
      rr.writeUInt16BE(4, 10);
      ip.split(".").forEach((part, k) => rr.writeUInt8(Number(part), 12 + k));
      return rr;
    });
    socket.send(Buffer.concat([header, question, ...body]), remote.port, remote.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  const { port } = socket.address();
  return {
    address: `127.0.0.1:${port}`,
    answers,
    queries: (host) => counts.get(host) ?? 0,
    stop: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
