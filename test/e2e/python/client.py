"""The promotions service as a Python team calls it: grpcio with stubs protoc generated from proto/.

Run by test/e2e/python-client.test.ts, which generates the stubs into a temporary directory on
PYTHONPATH (see test/e2e/support/python.ts; README "Calling it from Python or Go" has the commands):

    /usr/bin/python3 test/e2e/python/client.py http://127.0.0.1:8080   # key in PROMOTIONS_API_KEY

It calls every service once in a checkout story (health; billing context; a promotion created,
activated and read back with its version; a simulation; validate, redeem, a refused second redeem;
an invoice priced) plus two refusals, and prints one JSON object of what it read, for the test to
check field by field. Errors are decoded as any gRPC client would: the google.rpc.Status in the
`grpc-status-details-bin` trailer, whose Any details unpack to promotions.v1.ErrorDetail.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Callable, TypeVar
from urllib.parse import urlparse

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from google.rpc import status_pb2
from health.v1 import health_pb2, health_pb2_grpc
from promotions.v1 import (
    customer_pb2,
    customer_service_pb2 as customers,
    customer_service_pb2_grpc,
    errors_pb2,
    invoice_service_pb2 as invoices,
    invoice_service_pb2_grpc,
    promotion_pb2,
    promotion_service_pb2 as promotions,
    promotion_service_pb2_grpc,
    promotion_version_service_pb2 as versions,
    promotion_version_service_pb2_grpc,
    redemption_service_pb2 as redemptions,
    redemption_service_pb2_grpc,
    simulation_service_pb2 as simulation,
    simulation_service_pb2_grpc,
    types_pb2,
)

CUSTOMER = "cus_python"
SUBSCRIPTION = "sub_python"
CODE = "py-welcome"  # the service upper-cases codes
TIMEOUT_S = 10.0

T = TypeVar("T")


def channel_for(url: str) -> grpc.Channel:
    """A channel to the service at `url` (http:// is plaintext h2c, https:// is TLS)."""
    parsed = urlparse(url)
    if parsed.scheme == "https":
        return grpc.secure_channel(parsed.netloc, grpc.ssl_channel_credentials())
    if parsed.scheme == "http":
        return grpc.insecure_channel(parsed.netloc)
    raise SystemExit(f"not an http(s) URL: {url}")


def timestamp(seconds: int) -> Timestamp:
    return Timestamp(seconds=seconds)


def error_of(error: grpc.RpcError) -> dict[str, Any]:
    """What a refusal says: its gRPC code and every ErrorDetail of its google.rpc.Status."""
    assert isinstance(error, grpc.Call)
    trailers = dict(error.trailing_metadata() or ())
    raw = trailers.get("grpc-status-details-bin")
    status = status_pb2.Status.FromString(raw) if isinstance(raw, bytes) else status_pb2.Status()
    details = []
    for packed in status.details:
        detail = errors_pb2.ErrorDetail()
        if packed.Unpack(detail):
            details.append({"type": detail.type, "code": detail.code, "message": detail.message, "param": detail.param})
    return {
        "code": error.code().name,
        # The text grpcio decoded from grpc-message: exact only if the server percent-encodes it as the spec says.
        "message": error.details(),
        "status_message": status.message,
        "status_code": status.code,
        "type_urls": [packed.type_url for packed in status.details],
        "details": details,
    }


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: client.py <server URL>   (API key in PROMOTIONS_API_KEY)")
    key = os.environ["PROMOTIONS_API_KEY"]
    auth = (("authorization", f"Bearer {key}"),)
    channel = channel_for(sys.argv[1])

    def call(method: Callable[..., T], request: object, *, keyed: bool = True) -> T:
        return method(request, metadata=auth if keyed else (), timeout=TIMEOUT_S)

    def refusal(method: Callable[..., object], request: object, *, keyed: bool = True) -> dict[str, Any]:
        try:
            call(method, request, keyed=keyed)
        except grpc.RpcError as error:
            return error_of(error)
        raise SystemExit(f"expected {method} to be refused")

    health = health_pb2_grpc.HealthStub(channel)
    customer_service = customer_service_pb2_grpc.CustomerServiceStub(channel)
    promotion_service = promotion_service_pb2_grpc.PromotionServiceStub(channel)
    version_service = promotion_version_service_pb2_grpc.PromotionVersionServiceStub(channel)
    simulation_service = simulation_service_pb2_grpc.SimulationServiceStub(channel)
    redemption_service = redemption_service_pb2_grpc.RedemptionServiceStub(channel)
    invoice_service = invoice_service_pb2_grpc.InvoiceServiceStub(channel)
    out: dict[str, Any] = {}

    # grpc.health.v1.Health: no key needed.
    checked = call(health.Check, health_pb2.HealthCheckRequest(), keyed=False)
    out["health"] = {"status": health_pb2.HealthCheckResponse.ServingStatus.Name(checked.status)}

    # CustomerService: the billing context the pipeline prices against.
    now = int(time.time())
    signed_up = now - 90 * 86_400
    upserted = call(
        customer_service.UpsertCustomer,
        customers.UpsertCustomerRequest(
            customer=customer_pb2.Customer(
                id=CUSTOMER,
                segments=["students"],
                created_at=timestamp(signed_up),
                has_paid_before=True,
                metadata={"team": "python"},
                updated_at=timestamp(now),
            )
        ),
    )
    period_start, period_end = now - 3_600, now - 3_600 + 30 * 86_400
    subscribed = call(
        customer_service.UpsertSubscription,
        customers.UpsertSubscriptionRequest(
            subscription=customer_pb2.Subscription(
                id=SUBSCRIPTION,
                customer_id=CUSTOMER,
                status=customer_pb2.SUBSCRIPTION_STATUS_ACTIVE,
                currency="USD",
                interval=customer_pb2.BILLING_INTERVAL_MONTH,
                current_period_start=timestamp(period_start),
                current_period_end=timestamp(period_end),
                items=[customer_pb2.SubscriptionItem(plan_id="pro", product_id="app", unit_amount_minor=4_900, quantity=2)],
                updated_at=timestamp(now),
            )
        ),
    )
    customer = call(customer_service.GetCustomer, customers.GetCustomerRequest(id=CUSTOMER)).customer
    subscription = call(customer_service.GetSubscription, customers.GetSubscriptionRequest(id=SUBSCRIPTION)).subscription
    out["customer"] = {
        "applied": upserted.applied,
        "id": customer.id,
        "segments": list(customer.segments),
        "created_at_seconds": customer.created_at.seconds,
        "sent_created_at_seconds": signed_up,
        "has_paid_before": customer.has_paid_before,
        "metadata": dict(customer.metadata),
    }
    out["subscription"] = {
        "applied": subscribed.applied,
        "id": subscription.id,
        "customer_id": subscription.customer_id,
        "status": customer_pb2.SubscriptionStatus.Name(subscription.status),
        "interval": customer_pb2.BillingInterval.Name(subscription.interval),
        "period_seconds": [subscription.current_period_start.seconds, subscription.current_period_end.seconds],
        "sent_period_seconds": [period_start, period_end],
        "items": [
            {"plan_id": i.plan_id, "product_id": i.product_id, "unit_amount_minor": i.unit_amount_minor, "quantity": i.quantity}
            for i in subscription.items
        ],
    }

    # PromotionService: a 20% code for students, one per customer, activated and read back.
    created = call(
        promotion_service.CreatePromotion,
        promotions.CreatePromotionRequest(
            name="Python welcome",
            code=CODE,
            currency="USD",
            conditions=[types_pb2.Condition(customer_segments=types_pb2.CustomerSegmentsCondition(any_of=["students"]))],
            effects=[types_pb2.Effect(percentage_discount=types_pb2.PercentageDiscount(percent_bps=2_000))],
            max_redemptions=10,
            max_redemptions_per_customer=1,
            metadata={"team": "python"},
        ),
    ).promotion
    activated = call(promotion_service.ActivatePromotion, promotions.ActivatePromotionRequest(id=created.id)).promotion
    got = call(promotion_service.GetPromotion, promotions.GetPromotionRequest(id=created.id)).promotion
    effect = got.phases[0].effects[0]
    out["promotion"] = {
        "id": created.id,
        "code": created.code,
        "created_status": promotion_pb2.PromotionStatus.Name(created.status),
        "created_version": created.version,
        "activated_id": activated.id,
        "status": promotion_pb2.PromotionStatus.Name(got.status),
        "derived_status": promotion_pb2.DerivedStatus.Name(got.derived_status),
        "got_id": got.id,
        "version": got.version,
        "phase": got.phases[0].name,
        "effect_kind": effect.WhichOneof("kind"),
        "percent_bps": effect.percentage_discount.percent_bps,
        "condition_kind": got.conditions[0].WhichOneof("kind"),
        "has_max_redemptions": got.HasField("max_redemptions"),
        "max_redemptions": got.max_redemptions,
        "has_max_budget": got.HasField("max_budget"),
        "max_redemptions_per_customer": got.max_redemptions_per_customer,
        "metadata": dict(got.metadata),
    }

    # PromotionVersionService: the version activation published, with its terms.
    listed = call(version_service.ListPromotionVersions, versions.ListPromotionVersionsRequest(id=created.id))
    version = call(version_service.GetPromotionVersion, versions.GetPromotionVersionRequest(id=created.id, version=got.version))
    out["versions"] = {
        "listed": [{"promotion_id": v.promotion_id, "version": v.version, "status": promotion_pb2.VersionStatus.Name(v.status)} for v in listed.versions],
        "id_matches_head": version.version.id == got.head_version_id,
        "terms_name": version.terms.name,
        "terms_percent_bps": version.terms.phases[0].effects[0].percentage_discount.percent_bps,
    }

    # SimulationService: the subscription priced under the promotion, nothing written.
    simulated = call(
        simulation_service.SimulatePromotion,
        simulation.SimulatePromotionRequest(customer_id=CUSTOMER, subscription_id=SUBSCRIPTION, promotion_ids=[created.id]),
    ).invoice
    out["simulation"] = {
        "subtotal_minor": simulated.subtotal_minor,
        "discount_minor": simulated.discount_minor,
        "total_minor": simulated.total_minor,
        "promotions": [{"promotion_id": p.promotion_id, "applied": p.applied, "discount_minor": p.discount_minor} for p in simulated.promotions],
    }

    # RedemptionService: validate, redeem, read it back, and the refused second redemption.
    validated = call(redemption_service.ValidateCode, redemptions.ValidateCodeRequest(code=CODE, customer_id=CUSTOMER))
    redeemed = call(
        redemption_service.RedeemPromotion,
        redemptions.RedeemPromotionRequest(code=CODE, customer_id=CUSTOMER, subscription_id=SUBSCRIPTION, idempotency_key="py-checkout-1"),
    ).redemption
    fetched = call(redemption_service.GetRedemption, redemptions.GetRedemptionRequest(id=redeemed.id)).redemption
    out["validate"] = {
        "valid": validated.valid,
        "reason": validated.reason,
        "promotion_id": validated.promotion_id,
        "effect_summary": validated.effect_summary,
        "remaining_redemptions": validated.remaining_redemptions,
        "checks": {c.check: c.passed for c in validated.checks},
    }
    out["redemption"] = {
        "id": redeemed.id,
        "got_id": fetched.id,
        "promotion_id": fetched.promotion_id,
        "version": fetched.version,
        "code": fetched.code,
        "customer_id": fetched.customer_id,
        "subscription_id": fetched.subscription_id,
        "status": redemptions.RedemptionStatus.Name(fetched.status),
        "idempotency_key": fetched.idempotency_key,
    }
    out["second_redeem"] = refusal(
        redemption_service.RedeemPromotion,
        redemptions.RedeemPromotionRequest(code=CODE, customer_id=CUSTOMER, idempotency_key="py-checkout-2"),
    )

    # InvoiceService: the real invoice, discounted by the redemption.
    applied = call(
        invoice_service.ApplyPromotions,
        invoices.ApplyPromotionsRequest(invoice_id="in_python_1", customer_id=CUSTOMER, subscription_id=SUBSCRIPTION),
    )
    out["invoice"] = {
        "invoice_id": applied.invoice_id,
        "replayed": applied.replayed,
        "subtotal_minor": applied.invoice.subtotal_minor,
        "discount_minor": applied.invoice.discount_minor,
        "total_minor": applied.invoice.total_minor,
        "lines": [{"plan_id": l.plan_id, "amount_minor": l.amount_minor, "discount_minor": l.discount_minor} for l in applied.invoice.lines],
        "promotions": [
            {"promotion_id": p.promotion_id, "applied": p.applied, "phase_name": p.phase_name, "version": p.version, "budget_consumed_minor": p.budget_consumed_minor}
            for p in applied.invoice.promotions
        ],
    }

    # Refusals: bad input named field by field, and a call without a key.
    out["invalid_create"] = refusal(
        promotion_service.CreatePromotion,
        promotions.CreatePromotionRequest(
            name="",
            effects=[types_pb2.Effect(percentage_discount=types_pb2.PercentageDiscount(percent_bps=20_000))],
        ),
    )
    out["no_key"] = refusal(promotion_service.GetPromotion, promotions.GetPromotionRequest(id=created.id), keyed=False)

    channel.close()
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
