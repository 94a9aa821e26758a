import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { EventService, StreamEventsRequest, StreamEventsResponseSchema } from "../../../gen/promotions/v1/event_service_pb.js";
import { EventSchema } from "../../../gen/promotions/v1/event_pb.js";
import { decodeCursor, encodeCursor } from "../cursor.js";
import { fitting, messageBytes, PAGE_BYTES } from "../page-size.js";
import { toConnectError } from "../errors.js";
import { requestScope } from "../request-scope.js";
import { assertValid, checkPageLimit, checkUuid } from "../../domain/checks.js";
import { DomainError, type Violation } from "../../domain/errors.js";
import { isEventType } from "../../events/event-types.js";
import type { EventFeed } from "../../events/feed.js";
import { EventReader, START, type EventFilter, type Position } from "../../events/reader.js";
import { sqlOf } from "../../events/sql.js";

// promotions.v1.EventService: transport for the outbox's reader. Scope `read`; every query is the
// caller's organization's, so another tenant's event ids are NOT_FOUND.

const CURSOR_KIND = "events";
const STREAM_BATCH = 100;
const DIGITS = /^\d{1,20}$/;

function checkTypes(out: Violation[], types: readonly string[], param: string): void {
  types.forEach((type, i) => {
    if (!isEventType(type)) out.push({ param: `${param}[${i}]`, code: "unknown_event_type", message: `unknown event type ${JSON.stringify(type.slice(0, 80))}` });
  });
}

function date(ts: Timestamp | undefined, out: Violation[], param: string): Date | null {
  if (ts === undefined) return null;
  const d = timestampDate(ts);
  if (Number.isNaN(d.getTime())) out.push({ param, code: "invalid_format", message: `${param} is not a valid time` });
  return d;
}

function decodePosition(cursor: string): Position | null {
  if (cursor === "") return null;
  const [txid, seq, ...rest] = decodeCursor(CURSOR_KIND, cursor);
  if (txid === undefined || seq === undefined || rest.length > 0 || !DIGITS.test(txid) || !DIGITS.test(seq)) {
    throw DomainError.of("invalid_argument", "invalid_cursor", "cursor is not one this service issued; pass next_cursor from the previous page unchanged", "cursor");
  }
  return { txid, seq };
}

/** How long a stream waits for a wake-up before it looks again by itself. */
function safetyMs(pollMs: number): number {
  return Math.max(1_000, pollMs * 4);
}

export function eventService(feed: EventFeed, pollMs: number): ServiceImpl<typeof EventService> {
  return {
    async listEvents(req, ctx) {
      const { em, actor } = requestScope(ctx);
      const out: Violation[] = [];
      const limit = checkPageLimit(out, req.limit);
      checkTypes(out, req.types, "types");
      const filter: EventFilter = { types: [...new Set(req.types)], createdFrom: date(req.createdAtStart, out, "created_at_start"), createdUntil: date(req.createdAtEnd, out, "created_at_end") };
      assertValid(out);
      const before = decodePosition(req.cursor);
      const rows = await new EventReader(sqlOf(em)).newestFirst(actor.organizationId, before, filter, limit + 1);
      // A page stops at `limit` or at PAGE_BYTES (events carry whole promotions), whichever comes first.
      const candidates = rows.slice(0, limit);
      const shown = candidates.slice(0, fitting(candidates.map((s) => messageBytes(EventSchema, s.event)), PAGE_BYTES));
      const last = shown.at(-1);
      const more = rows.length > shown.length;
      return { events: shown.map((s) => s.event), nextCursor: more && last ? encodeCursor(CURSOR_KIND, [last.position.txid, last.position.seq]) : "" };
    },

    async *streamEvents(req, ctx) {
      try {
        yield* stream(req, ctx, feed, pollMs);
      } catch (error) {
        // Streams bypass the logging interceptor's mapping: map here, so details survive.
        throw toConnectError(error);
      }
    },
  };
}

async function* stream(req: StreamEventsRequest, ctx: HandlerContext, feed: EventFeed, pollMs: number): AsyncGenerator<MessageInitShape<typeof StreamEventsResponseSchema>> {
  const { em, actor } = requestScope(ctx);
  const organizationId = actor.organizationId;
  const out: Violation[] = [];
  if (req.afterId !== "") checkUuid(out, req.afterId, "after_id");
  checkTypes(out, req.types, "types");
  const startTime = req.afterId === "" ? date(req.startTime, out, "start_time") : null;
  assertValid(out);
  const reader = new EventReader(sqlOf(em));
  let position: Position;
  if (req.afterId !== "") {
    const found = await reader.positionOf(organizationId, req.afterId);
    if (!found) throw DomainError.of("not_found", "event_not_found", `event ${req.afterId} does not exist`, "after_id");
    position = found;
  } else {
    position = startTime === null ? await reader.head(organizationId) : START;
  }
  const filter: EventFilter = { types: [...new Set(req.types)], createdFrom: startTime, createdUntil: null };
  for (;;) {
    if (ctx.signal.aborted) throw ConnectError.from(ctx.signal.reason);
    const version = feed.version(organizationId);
    const batch = await reader.after(organizationId, position, filter, STREAM_BATCH);
    for (const stored of batch) {
      yield { event: stored.event };
      position = stored.position;
    }
    if (batch.length === STREAM_BATCH) continue;
    const woke = await feed.wait(organizationId, version, ctx.signal, safetyMs(pollMs));
    if (woke === "closed") throw new ConnectError("the server is shutting down; reconnect with after_id set to the last event received", Code.Unavailable);
    if (woke === "aborted") throw ConnectError.from(ctx.signal.reason);
  }
}
