// Small helpers every end-to-end test uses to read RPC answers.
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorDetailSchema, type ErrorDetail } from "../../gen/promotions/v1/errors_pb.js";
import type { Promotion } from "../../gen/promotions/v1/promotion_pb.js";

/** The promotion a response wraps (fails the test when it is missing). */
export function promo(res: { promotion?: Promotion }): Promotion {
  if (!res.promotion) throw new Error("response carries no promotion");
  return res.promotion;
}

export interface Refusal {
  code: Code;
  message: string;
  details: ErrorDetail[];
  /** The first ErrorDetail, if any. */
  detail: ErrorDetail | undefined;
}

/** The error a call fails with (fails the test when the call succeeds). */
export async function refusal(work: Promise<unknown>): Promise<Refusal> {
  try {
    await work;
  } catch (error) {
    const e = ConnectError.from(error);
    const details = e.findDetails(ErrorDetailSchema);
    return { code: e.code, message: e.rawMessage, details, detail: details[0] };
  }
  throw new Error("the call succeeded but a refusal was expected");
}
