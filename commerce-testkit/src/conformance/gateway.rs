//! Conformance suite of the [`PaymentGateway`] port.

use commerce_ports::payment::{
    AuthorizeRequest, CaptureMethod, CaptureRequest, IncrementRequest, ModificationResult, ModificationStatus,
    PaymentGateway, PaymentMethodData, PaymentSnapshot, ProviderPaymentStatus, RefundRequest, TokenizeRequest,
    VoidRequest,
};
use commerce_ports::{Currency, ErrorKind, IdempotencyKey, Money, PaymentError, Secret, TenderKind};

use super::{Failure, Outcome, Report, ensure, step};

/// What the suite needs to know about the gateway under test.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GatewayFixture {
    /// Currency of the test payments.
    pub currency: Currency,
    /// Tender of the test payments.
    pub tender: TenderKind,
    /// A payment method the gateway approves.
    pub approved_method: String,
    /// A payment method the gateway declines.
    pub declined_method: String,
    /// Prefix of every idempotency key and reference, unique per run so runs against a real sandbox never
    /// collide with earlier ones.
    pub run_id: String,
}

impl GatewayFixture {
    /// A fixture using Stripe's test payment method names (`pm_card_visa`, `pm_card_chargeDeclined`), which
    /// the simulators and the in-memory gateway honour, and a run id from the current time.
    pub fn new(currency: Currency, tender: TenderKind) -> GatewayFixture {
        GatewayFixture {
            currency,
            tender,
            approved_method: "pm_card_visa".to_owned(),
            declined_method: "pm_card_chargeDeclined".to_owned(),
            run_id: format!("conf-{}", time::OffsetDateTime::now_utc().unix_timestamp_nanos()),
        }
    }

    /// Sets the payment method names.
    pub fn with_methods(mut self, approved: impl Into<String>, declined: impl Into<String>) -> GatewayFixture {
        self.approved_method = approved.into();
        self.declined_method = declined.into();
        self
    }

    fn key(&self, behaviour: &'static str, step: &str) -> Result<IdempotencyKey, Failure> {
        IdempotencyKey::new(format!("{}-{behaviour}-{step}", self.run_id))
            .map_err(|e| Failure { behaviour, message: format!("fixture key: {e}") })
    }

    fn money(&self, minor: i64) -> Money {
        Money::from_minor(minor, self.currency)
    }

    /// An authorization request; manual capture when the gateway declares it, automatic otherwise.
    fn authorize_request(
        &self,
        gw: &dyn PaymentGateway,
        behaviour: &'static str,
        minor: i64,
        method: &str,
    ) -> Result<AuthorizeRequest, Failure> {
        let capture = if gw.capabilities().manual_capture { CaptureMethod::Manual } else { CaptureMethod::Automatic };
        Ok(AuthorizeRequest::new(
            self.money(minor),
            self.tender,
            method,
            format!("{}-{behaviour}", self.run_id),
            self.key(behaviour, "authorize")?,
        )
        .with_capture_method(capture))
    }
}

async fn authorize(
    gw: &dyn PaymentGateway,
    fx: &GatewayFixture,
    behaviour: &'static str,
    minor: i64,
) -> Result<PaymentSnapshot, Failure> {
    let request = fx.authorize_request(gw, behaviour, minor, &fx.approved_method)?;
    let manual = request.capture_method == CaptureMethod::Manual;
    let snapshot = step(behaviour, "authorize", gw.authorize(request).await)?;
    let expected = if manual {
        vec![ProviderPaymentStatus::Authorized]
    } else {
        vec![ProviderPaymentStatus::Captured, ProviderPaymentStatus::Pending]
    };
    ensure!(
        behaviour,
        expected.contains(&snapshot.status),
        "authorize answered {:?}, expected one of {expected:?}",
        snapshot.status
    );
    ensure!(
        behaviour,
        snapshot.authorized == fx.money(minor),
        "authorized {} instead of {}",
        snapshot.authorized,
        fx.money(minor)
    );
    Ok(snapshot)
}

fn expect_kind<T: std::fmt::Debug>(
    behaviour: &'static str,
    what: &str,
    result: Result<T, PaymentError>,
    kinds: &[ErrorKind],
) -> Outcome {
    match result {
        Ok(v) => Err(Failure {
            behaviour,
            message: format!("{what} succeeded ({v:?}); expected an error of kind {kinds:?}"),
        }),
        Err(e) if kinds.contains(&e.kind()) => Ok(()),
        Err(e) => Err(Failure {
            behaviour,
            message: format!("{what} failed with kind {} ({e}); expected {kinds:?}", e.kind()),
        }),
    }
}

fn settled(gw: &dyn PaymentGateway, result: &ModificationResult) -> bool {
    result.status == ModificationStatus::Succeeded || !gw.capabilities().asynchronous_modifications
}

/// Whether the gateway can read a payment back ([`GatewayCapabilities::retrieve`](commerce_ports::payment::GatewayCapabilities)).
/// Gateways without it (Adyen Checkout settles by webhook only) skip the retrieve checks; what their
/// modification results say is still checked.
fn can_retrieve(gw: &dyn PaymentGateway) -> bool {
    gw.capabilities().retrieve
}

/// A modification result is `Succeeded`, or `Pending` when the gateway declares asynchronous modifications,
/// and concerns `amount` when one is given.
fn check_modification(
    gw: &dyn PaymentGateway,
    behaviour: &'static str,
    what: &str,
    result: &ModificationResult,
    amount: Option<Money>,
) -> Outcome {
    let asynchronous = gw.capabilities().asynchronous_modifications;
    ensure!(
        behaviour,
        result.status == ModificationStatus::Succeeded
            || (asynchronous && result.status == ModificationStatus::Pending),
        "{what} answered {:?}{}",
        result.status,
        if asynchronous { "" } else { " although the gateway does not declare asynchronous_modifications" }
    );
    if let Some(amount) = amount {
        ensure!(behaviour, result.amount == amount, "{what} reported {} instead of {amount}", result.amount);
    }
    ensure!(behaviour, !result.provider_reference.is_empty(), "{what} reported no provider reference");
    Ok(())
}

/// A manual-capture authorization, captured in full, shows the full amount captured.
pub async fn authorize_then_capture_in_full(gw: &dyn PaymentGateway, fx: &GatewayFixture) -> Outcome {
    const B: &str = "authorize_then_capture_in_full";
    let auth = authorize(gw, fx, B, 2_500).await?;
    let capture = step(
        B,
        "capture",
        gw.capture(CaptureRequest::new(&auth.provider_reference, fx.money(2_500), fx.key(B, "capture")?)).await,
    )?;
    check_modification(gw, B, "capture", &capture, Some(fx.money(2_500)))?;
    if settled(gw, &capture) && can_retrieve(gw) {
        let view = step(B, "retrieve", gw.retrieve(&auth.provider_reference).await)?;
        ensure!(
            B,
            view.captured == fx.money(2_500),
            "retrieve shows {} captured, expected {}",
            view.captured,
            fx.money(2_500)
        );
        ensure!(
            B,
            view.status == ProviderPaymentStatus::Captured,
            "retrieve shows {:?}, expected Captured",
            view.status
        );
    }
    Ok(())
}

/// Automatic capture captures with the authorization.
pub async fn automatic_capture_captures(gw: &dyn PaymentGateway, fx: &GatewayFixture) -> Outcome {
    const B: &str = "automatic_capture_captures";
    let request =
        fx.authorize_request(gw, B, 1_200, &fx.approved_method)?.with_capture_method(CaptureMethod::Automatic);
    let snapshot = step(B, "authorize", gw.authorize(request).await)?;
    ensure!(
        B,
        snapshot.status == ProviderPaymentStatus::Captured || snapshot.status == ProviderPaymentStatus::Pending,
        "automatic capture answered {:?}",
        snapshot.status
    );
    Ok(())
}

/// Two partial captures add up; a third beyond the authorization is refused.
pub async fn capture_in_parts(gw: &dyn PaymentGateway, fx: &GatewayFixture) -> Outcome {
    const B: &str = "capture_in_parts";
    let auth = authorize(gw, fx, B, 10_000).await?;
    let first = CaptureRequest::new(&auth.provider_reference, fx.money(4_000), fx.key(B, "capture-1")?).partial();
    let first = step(B, "first capture", gw.capture(first).await)?;
    check_modification(gw, B, "first capture", &first, Some(fx.money(4_000)))?;
    let second = CaptureRequest::new(&auth.provider_reference, fx.money(3_000), fx.key(B, "capture-2")?).partial();
    let second = step(B, "second capture", gw.capture(second).await)?;
    check_modification(gw, B, "second capture", &second, Some(fx.money(3_000)))?;
    if settled(gw, &second) {
        if can_retrieve(gw) {
            let view = step(B, "retrieve", gw.retrieve(&auth.provider_reference).await)?;
            ensure!(B, view.captured == fx.money(7_000), "captured {} after 40.00 + 30.00 parts", view.captured);
        }
        let third = CaptureRequest::new(&auth.provider_reference, fx.money(3_001), fx.key(B, "capture-3")?);
        expect_kind(B, "capturing beyond the authorization", gw.capture(third).await, &[ErrorKind::InvalidRequest])?;
    }
    Ok(())
}

/// Capturing more than authorized is refused as an invalid request, and nothing is captured.
pub async fn over_capture_is_refused(gw: &dyn PaymentGateway, fx: &GatewayFixture) -> Outcome {
    const B: &str = "over_capture_is_refused";
    let auth = authorize(gw, fx, B, 1_000).await?;
    let request = CaptureRequest::new(&auth.provider_reference, fx.money(1_001), fx.key(B, "capture")?);
    expect_kind(B, "capture above the authorization", gw.capture(request).await, &[ErrorKind::InvalidRequest])?;
    if can_retrieve(gw) {
        let view = step(B, "retrieve", gw.retrieve(&auth.provider_reference).await)?;
        ensure!(B, view.captured.is_zero(), "a refused capture left {} captured", view.captured);
    }
    Ok(())
}

/// Two partial refunds add up; refunding beyond what was captured is refused.
pub async fn refund_in_parts(gw: &dyn PaymentGateway, fx: &GatewayFixture) -> Outcome {
    const B: &str = "refund_in_parts";
    let auth = authorize(gw, fx, B, 5_000).await?;
    let capture = step(
        B,
        "capture",
        gw.capture(CaptureRequest::new(&auth.provider_reference, fx.money(5_000), fx.key(B, "capture")?)).await,
    )?;
    check_modification(gw, B, "capture", &capture, Some(fx.money(5_000)))?;
    if !settled(gw, &capture) {
        return Ok(());
    }
    let first = step(
        B,
        "first refund",
        gw.refund(RefundRequest::new(&auth.provider_reference, fx.money(1_000), fx.key(B, "refund-1")?)).await,
    )?;
    check_modification(gw, B, "first refund", &first, Some(fx.money(1_000)))?;
    let second = step(
        B,
        "second refund",
        gw.refund(RefundRequest::new(&auth.provider_reference, fx.money(1_500), fx.key(B, "refund-2")?)).await,
    )?;
    check_modification(gw, B, "second refund", &second, Some(fx.money(1_500)))?;
    if settled(gw, &second) && can_retrieve(gw) {
        let view = step(B, "retrieve", gw.retrieve(&auth.provider_reference).await)?;
        ensure!(B, view.refunded == fx.money(2_500), "refunded {} after 10.00 + 15.00", view.refunded);
    }
    Ok(())
}

/// Refunding more than captured is refused as an invalid request.
pub async fn over_refund_is_refused(gw: &dyn PaymentGateway, fx: &GatewayFixture) -> Outcome {
    const B: &str = "over_refund_is_refused";
    let auth = authorize(gw, fx, B, 3_000).await?;
    let capture = step(
        B,
        "capture",
        gw.capture(CaptureRequest::new(&auth.provider_reference, fx.money(3_000), fx.key(B, "capture")?)).await,
    )?;
    check_modification(gw, B, "capture", &capture, Some(fx.money(3_000)))?;
    if !settled(gw, &capture) {
        return Ok(());
    }
    let request = RefundRequest::new(&auth.provider_reference, fx.money(3_001), fx.key(B, "refund")?);
    expect_kind(B, "refund above the captured amount", gw.refund(request).await, &[ErrorKind::InvalidRequest])
}

/// Refunding before anything was captured is an invalid state (void instead).
pub async fn refund_before_capture_is_refused(gw: &dyn PaymentGateway, fx: &GatewayFixture) -> Outcome {
    const B: &str = "refund_before_capture_is_refused";
    let auth = authorize(gw, fx, B, 3_000).await?;
    let request = RefundRequest::new(&auth.provider_reference, fx.money(1_000), fx.key(B, "refund")?);
    expect_kind(
        B,
        "refund of an uncaptured payment",
        gw.refund(request).await,
        &[ErrorKind::InvalidState, ErrorKind::InvalidRequest],
    )
}

/// A void before capture cancels the authorization; a capture afterwards is refused.
pub async fn void_before_capture(gw: &dyn PaymentGateway, fx: &GatewayFixture) -> Outcome {
    const B: &str = "void_before_capture";
    let auth = authorize(gw, fx, B, 2_000).await?;
    let void = step(B, "void", gw.void(VoidRequest::new(&auth.provider_reference, fx.key(B, "void")?)).await)?;
    check_modification(gw, B, "void", &void, None)?;
    if settled(gw, &void) {
        if can_retrieve(gw) {
            let view = step(B, "retrieve", gw.retrieve(&auth.provider_reference).await)?;
            ensure!(B, view.status == ProviderPaymentStatus::Voided, "after void retrieve shows {:?}", view.status);
        }
        let capture = CaptureRequest::new(&auth.provider_reference, fx.money(2_000), fx.key(B, "capture")?);
        expect_kind(B, "capture after void", gw.capture(capture).await, &[ErrorKind::InvalidState])?;
    }
    Ok(())
}

/// A void after capture is refused with `InvalidState`, and the message points to a refund.
pub async fn void_after_capture_is_refused(gw: &dyn PaymentGateway, fx: &GatewayFixture) -> Outcome {
    const B: &str = "void_after_capture_is_refused";
    let auth = authorize(gw, fx, B, 2_000).await?;
    let capture = step(
        B,
        "capture",
        gw.capture(CaptureRequest::new(&auth.provider_reference, fx.money(2_000), fx.key(B, "capture")?)).await,
    )?;
    check_modification(gw, B, "capture", &capture, Some(fx.money(2_000)))?;
    if !settled(gw, &capture) {
        return Ok(());
    }
    match gw.void(VoidRequest::new(&auth.provider_reference, fx.key(B, "void")?)).await {
        Ok(v) => Err(Failure { behaviour: B, message: format!("void after capture succeeded: {v:?}") }),
        Err(e) => {
            ensure!(
                B,
                e.kind() == ErrorKind::InvalidState,
                "void after capture failed with {} instead of invalid_state",
                e.kind()
            );
            ensure!(B, e.message().contains("refund"), "the error should tell the caller to refund: {e}");
            Ok(())
        }
    }
}

/// A declined payment method gives a `Declined` error with decline details.
pub async fn decline_carries_details(gw: &dyn PaymentGateway, fx: &GatewayFixture) -> Outcome {
    const B: &str = "decline_carries_details";
    let request = fx.authorize_request(gw, B, 1_000, &fx.declined_method)?;
    match gw.authorize(request).await {
        Ok(s) => Err(Failure { behaviour: B, message: format!("declined method was approved: {s:?}") }),
        Err(e) => {
            ensure!(B, e.kind() == ErrorKind::Declined, "decline reported as {} ({e})", e.kind());
            ensure!(B, e.decline().is_some(), "decline carries no details");
            Ok(())
        }
    }
}

/// The same key and request returns the first outcome and does not act twice.
pub async fn replay_returns_the_first_outcome(gw: &dyn PaymentGateway, fx: &GatewayFixture) -> Outcome {
    const B: &str = "replay_returns_the_first_outcome";
    let request = fx.authorize_request(gw, B, 1_500, &fx.approved_method)?;
    let first = step(B, "authorize", gw.authorize(request.clone()).await)?;
    let again = step(B, "replayed authorize", gw.authorize(request).await)?;
    ensure!(
        B,
        first.provider_reference == again.provider_reference,
        "replay created another payment: {} then {}",
        first.provider_reference,
        again.provider_reference
    );
    let capture = CaptureRequest::new(&first.provider_reference, fx.money(1_500), fx.key(B, "capture")?);
    let c1 = step(B, "capture", gw.capture(capture.clone()).await)?;
    let c2 = step(B, "replayed capture", gw.capture(capture).await)?;
    ensure!(B, c1 == c2, "replayed capture differs: {c1:?} then {c2:?}");
    check_modification(gw, B, "capture", &c1, Some(fx.money(1_500)))?;
    if settled(gw, &c1) && can_retrieve(gw) {
        let view = step(B, "retrieve", gw.retrieve(&first.provider_reference).await)?;
        ensure!(B, view.captured == fx.money(1_500), "a replayed capture captured twice: {}", view.captured);
    }
    Ok(())
}

/// A failure is replayed as the same failure: same kind, provider code and decline details.
pub async fn replayed_failure_stays_a_failure(gw: &dyn PaymentGateway, fx: &GatewayFixture) -> Outcome {
    const B: &str = "replayed_failure_stays_a_failure";
    let request = fx.authorize_request(gw, B, 1_000, &fx.declined_method)?;
    let first = match gw.authorize(request.clone()).await {
        Ok(s) => return Err(Failure { behaviour: B, message: format!("declined method was approved: {s:?}") }),
        Err(e) => e,
    };
    let again = match gw.authorize(request).await {
        Ok(s) => return Err(Failure { behaviour: B, message: format!("the replay of a decline was approved: {s:?}") }),
        Err(e) => e,
    };
    ensure!(B, first.kind() == ErrorKind::Declined, "the decline was reported as {}", first.kind());
    ensure!(B, again.kind() == first.kind(), "the replay failed as {} instead of {}", again.kind(), first.kind());
    ensure!(
        B,
        again.provider_code() == first.provider_code() && again.decline() == first.decline(),
        "the replay lost details: {:?}/{:?} then {:?}/{:?}",
        first.provider_code(),
        first.decline(),
        again.provider_code(),
        again.decline()
    );
    Ok(())
}

/// The same key with other parameters is an idempotency conflict.
pub async fn key_reuse_with_other_parameters_conflicts(gw: &dyn PaymentGateway, fx: &GatewayFixture) -> Outcome {
    const B: &str = "key_reuse_with_other_parameters_conflicts";
    let request = fx.authorize_request(gw, B, 1_000, &fx.approved_method)?;
    step(B, "authorize", gw.authorize(request.clone()).await)?;
    let mut other = request;
    other.amount = fx.money(1_001);
    expect_kind(
        B,
        "authorize with a reused key and another amount",
        gw.authorize(other).await,
        &[ErrorKind::IdempotencyConflict],
    )
}

/// Zero and negative amounts are refused before anything happens.
pub async fn non_positive_amounts_are_refused(gw: &dyn PaymentGateway, fx: &GatewayFixture) -> Outcome {
    const B: &str = "non_positive_amounts_are_refused";
    // Every step has its own key: an adapter may record a refusal under its key, as the contract allows.
    let mut zero = fx.authorize_request(gw, B, 0, &fx.approved_method)?;
    zero.idempotency_key = fx.key(B, "zero")?;
    expect_kind(B, "authorize of zero", gw.authorize(zero).await, &[ErrorKind::InvalidRequest])?;
    let mut negative = fx.authorize_request(gw, B, -100, &fx.approved_method)?;
    negative.idempotency_key = fx.key(B, "negative")?;
    expect_kind(B, "authorize of a negative amount", gw.authorize(negative).await, &[ErrorKind::InvalidRequest])?;
    if gw.capabilities().manual_capture {
        let auth = authorize(gw, fx, B, 1_000).await?;
        let capture = CaptureRequest::new(&auth.provider_reference, fx.money(0), fx.key(B, "capture")?);
        expect_kind(B, "capture of zero", gw.capture(capture).await, &[ErrorKind::InvalidRequest])?;
    }
    Ok(())
}

/// A capture in another currency than the payment's is refused.
pub async fn currency_mismatch_is_refused(gw: &dyn PaymentGateway, fx: &GatewayFixture) -> Outcome {
    const B: &str = "currency_mismatch_is_refused";
    let auth = authorize(gw, fx, B, 1_000).await?;
    let other = if fx.currency == Currency::JPY { Currency::EUR } else { Currency::JPY };
    let capture = CaptureRequest::new(&auth.provider_reference, Money::from_minor(500, other), fx.key(B, "capture")?);
    expect_kind(B, "capture in another currency", gw.capture(capture).await, &[ErrorKind::InvalidRequest])
}

/// Retrieving an unknown payment is `NotFound`.
pub async fn retrieve_unknown_is_not_found(gw: &dyn PaymentGateway, fx: &GatewayFixture) -> Outcome {
    const B: &str = "retrieve_unknown_is_not_found";
    let reference = format!("{}-does-not-exist", fx.run_id);
    expect_kind(B, "retrieve of an unknown payment", gw.retrieve(&reference).await, &[ErrorKind::NotFound])
}

/// Operations outside the declared capabilities fail with `Unsupported`, never pretend to succeed.
pub async fn unsupported_operations_say_so(gw: &dyn PaymentGateway, fx: &GatewayFixture) -> Outcome {
    const B: &str = "unsupported_operations_say_so";
    let caps = gw.capabilities();
    let auth = authorize(gw, fx, B, 1_000).await?;
    if !caps.retrieve {
        expect_kind(
            B,
            "retrieve without the capability",
            gw.retrieve(&auth.provider_reference).await,
            &[ErrorKind::Unsupported],
        )?;
    }
    if !caps.incremental_authorization {
        let request = IncrementRequest::new(&auth.provider_reference, fx.money(2_000), fx.key(B, "increment")?);
        expect_kind(
            B,
            "increment without the capability",
            gw.increment_authorization(request).await,
            &[ErrorKind::Unsupported],
        )?;
    }
    if !caps.tokenize {
        let data = PaymentMethodData::Card {
            number: Secret::new("4242424242424242"),
            exp_month: 12,
            exp_year: 2040,
            cvc: Secret::new("123"),
        };
        let request = TokenizeRequest::new(data, fx.key(B, "tokenize")?);
        expect_kind(B, "tokenize without the capability", gw.tokenize(request).await, &[ErrorKind::Unsupported])?;
    }
    if !caps.void {
        let request = VoidRequest::new(&auth.provider_reference, fx.key(B, "void")?);
        expect_kind(B, "void without the capability", gw.void(request).await, &[ErrorKind::Unsupported])?;
    }
    if !caps.manual_capture {
        let mut request =
            fx.authorize_request(gw, B, 1_000, &fx.approved_method)?.with_capture_method(CaptureMethod::Manual);
        request.idempotency_key = fx.key(B, "manual")?;
        expect_kind(
            B,
            "manual capture without the capability",
            gw.authorize(request).await,
            &[ErrorKind::Unsupported],
        )?;
    }
    Ok(())
}

/// Runs every behaviour the gateway's capabilities call for.
pub async fn run_all(gw: &dyn PaymentGateway, fx: &GatewayFixture) -> Report {
    let caps = gw.capabilities();
    let mut report = Report::default();
    if !caps.tenders.contains(&fx.tender) {
        report.record(
            "fixture",
            Err(Failure {
                behaviour: "fixture",
                message: format!("the gateway does not declare tender `{}`", fx.tender),
            }),
        );
        return report;
    }
    report.record("automatic_capture_captures", automatic_capture_captures(gw, fx).await);
    report.record("decline_carries_details", decline_carries_details(gw, fx).await);
    report.record("replayed_failure_stays_a_failure", replayed_failure_stays_a_failure(gw, fx).await);
    report.record("non_positive_amounts_are_refused", non_positive_amounts_are_refused(gw, fx).await);
    if caps.retrieve {
        report.record("retrieve_unknown_is_not_found", retrieve_unknown_is_not_found(gw, fx).await);
    } else {
        report.skip("retrieve_unknown_is_not_found", "no retrieve");
    }
    report.record("unsupported_operations_say_so", unsupported_operations_say_so(gw, fx).await);
    report.record("key_reuse_with_other_parameters_conflicts", key_reuse_with_other_parameters_conflicts(gw, fx).await);
    if !caps.manual_capture {
        for b in [
            "authorize_then_capture_in_full",
            "replay_returns_the_first_outcome",
            "over_capture_is_refused",
            "currency_mismatch_is_refused",
            "refund_before_capture_is_refused",
            "over_refund_is_refused",
            "capture_in_parts",
            "refund_in_parts",
            "void_before_capture",
            "void_after_capture_is_refused",
        ] {
            report.skip(b, "no manual_capture");
        }
        return report;
    }
    report.record("authorize_then_capture_in_full", authorize_then_capture_in_full(gw, fx).await);
    report.record("replay_returns_the_first_outcome", replay_returns_the_first_outcome(gw, fx).await);
    report.record("over_capture_is_refused", over_capture_is_refused(gw, fx).await);
    report.record("currency_mismatch_is_refused", currency_mismatch_is_refused(gw, fx).await);
    report.record("refund_before_capture_is_refused", refund_before_capture_is_refused(gw, fx).await);
    report.record("over_refund_is_refused", over_refund_is_refused(gw, fx).await);
    if caps.partial_capture && caps.multiple_captures {
        report.record("capture_in_parts", capture_in_parts(gw, fx).await);
    } else {
        report.skip("capture_in_parts", "no partial_capture + multiple_captures");
    }
    if caps.partial_refund && caps.multiple_refunds {
        report.record("refund_in_parts", refund_in_parts(gw, fx).await);
    } else {
        report.skip("refund_in_parts", "no partial_refund + multiple_refunds");
    }
    if caps.void {
        report.record("void_before_capture", void_before_capture(gw, fx).await);
        report.record("void_after_capture_is_refused", void_after_capture_is_refused(gw, fx).await);
    } else {
        report.skip("void_before_capture", "no void");
        report.skip("void_after_capture_is_refused", "no void");
    }
    report
}
