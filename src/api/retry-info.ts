import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { DurationSchema } from "@bufbuild/protobuf/wkt";

// google.rpc.RetryInfo { google.protobuf.Duration retry_delay = 1; } — the standard "retry after"
// error detail that gRPC clients understand. protobuf-es ships Duration but not RetryInfo, and this
// one-field message is not worth vendoring google/rpc/error_details.proto (and a lint exception)
// for, so it is encoded by hand here.

export const RETRY_INFO_TYPE = "google.rpc.RetryInfo";

/** The wire bytes of a RetryInfo whose retry_delay is `ms` milliseconds. */
export function encodeRetryInfo(ms: number): Uint8Array {
  const whole = Math.max(0, Math.ceil(ms));
  const delay = create(DurationSchema, { seconds: BigInt(Math.floor(whole / 1000)), nanos: (whole % 1000) * 1_000_000 });
  return new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(toBinary(DurationSchema, delay)).finish();
}

/** The retry_delay of RetryInfo bytes, in milliseconds (clients and tests read it with this). */
export function decodeRetryInfo(bytes: Uint8Array): number {
  const reader = new BinaryReader(bytes);
  let ms = 0;
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) {
      const delay = fromBinary(DurationSchema, reader.bytes());
      ms = Number(delay.seconds) * 1000 + delay.nanos / 1_000_000;
    } else {
      reader.skip(wireType, field);
    }
  }
  return ms;
}
