//! A loopback simulator of the Adyen APIs a gateway and a terminal adapter use: Checkout v71 payments and
//! modifications, signed notifications, and the cloud Terminal API (`/sync`).
//!
//! [`AdyenSimulator::start`] binds `127.0.0.1:0`, serves HTTP/1.1 and returns; [`AdyenSimulator::base_url`]
//! is what the adapter gets as its Checkout base URL (the simulator serves `/v71/...` under it) and as its
//! Terminal API base URL (`/sync`). The server stops when the simulator is dropped.
//!
//! # Wire format and endpoints
//! JSON bodies; every request needs `X-API-Key: <api key>` (otherwise 401 `{"status":401,"errorCode":"000",
//! "message":"HTTP Status Response - Unauthorized","errorType":"security"}`). Checkout errors use Adyen's shape
//! `{"status","errorCode","message","errorType":"validation","pspReference"}`.
//!
//! | endpoint | behaviour |
//! | --- | --- |
//! | `POST /v71/payments` | `amount{currency,value}`, `reference`, `paymentMethod`, `merchantAccount`; `additionalData.manualCapture: "true"` authorises only, otherwise the payment is captured at once. 200 with `pspReference` and `resultCode` (see test payment methods); an `AUTHORISATION` notification follows |
//! | `POST /v71/payments/{psp}/captures` | `amount` <= authorised minus captured minus pending captures; 201 `status: "received"`; `CAPTURE` notification on settlement |
//! | `POST /v71/payments/{psp}/refunds` | `amount` <= captured (pending captures included) minus refunds; 201 `received`; `REFUND` notification |
//! | `POST /v71/payments/{psp}/cancels` | before any capture; 201 `received`; `CANCELLATION` notification |
//! | `POST /v71/payments/{psp}/reversals` | cancel or refund; 201 `received`; `CANCEL_OR_REFUND` with `modification.action` |
//! | `POST /sync` | Terminal API: `PaymentRequest`, `ReversalRequest`, `TransactionStatusRequest`, `AbortRequest` |
//!
//! Test payment methods (the `storedPaymentMethodId`, or any string inside the `paymentMethod` object), named
//! like the Stripe simulator's so one test vocabulary works: anything containing `chargeDeclinedInsufficientFunds`
//! is `Refused` with `refusalReason` "Not enough balance" / `refusalReasonCode` "12"; containing
//! `chargeDeclined` or `refused`: `Refused`, "Refused" / "2"; `threeDSecureRequired`: `RedirectShopper`;
//! `pending`: `Received`; `processingError`: `Error` ("Acquirer Error"); anything else: `Authorised`.
//!
//! Modification checks happen at request time (422 `validation`, nothing stored as pending): unknown
//! pspReference `167`; missing or non-positive amount `100`; another currency or more than remains `137`;
//! a capture or cancel of a cancelled or refused payment, a refund of an uncaptured payment, a cancel of a
//! captured payment: `010` "Not allowed". These codes are the simulator's choice modelled on Adyen's list;
//! Adyen itself accepts some of these and reports the failure later by notification.
//!
//! # Asynchronous modifications and notifications
//! Accepted modifications are pending until [`settle`](AdyenSimulator::settle) (also run by
//! [`take_webhooks`](AdyenSimulator::take_webhooks)) applies them and queues their notifications.
//! [`fail_next_modification`](AdyenSimulator::fail_next_modification) makes the next settled modification fail
//! (`success: "false"`, nothing applied). Each notification is one [`Delivery`] with one item, signed per item
//! with the HMAC key ([`hmac_key`](AdyenSimulator::hmac_key), hex) the way Adyen signs. Immediate captures send
//! no `CAPTURE` notification (as at Adyen by default).
//!
//! # Idempotency
//! A Checkout POST's `Idempotency-Key` (at most 64 characters, else 422 `702`) stores the answer (status and
//! body, refusals at execution included) and replays it for the same path and the same JSON body; the same key
//! with another path or body is 422 `704`; a key whose first request is still running is 409 `704` "request
//! already processed or in progress". Requests refused before execution (authentication, unparsable JSON,
//! faults injected before processing) store nothing. The Terminal API has no idempotency key.
//!
//! # Terminal API
//! Messages need `MessageHeader` with `ProtocolVersion` `3.0`, `MessageClass` `Service`, a `ServiceID` of 1-10
//! characters, `SaleID` and `POIID`; otherwise the answer is an `EventNotification` `Reject`. A payment is
//! approved with `POITransactionID.TransactionID` `<tender>.<pspReference>`, brand `visa`, masked PAN
//! `411111******1111`, entry mode `Contactless`, and `AuthorizedAmount` equal to `RequestedAmount` (read and
//! written as exact decimal text). A `ServiceID` used before on the same `SaleID` is rejected. Status looks the
//! payment up by `MessageReference` (`SaleID`, `ServiceID`): `NotFound`, `InProgress`, or the repeated
//! `PaymentResponse` (its `SaleData` echoes the payment's `SaleTransactionID`), under a `RepeatedMessageResponse`
//! `MessageHeader` naming the asked `ServiceID`; [`answer_status_with`](AdyenSimulator::answer_status_with)
//! makes it repeat another payment instead, as a `ServiceID` collision would. Reversals refund at most the
//! approved amount. An abort of a payment in progress (held by [`Fault::Latency`]) makes it answer `Failure` /
//! `Aborted`; an abort answers 200 with an empty body.
//!
//! # Deviations from Adyen
//! No 3-D Secure flow beyond the `RedirectShopper` answer, no `/payments/details`, no partial authorisation, no
//! capture delay, no account-level settings; modifications settle only when told to; terminal refunds send no
//! notification; no encrypted local Terminal API.
//!
//! # Faults
//! [`inject`](AdyenSimulator::inject) queues a [`Fault`] for the next request, and
//! [`inject_on`](AdyenSimulator::inject_on) for the next request whose path contains a fragment (`"/captures"`,
//! `"/sync"`). Each queued fault is used once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use commerce_ports::{Currency, Money};
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::webhooks::{Delivery, DeliveryPlan};

/// The API key the simulator accepts unless told otherwise.
pub const DEFAULT_API_KEY: &str = "adyen_test_simulator_key";

/// The notification HMAC key (hex) the simulator signs with unless told otherwise.
pub const DEFAULT_HMAC_KEY: &str = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056";

/// The longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 64;

/// A fault the simulator injects into one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Wait this long before processing (the idempotency key is in flight meanwhile; a terminal payment is in
    /// progress and can be aborted).
    Latency(Duration),
    /// Process the request, then hold the response this long (longer than the client's timeout).
    TimeoutAfterProcessing(Duration),
    /// Process the request, then close the connection without answering.
    DropAfterProcessing,
    /// Answer this 5xx status before processing (nothing happens, nothing is stored).
    Unavailable {
        /// The HTTP status (500-599).
        status: u16,
    },
    /// Close the connection before reading or processing the request.
    ConnectionReset,
    /// Process the request, then answer 200 with a body that is not JSON.
    MalformedBody,
    /// Process a `/payments` request, then answer with a `resultCode` no client knows (the stored answer keeps
    /// the real one).
    UnknownResultCode,
    /// Terminal API: decline the payment (`Failure` / `Refusal`, `refusalReason=05`).
    Decline,
}

/// A response before it is turned into HTTP.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    body: String,
    idempotency_key: Option<String>,
}

impl Answer {
    fn json(status: u16, body: &Value) -> Answer {
        Answer { status, body: body.to_string(), idempotency_key: None }
    }
}

/// An Adyen error answer and whether it was refused before execution (then it is not stored).
#[derive(Debug)]
struct Refusal {
    answer: Answer,
    before_execution: bool,
}

fn adyen_error(status: u16, code: &str, message: &str, error_type: &str) -> Answer {
    Answer::json(status, &json!({ "status": status, "errorCode": code, "message": message, "errorType": error_type }))
}

fn validation(code: &str, message: &str) -> Refusal {
    Refusal { answer: adyen_error(422, code, message, "validation"), before_execution: false }
}

fn malformed(message: &str) -> Refusal {
    Refusal { answer: adyen_error(422, "702", message, "validation"), before_execution: true }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ModificationKind {
    Capture,
    Refund,
    Cancel,
    Reversal,
}

#[derive(Debug, Clone)]
struct Payment {
    psp: String,
    merchant_account: String,
    reference: String,
    currency: Currency,
    authorised: i64,
    captured: i64,
    pending_captures: i64,
    refunded: i64,
    pending_refunds: i64,
    cancelled: bool,
    pending_cancel: bool,
    approved: bool,
}

#[derive(Debug, Clone)]
struct PendingModification {
    kind: ModificationKind,
    payment: String,
    psp: String,
    amount: Option<i64>,
    reference: String,
}

#[derive(Debug)]
struct KeyEntry {
    path: String,
    body: Value,
    /// `None` while the first request is still running.
    answer: Option<Answer>,
}

#[derive(Debug, Clone)]
struct TerminalPayment {
    poi_id: String,
    transaction_id: String,
    currency: Currency,
    approved: i64,
    reversed: i64,
    /// The `PaymentResponse` JSON text, with exact amounts.
    response: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    payments: HashMap<String, Payment>,
    keys: HashMap<String, KeyEntry>,
    pending: Vec<PendingModification>,
    deliveries: Vec<Delivery>,
    faults: VecDeque<(Option<String>, Fault)>,
    processed: Vec<String>,
    fail_next: bool,
    /// Terminal payments by (`SaleID`, `ServiceID`).
    terminal: HashMap<(String, String), TerminalPayment>,
    aborted: HashSet<(String, String)>,
    /// Status lookups of (`SaleID`, `ServiceID`) answered with the payment stored under another `ServiceID`.
    status_aliases: HashMap<(String, String), String>,
    /// Reversals by (`SaleID`, `ServiceID`): a `ServiceID` is used once.
    reversals: HashSet<(String, String)>,
    next_id: u64,
}

impl State {
    fn psp(&mut self) -> String {
        self.next_id = self.next_id.saturating_add(1);
        format!("88{:014}", self.next_id)
    }
}

/// The merchant account the simulator names in notifications of terminal payments (Terminal API requests
/// carry none; the terminal belongs to one).
const TERMINAL_MERCHANT_ACCOUNT: &str = "SimulatorPOS";

#[derive(Debug)]
struct Shared {
    api_key: String,
    hmac_key: String,
    state: Mutex<State>,
    requests: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running loopback Adyen simulator. See the [module docs](self) for what it speaks.
#[derive(Debug)]
pub struct AdyenSimulator {
    shared: Arc<Shared>,
    base_url: String,
    server: JoinHandle<()>,
}

impl AdyenSimulator {
    /// Starts a simulator accepting [`DEFAULT_API_KEY`] and signing with [`DEFAULT_HMAC_KEY`].
    ///
    /// # Errors
    /// When `127.0.0.1:0` cannot be bound.
    pub async fn start() -> std::io::Result<AdyenSimulator> {
        AdyenSimulator::start_with(DEFAULT_API_KEY, DEFAULT_HMAC_KEY).await
    }

    /// Starts a simulator accepting `api_key` in `X-API-Key` and signing notifications with `hmac_key_hex`.
    ///
    /// # Errors
    /// When `127.0.0.1:0` cannot be bound, or the HMAC key is not hex.
    pub async fn start_with(
        api_key: impl Into<String>,
        hmac_key_hex: impl Into<String>,
    ) -> std::io::Result<AdyenSimulator> {
        let hmac_key = hmac_key_hex.into();
        if hex::decode(&hmac_key).map(|k| k.is_empty()).unwrap_or(true) {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "the HMAC key must be non-empty hex"));
        }
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            api_key: api_key.into(),
            hmac_key,
            state: Mutex::new(State::default()),
            requests: AtomicU64::new(0),
        });
        let server = tokio::spawn(super::serve(listener, Arc::clone(&shared), handle));
        Ok(AdyenSimulator { shared, base_url: format!("http://{addr}"), server })
    }

    /// The base URL to give the adapter, for Checkout and for the Terminal API (`http://127.0.0.1:<port>`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The API key the simulator accepts.
    pub fn api_key(&self) -> &str {
        &self.shared.api_key
    }

    /// The notification HMAC key, hex.
    pub fn hmac_key(&self) -> &str {
        &self.shared.hmac_key
    }

    /// Queues a fault for the next request.
    pub fn inject(&self, fault: Fault) {
        self.shared.lock().faults.push_back((None, fault));
    }

    /// Queues a fault for the next request whose path contains `path_fragment`.
    pub fn inject_on(&self, path_fragment: impl Into<String>, fault: Fault) {
        self.shared.lock().faults.push_back((Some(path_fragment.into()), fault));
    }

    /// Makes the next modification that settles fail (`success: "false"`, nothing applied).
    pub fn fail_next_modification(&self) {
        self.shared.lock().fail_next = true;
    }

    /// Applies every pending modification and queues its notification. Returns how many settled.
    pub fn settle(&self) -> usize {
        let mut state = self.shared.lock();
        settle(&mut state, &self.shared.hmac_key)
    }

    /// Settles pending modifications, then hands out every queued notification according to `plan`.
    pub fn take_webhooks(&self, plan: DeliveryPlan) -> Vec<Delivery> {
        let mut state = self.shared.lock();
        settle(&mut state, &self.shared.hmac_key);
        plan.apply(std::mem::take(&mut state.deliveries))
    }

    /// Modifications accepted and not settled yet.
    pub fn pending_modifications(&self) -> usize {
        self.shared.lock().pending.len()
    }

    /// Makes every later status lookup of `service_id` on `sale_id` find the terminal payment stored under
    /// `other_service_id` instead, as if two sale references had derived the same `ServiceID`: the repeated
    /// `MessageHeader` names the asked `service_id`, and the repeated `PaymentResponse` is the other payment's,
    /// its `SaleData.SaleTransactionID` (the other sale's reference) included. When no payment is stored under
    /// `other_service_id` the lookup answers `NotFound`.
    pub fn answer_status_with(
        &self,
        sale_id: impl Into<String>,
        service_id: impl Into<String>,
        other_service_id: impl Into<String>,
    ) {
        self.shared.lock().status_aliases.insert((sale_id.into(), service_id.into()), other_service_id.into());
    }

    /// Captured and refunded minor units of a payment (settled modifications only), if it exists.
    pub fn payment_totals(&self, psp_reference: &str) -> Option<(i64, i64)> {
        self.shared.lock().payments.get(psp_reference).map(|p| (p.captured, p.refunded))
    }

    /// How many POST requests the simulator executed (state-changing calls, including refusals at execution).
    /// Replays, requests refused before execution and faults injected before processing are not counted.
    pub fn processed_calls(&self) -> usize {
        self.shared.lock().processed.len()
    }

    /// How many executed requests had a path containing `path_fragment`.
    pub fn processed_calls_on(&self, path_fragment: &str) -> usize {
        self.shared.lock().processed.iter().filter(|p| p.contains(path_fragment)).count()
    }

    /// How many Checkout payments exist (approved or refused).
    pub fn payment_count(&self) -> usize {
        self.shared.lock().payments.len()
    }

    /// How many HTTP requests arrived at all.
    pub fn requests_received(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Stops the server.
    pub fn shutdown(self) {}
}

impl Drop for AdyenSimulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn http_response(answer: Answer) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = Response::builder().status(status).header("content-type", "application/json");
    if let Some(key) = answer.idempotency_key.filter(|k| http::HeaderValue::from_str(k).is_ok()) {
        builder = builder.header("idempotency-key", key);
    }
    builder.body(Full::new(Bytes::from(answer.body))).unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn dropped() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected fault: connection dropped")
}

async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, std::io::Error> {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let api_key = header("x-api-key");
    let idempotency_key = header("idempotency-key");

    let fault = super::take_fault(&mut shared.lock().faults, &path);
    match fault {
        Some(Fault::ConnectionReset) => return Err(dropped()),
        Some(Fault::Unavailable { status }) => {
            return Ok(http_response(adyen_error(status, "901", "The service is temporarily unavailable", "internal")));
        }
        _ => {}
    }
    if api_key.as_deref() != Some(shared.api_key.as_str()) {
        return Ok(http_response(adyen_error(401, "000", "HTTP Status Response - Unauthorized", "security")));
    }
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Err(dropped()),
    };
    if method != Method::POST {
        return Ok(http_response(adyen_error(405, "000", "Method not allowed", "validation")));
    }
    // Processing runs detached: a client that goes away (a timeout) must not cancel it half-way.
    let processing = if path == "/sync" {
        tokio::spawn(terminal(Arc::clone(&shared), fault, body))
    } else {
        tokio::spawn(checkout(Arc::clone(&shared), fault, path, body, idempotency_key))
    };
    let answer = match processing.await {
        Ok(Processed::Early(answer)) => return Ok(http_response(answer)),
        Ok(Processed::Done(answer)) => answer,
        Err(_) => return Err(std::io::Error::other("simulator: processing task failed")),
    };
    match fault {
        Some(Fault::TimeoutAfterProcessing(hold)) => {
            tokio::time::sleep(hold).await;
            Ok(http_response(answer))
        }
        Some(Fault::DropAfterProcessing) => Err(dropped()),
        Some(Fault::MalformedBody) => Ok(http_response(Answer { status: 200, body: "{\"pspRef".to_owned(), ..answer })),
        Some(Fault::UnknownResultCode) if answer.body.contains("\"resultCode\"") => {
            let mut body: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
            if let Some(object) = body.as_object_mut() {
                object.insert("resultCode".to_owned(), json!("SimulatorUnknownResult"));
            }
            Ok(http_response(Answer { body: body.to_string(), ..answer }))
        }
        _ => Ok(http_response(answer)),
    }
}

enum Processed {
    /// Sent as it is (an idempotency conflict or a key in use).
    Early(Answer),
    /// Processed or replayed; output faults apply.
    Done(Answer),
}

async fn checkout(
    shared: Arc<Shared>,
    fault: Option<Fault>,
    path: String,
    body: Bytes,
    key: Option<String>,
) -> Processed {
    let parsed: Result<Value, _> = serde_json::from_slice(&body);
    let Ok(body) = parsed else {
        return Processed::Early(malformed("Unable to parse the request body as JSON").answer);
    };
    if let Some(key) = &key {
        if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN {
            return Processed::Early(malformed("Idempotency-Key must be 1 to 64 characters").answer);
        }
        let early = idempotency_check(&mut shared.lock(), key, &path, &body);
        if let Some(early) = early {
            return early;
        }
    }
    if let Some(Fault::Latency(delay)) = fault {
        tokio::time::sleep(delay).await;
    }
    let mut state = shared.lock();
    let outcome = route(&mut state, &path, &body, &shared.hmac_key);
    let (mut answer, store) = match outcome {
        Ok(answer) => (answer, true),
        Err(refusal) => (refusal.answer, !refusal.before_execution),
    };
    if store {
        state.processed.push(path.clone());
    }
    if let Some(key) = &key {
        answer.idempotency_key = Some(key.clone());
        if store {
            if let Some(entry) = state.keys.get_mut(key) {
                entry.answer = Some(answer.clone());
            }
        } else {
            state.keys.remove(key);
        }
    }
    Processed::Done(answer)
}

/// Adyen's idempotency rules for a POST with `key`: an early answer (conflict, in flight, replay) or `None`
/// after marking the key in flight.
fn idempotency_check(state: &mut State, key: &str, path: &str, body: &Value) -> Option<Processed> {
    match state.keys.get(key) {
        Some(entry) if entry.path != path || &entry.body != body => Some(Processed::Early(adyen_error(
            422,
            "704",
            "request already processed or in progress: the Idempotency-Key was used with another request",
            "validation",
        ))),
        Some(KeyEntry { answer: None, .. }) => {
            Some(Processed::Early(adyen_error(409, "704", "request already processed or in progress", "validation")))
        }
        Some(KeyEntry { answer: Some(answer), .. }) => Some(Processed::Done(answer.clone())),
        None => {
            state.keys.insert(key.to_owned(), KeyEntry { path: path.to_owned(), body: body.clone(), answer: None });
            None
        }
    }
}

fn route(state: &mut State, path: &str, body: &Value, hmac_key: &str) -> Result<Answer, Refusal> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["v71", "payments"] => payment(state, body, hmac_key),
        ["v71", "payments", psp, "captures"] => modification(state, psp, body, ModificationKind::Capture),
        ["v71", "payments", psp, "refunds"] => modification(state, psp, body, ModificationKind::Refund),
        ["v71", "payments", psp, "cancels"] => modification(state, psp, body, ModificationKind::Cancel),
        ["v71", "payments", psp, "reversals"] => modification(state, psp, body, ModificationKind::Reversal),
        _ => Err(Refusal {
            answer: adyen_error(404, "000", &format!("Unknown endpoint {path}"), "validation"),
            before_execution: true,
        }),
    }
}

fn text<'a>(body: &'a Value, field: &str) -> Option<&'a str> {
    body.get(field).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// `amount{currency,value}`: a positive amount in a known currency.
fn amount(body: &Value) -> Result<(Currency, i64), Refusal> {
    let amount = body.get("amount").ok_or_else(|| validation("100", "No amount specified"))?;
    let currency = amount
        .get("currency")
        .and_then(Value::as_str)
        .and_then(|c| Currency::from_code(c).ok())
        .ok_or_else(|| validation("137", "Invalid amount specified: unknown currency"))?;
    let value = amount.get("value").and_then(Value::as_i64).filter(|v| *v > 0);
    let value = value.ok_or_else(|| validation("137", "Invalid amount specified: value must be positive"))?;
    Ok((currency, value))
}

/// The test outcome a payment method asks for.
fn test_outcome(method: &Value) -> (&'static str, Option<(&'static str, &'static str)>) {
    let mut names = Vec::new();
    if let Some(object) = method.as_object() {
        names.extend(object.values().filter_map(Value::as_str));
    }
    let has = |needle: &str| names.iter().any(|n| n.contains(needle));
    if has("chargeDeclinedInsufficientFunds") {
        ("Refused", Some(("Not enough balance", "12")))
    } else if has("chargeDeclined") || has("refused") {
        ("Refused", Some(("Refused", "2")))
    } else if has("threeDSecureRequired") {
        ("RedirectShopper", None)
    } else if has("pending") {
        ("Received", None)
    } else if has("processingError") {
        ("Error", Some(("Acquirer Error", "4")))
    } else {
        ("Authorised", None)
    }
}

fn payment(state: &mut State, body: &Value, hmac_key: &str) -> Result<Answer, Refusal> {
    let (currency, value) = amount(body)?;
    let merchant = text(body, "merchantAccount").ok_or_else(|| validation("702", "Required field merchantAccount"))?;
    let reference = text(body, "reference").ok_or_else(|| validation("702", "Required field reference"))?;
    let method = body.get("paymentMethod").filter(|m| m.get("type").is_some());
    let method = method.ok_or_else(|| validation("702", "Required field paymentMethod.type"))?;
    let manual = body.pointer("/additionalData/manualCapture").and_then(Value::as_str) == Some("true");
    let psp = state.psp();
    let (result_code, refusal) = test_outcome(method);
    let approved = result_code == "Authorised";
    let captured = if approved && !manual { value } else { 0 };
    let record = Payment {
        psp: psp.clone(),
        merchant_account: merchant.to_owned(),
        reference: reference.to_owned(),
        currency,
        authorised: if approved { value } else { 0 },
        captured,
        pending_captures: 0,
        refunded: 0,
        pending_refunds: 0,
        cancelled: false,
        pending_cancel: false,
        approved,
    };
    let mut answer = json!({
        "pspReference": psp,
        "resultCode": result_code,
        "merchantReference": reference,
        "amount": { "currency": currency.code(), "value": value },
        "additionalData": {},
    });
    if let Some((reason, code)) = refusal {
        answer["refusalReason"] = json!(reason);
        answer["refusalReasonCode"] = json!(code);
        if code == "12" {
            answer["additionalData"]["refusalReasonRaw"] = json!("51 : Insufficient funds");
        }
    }
    if result_code == "RedirectShopper" {
        answer["action"] = json!({ "type": "redirect", "url": "https://simulator.invalid/3ds", "method": "GET" });
    }
    if matches!(result_code, "Authorised" | "Refused") {
        let notification = Notification {
            psp: &psp,
            original: "",
            merchant,
            merchant_reference: reference,
            currency,
            value,
            event_code: "AUTHORISATION",
            success: approved,
            reason: refusal.map(|(r, _)| r).unwrap_or(""),
            action: None,
        };
        let delivery = notification.delivery(hmac_key);
        state.deliveries.push(delivery);
    }
    state.payments.insert(psp, record);
    Ok(Answer::json(200, &answer))
}

fn not_allowed(message: &str) -> Refusal {
    validation("010", &format!("Not allowed: {message}"))
}

fn modification(state: &mut State, psp: &str, body: &Value, kind: ModificationKind) -> Result<Answer, Refusal> {
    let merchant = text(body, "merchantAccount").ok_or_else(|| validation("702", "Required field merchantAccount"))?;
    let reference = text(body, "reference").unwrap_or_default().to_owned();
    let requested = match kind {
        ModificationKind::Capture | ModificationKind::Refund => Some(amount(body)?),
        ModificationKind::Cancel | ModificationKind::Reversal => None,
    };
    let modification_psp = state.psp();
    let payment = state
        .payments
        .get_mut(psp)
        .ok_or_else(|| validation("167", "Original pspReference required for this operation"))?;
    if let Some((currency, _)) = requested
        && currency != payment.currency
    {
        return Err(validation(
            "137",
            &format!("Invalid amount specified: currency {currency} differs from the payment's {}", payment.currency),
        ));
    }
    let value = requested.map(|(_, v)| v);
    if !payment.approved {
        return Err(not_allowed("the payment was not authorised"));
    }
    let captured = payment.captured.saturating_add(payment.pending_captures);
    let refunded = payment.refunded.saturating_add(payment.pending_refunds);
    match (kind, value) {
        (ModificationKind::Capture, Some(value)) => {
            if payment.cancelled || payment.pending_cancel {
                return Err(not_allowed("the payment is cancelled"));
            }
            let remaining = payment.authorised.saturating_sub(captured);
            if value > remaining {
                return Err(validation(
                    "137",
                    &format!("Invalid amount specified: capture of {value} exceeds the {remaining} that remains"),
                ));
            }
            payment.pending_captures = payment.pending_captures.saturating_add(value);
        }
        (ModificationKind::Refund, Some(value)) => {
            if captured == 0 {
                return Err(not_allowed("nothing is captured; cancel the payment instead"));
            }
            let remaining = captured.saturating_sub(refunded);
            if value > remaining {
                return Err(validation(
                    "137",
                    &format!(
                        "Invalid amount specified: refund of {value} exceeds the {remaining} captured and not refunded"
                    ),
                ));
            }
            payment.pending_refunds = payment.pending_refunds.saturating_add(value);
        }
        (ModificationKind::Cancel, _) => {
            if captured > 0 {
                return Err(not_allowed("the payment is captured; refund it instead"));
            }
            if payment.cancelled {
                return Err(not_allowed("the payment is already cancelled"));
            }
            payment.pending_cancel = true;
        }
        _ => {}
    }
    let mut answer = json!({
        "merchantAccount": merchant,
        "paymentPspReference": psp,
        "pspReference": modification_psp,
        "reference": reference,
        "status": "received",
    });
    if let Some(value) = value {
        answer["amount"] = json!({ "currency": payment.currency.code(), "value": value });
    }
    state.pending.push(PendingModification {
        kind,
        payment: psp.to_owned(),
        psp: modification_psp,
        amount: value,
        reference,
    });
    Ok(Answer::json(201, &answer))
}

/// Applies pending modifications in order and queues their notifications.
fn settle(state: &mut State, hmac_key: &str) -> usize {
    let pending = std::mem::take(&mut state.pending);
    let count = pending.len();
    for modification in pending {
        let fail = std::mem::take(&mut state.fail_next);
        let Some(payment) = state.payments.get_mut(&modification.payment) else { continue };
        let value = modification.amount.unwrap_or(payment.authorised);
        let mut action = None;
        let event_code = match modification.kind {
            ModificationKind::Capture => {
                payment.pending_captures = payment.pending_captures.saturating_sub(value);
                if !fail {
                    payment.captured = payment.captured.saturating_add(value);
                }
                "CAPTURE"
            }
            ModificationKind::Refund => {
                payment.pending_refunds = payment.pending_refunds.saturating_sub(value);
                if !fail {
                    payment.refunded = payment.refunded.saturating_add(value);
                }
                "REFUND"
            }
            ModificationKind::Cancel => {
                payment.pending_cancel = false;
                payment.cancelled |= !fail;
                "CANCELLATION"
            }
            ModificationKind::Reversal => {
                if payment.captured > 0 {
                    action = Some("refund");
                    if !fail {
                        payment.refunded = payment.captured;
                    }
                } else {
                    action = Some("cancel");
                    payment.cancelled |= !fail;
                }
                "CANCEL_OR_REFUND"
            }
        };
        let value = match modification.kind {
            ModificationKind::Reversal if action == Some("refund") => payment.captured,
            _ => value,
        };
        let payment = payment.clone();
        let reference = if modification.reference.is_empty() { &payment.reference } else { &modification.reference };
        let notification = Notification {
            psp: &modification.psp,
            original: &payment.psp,
            merchant: &payment.merchant_account,
            merchant_reference: reference,
            currency: payment.currency,
            value,
            event_code,
            success: !fail,
            reason: if fail { "Modification refused by the simulator" } else { "" },
            action,
        };
        let delivery = notification.delivery(hmac_key);
        state.deliveries.push(delivery);
    }
    count
}

/// One notification item to sign and deliver.
struct Notification<'a> {
    psp: &'a str,
    original: &'a str,
    merchant: &'a str,
    merchant_reference: &'a str,
    currency: Currency,
    value: i64,
    event_code: &'a str,
    success: bool,
    reason: &'a str,
    action: Option<&'a str>,
}

impl Notification<'_> {
    fn delivery(&self, hmac_key: &str) -> Delivery {
        let success = if self.success { "true" } else { "false" };
        let signing = format!(
            "{}:{}:{}:{}:{}:{}:{}:{}",
            self.psp,
            self.original,
            self.merchant,
            self.merchant_reference,
            self.value,
            self.currency.code(),
            self.event_code,
            success
        );
        let mut additional = json!({ "hmacSignature": sign(hmac_key, &signing) });
        if let Some(action) = self.action {
            additional["modification.action"] = json!(action);
        }
        let mut item = json!({
            "additionalData": additional,
            "amount": { "currency": self.currency.code(), "value": self.value },
            "eventCode": self.event_code,
            "eventDate": time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            "merchantAccountCode": self.merchant,
            "merchantReference": self.merchant_reference,
            "pspReference": self.psp,
            "reason": self.reason,
            "success": success,
        });
        if !self.original.is_empty() {
            item["originalReference"] = json!(self.original);
        }
        let body = json!({ "live": "false", "notificationItems": [{ "NotificationRequestItem": item }] });
        Delivery {
            event_id: format!("{}:{}:{success}", self.psp, self.event_code),
            event_type: self.event_code.to_owned(),
            headers: vec![("Content-Type".to_owned(), "application/json".to_owned())],
            body: Bytes::from(body.to_string()),
        }
    }
}

/// Base64 HMAC-SHA256 of `data` keyed with the hex-decoded key.
fn sign(key_hex: &str, data: &str) -> String {
    let key = hex::decode(key_hex).unwrap_or_default();
    match Hmac::<Sha256>::new_from_slice(&key) {
        Ok(mut mac) => {
            mac.update(data.as_bytes());
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

// ------------------------------------------------------------------------------------------------------------
// Terminal API
// ------------------------------------------------------------------------------------------------------------

/// The raw JSON number text after `"key":` (amounts are read exactly, never through `f64`).
fn raw_number(body: &str, key: &str) -> Option<String> {
    let needle = format!("\"{key}\"");
    let start = body.find(&needle)?.checked_add(needle.len())?;
    let rest = body.get(start..)?.trim_start().strip_prefix(':')?.trim_start();
    let number: String =
        rest.chars().take_while(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')).collect();
    if number.is_empty() { None } else { Some(number) }
}

/// An exact amount from a raw number in major units of `currency`.
fn major_units(raw: &str, currency: Currency) -> Option<Money> {
    let value = rust_decimal::Decimal::from_str(raw).or_else(|_| rust_decimal::Decimal::from_scientific(raw)).ok()?;
    Money::from_decimal(value, currency).ok().filter(Money::is_positive)
}

/// Serializes `value` and replaces each string `"@@NAME@@"` by raw JSON text (exact numbers, stored bodies).
fn splice(value: &Value, replacements: &[(&str, &str)]) -> String {
    let mut text = value.to_string();
    for (name, raw) in replacements {
        text = text.replace(&format!("\"@@{name}@@\""), raw);
    }
    text
}

fn reject(message: &str) -> Answer {
    let details = format!("message={}", message.replace(' ', "+"));
    Answer::json(
        200,
        &json!({ "SaleToPOIRequest": { "MessageHeader": { "MessageCategory": "Event", "MessageClass": "Event",
            "MessageType": "Notification", "ProtocolVersion": "3.0" },
            "EventNotification": { "EventToNotify": "Reject", "EventDetails": details } } }),
    )
}

fn response_header(header: &Value) -> Value {
    let mut header = header.clone();
    header["MessageType"] = json!("Response");
    header
}

fn failure(condition: &str, message: &str) -> Value {
    json!({ "Result": "Failure", "ErrorCondition": condition,
            "AdditionalResponse": format!("message={}", message.replace(' ', "%20")) })
}

async fn terminal(shared: Arc<Shared>, fault: Option<Fault>, body: Bytes) -> Processed {
    let text = String::from_utf8_lossy(&body).into_owned();
    let Ok(parsed) = serde_json::from_str::<Value>(&text) else {
        return Processed::Done(reject("Invalid JSON"));
    };
    let Some(message) = parsed.get("SaleToPOIRequest") else {
        return Processed::Done(reject("No SaleToPOIRequest"));
    };
    let header = message.get("MessageHeader").cloned().unwrap_or(Value::Null);
    let field = |name: &str| header.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
    let (service_id, sale_id, poi_id) = (field("ServiceID"), field("SaleID"), field("POIID"));
    if field("ProtocolVersion") != "3.0"
        || field("MessageClass") != "Service"
        || service_id.is_empty()
        || service_id.chars().count() > 10
        || sale_id.is_empty()
        || poi_id.is_empty()
    {
        return Processed::Done(reject(
            "MessageHeader: ProtocolVersion 3.0, MessageClass Service, ServiceID (1-10), SaleID and POIID are required",
        ));
    }
    shared.lock().processed.push("/sync".to_owned());
    let answer = if let Some(request) = message.get("PaymentRequest") {
        terminal_payment(&shared, fault, &header, request, &text, (sale_id, service_id, poi_id)).await
    } else if let Some(request) = message.get("TransactionStatusRequest") {
        terminal_status(&shared, &header, request)
    } else if let Some(request) = message.get("ReversalRequest") {
        terminal_reversal(&shared, &header, request, &text, (sale_id, service_id))
    } else if let Some(request) = message.get("AbortRequest") {
        let reference = request.get("MessageReference").cloned().unwrap_or(Value::Null);
        let target = |name: &str| reference.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
        shared.lock().aborted.insert((target("SaleID"), target("ServiceID")));
        Answer { status: 200, body: String::new(), idempotency_key: None }
    } else {
        reject("Unsupported message")
    };
    Processed::Done(answer)
}

async fn terminal_payment(
    shared: &Shared,
    fault: Option<Fault>,
    header: &Value,
    request: &Value,
    text: &str,
    (sale_id, service_id, poi_id): (String, String, String),
) -> Answer {
    let amounts = request.pointer("/PaymentTransaction/AmountsReq");
    let currency =
        amounts.and_then(|a| a.get("Currency")).and_then(Value::as_str).and_then(|c| Currency::from_code(c).ok());
    let raw = raw_number(text, "RequestedAmount");
    let (Some(currency), Some(raw)) = (currency, raw) else {
        return reject("AmountsReq needs Currency and RequestedAmount");
    };
    let Some(amount) = major_units(&raw, currency) else {
        return reject("RequestedAmount is not a positive amount with the currency's decimals");
    };
    let key = (sale_id.clone(), service_id.clone());
    {
        let mut state = shared.lock();
        if state.terminal.contains_key(&key) {
            return reject("ServiceID already used for this SaleID");
        }
        let busy = state.terminal.values().any(|p| p.poi_id == poi_id && p.response.is_none());
        let header = response_header(header);
        if busy {
            return Answer::json(
                200,
                &json!({ "SaleToPOIResponse": { "MessageHeader": header,
                "PaymentResponse": { "Response": failure("Busy", "Terminal busy") } } }),
            );
        }
        let tender = state.psp();
        state.terminal.insert(
            key.clone(),
            TerminalPayment {
                poi_id,
                transaction_id: format!("SIM{}.{}", tender.get(8..).unwrap_or_default(), tender),
                currency,
                approved: 0,
                reversed: 0,
                response: None,
            },
        );
    }
    if let Some(Fault::Latency(delay)) = fault {
        tokio::time::sleep(delay).await;
    }
    let mut state = shared.lock();
    let aborted = state.aborted.remove(&key);
    let transaction_id = state.terminal.get(&key).map(|p| p.transaction_id.clone()).unwrap_or_default();
    let psp = transaction_id.split('.').nth(1).unwrap_or_default().to_owned();
    let sale_transaction = request.pointer("/SaleData/SaleTransactionID").cloned().unwrap_or(Value::Null);
    let poi_data =
        json!({ "POITransactionID": { "TransactionID": transaction_id, "TimeStamp": "2026-01-01T00:00:00Z" } });
    let (payment_response, approved) = if aborted {
        (
            json!({ "Response": failure("Aborted", "Transaction aborted"), "POIData": poi_data,
                 "SaleData": { "SaleTransactionID": sale_transaction } }),
            0,
        )
    } else if fault == Some(Fault::Decline) {
        let mut response = failure("Refusal", "DECLINED");
        response["AdditionalResponse"] = json!("message=DECLINED&refusalReason=05");
        (json!({ "Response": response, "POIData": poi_data, "SaleData": { "SaleTransactionID": sale_transaction } }), 0)
    } else {
        (
            json!({
                "Response": { "Result": "Success", "AdditionalResponse": "message=APPROVED" },
                "POIData": poi_data,
                "SaleData": { "SaleTransactionID": sale_transaction },
                "PaymentResult": {
                    "AmountsResp": { "Currency": currency.code(), "AuthorizedAmount": "@@AMOUNT@@" },
                    "PaymentInstrumentData": { "PaymentInstrumentType": "Card", "CardData": {
                        "PaymentBrand": "visa", "MaskedPan": "411111******1111", "EntryMode": ["Contactless"] } },
                    "PaymentAcquirerData": { "AcquirerTransactionID": { "TransactionID": psp },
                        "AcquirerPOIID": "simulator" },
                },
            }),
            amount.minor(),
        )
    };
    let decimal = amount.to_decimal().to_string();
    let response_text = splice(&payment_response, &[("AMOUNT", &decimal)]);
    if let Some(record) = state.terminal.get_mut(&key) {
        record.approved = approved;
        record.response = Some(response_text.clone());
    }
    if approved > 0 {
        // As for online payments, Adyen notifies the authorisation of a terminal payment.
        let reference = sale_transaction.get("TransactionID").and_then(Value::as_str).unwrap_or_default().to_owned();
        let delivery = Notification {
            psp: &psp,
            original: "",
            merchant: TERMINAL_MERCHANT_ACCOUNT,
            merchant_reference: &reference,
            currency,
            value: approved,
            event_code: "AUTHORISATION",
            success: true,
            reason: "",
            action: None,
        }
        .delivery(&shared.hmac_key);
        state.deliveries.push(delivery);
    }
    let envelope =
        json!({ "SaleToPOIResponse": { "MessageHeader": response_header(header), "PaymentResponse": "@@PAYMENT@@" } });
    Answer { status: 200, body: splice(&envelope, &[("PAYMENT", &response_text)]), idempotency_key: None }
}

fn terminal_status(shared: &Shared, header: &Value, request: &Value) -> Answer {
    let reference = request.get("MessageReference").cloned().unwrap_or(Value::Null);
    let target = |name: &str| reference.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
    let key = (target("SaleID"), target("ServiceID"));
    let state = shared.lock();
    let header = response_header(header);
    let stored = match state.status_aliases.get(&key) {
        Some(other) => (key.0.clone(), other.clone()),
        None => key.clone(),
    };
    let (response, repeated) = match state.terminal.get(&stored) {
        None => (failure("NotFound", "Transaction not found"), None),
        Some(TerminalPayment { response: None, .. }) => (failure("InProgress", "Transaction in progress"), None),
        Some(TerminalPayment { response: Some(text), .. }) => (json!({ "Result": "Success" }), Some(text.clone())),
    };
    let mut status = json!({ "Response": response });
    if repeated.is_some() {
        status["RepeatedMessageResponse"] = json!({
            "MessageHeader": { "MessageCategory": "Payment", "ServiceID": key.1, "SaleID": key.0 },
            "RepeatedResponseMessageBody": { "PaymentResponse": "@@PAYMENT@@" },
        });
    }
    let envelope = json!({ "SaleToPOIResponse": { "MessageHeader": header, "TransactionStatusResponse": status } });
    Answer {
        status: 200,
        body: splice(&envelope, &[("PAYMENT", repeated.as_deref().unwrap_or("null"))]),
        idempotency_key: None,
    }
}

fn terminal_reversal(
    shared: &Shared,
    header: &Value,
    request: &Value,
    text: &str,
    (sale_id, service_id): (String, String),
) -> Answer {
    let original = request.pointer("/OriginalPOITransaction/POITransactionID/TransactionID").and_then(Value::as_str);
    let mut state = shared.lock();
    if !state.reversals.insert((sale_id, service_id)) {
        return reject("ServiceID already used for this SaleID");
    }
    let header = response_header(header);
    let reversal_id = state.psp();
    let wrap = |response: Value| {
        Answer::json(200, &json!({ "SaleToPOIResponse": { "MessageHeader": header, "ReversalResponse": response } }))
    };
    let Some(payment) = state.terminal.values_mut().find(|p| Some(p.transaction_id.as_str()) == original) else {
        return wrap(json!({ "Response": failure("NotFound", "Original transaction not found") }));
    };
    let raw = raw_number(text, "ReversedAmount");
    let amount = match raw.as_deref() {
        Some(raw) => match major_units(raw, payment.currency) {
            Some(amount) => amount.minor(),
            None => {
                return wrap(json!({ "Response": failure("MessageFormat", "ReversedAmount is not a valid amount") }));
            }
        },
        None => payment.approved.saturating_sub(payment.reversed),
    };
    let remaining = payment.approved.saturating_sub(payment.reversed);
    if amount > remaining {
        return wrap(json!({ "Response": failure("NotAllowed", "Amount exceeds what remains to refund") }));
    }
    payment.reversed = payment.reversed.saturating_add(amount);
    let decimal = Money::from_minor(amount, payment.currency).to_decimal().to_string();
    let response = json!({
        "Response": { "Result": "Success" },
        "POIData": { "POITransactionID": { "TransactionID": format!("SIMR.{reversal_id}"), "TimeStamp": "2026-01-01T00:00:00Z" } },
        "ReversedAmount": "@@AMOUNT@@",
    });
    let envelope = json!({ "SaleToPOIResponse": { "MessageHeader": header, "ReversalResponse": response } });
    Answer { status: 200, body: splice(&envelope, &[("AMOUNT", &decimal)]), idempotency_key: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_numbers_are_read_as_text() {
        let body = r#"{"AmountsReq":{"Currency":"EUR","RequestedAmount" : 10.05},"ReversedAmount":1e2}"#;
        assert_eq!(raw_number(body, "RequestedAmount").as_deref(), Some("10.05"));
        assert_eq!(raw_number(body, "ReversedAmount").as_deref(), Some("1e2"));
        assert_eq!(raw_number(body, "Missing"), None);
        assert_eq!(major_units("10.05", Currency::EUR), Some(Money::from_minor(1_005, Currency::EUR)));
        assert_eq!(major_units("1.234", Currency::KWD), Some(Money::from_minor(1_234, Currency::KWD)));
        assert_eq!(major_units("10.005", Currency::EUR), None);
        assert_eq!(major_units("0", Currency::JPY), None);
    }

    #[test]
    fn captures_are_pending_until_settled_and_limited_by_what_remains() {
        let mut state = State::default();
        let body = json!({"amount": {"currency": "EUR", "value": 1000}, "reference": "o1", "merchantAccount": "M",
                          "paymentMethod": {"type": "scheme", "storedPaymentMethodId": "pm_card_visa"},
                          "additionalData": {"manualCapture": "true"}});
        let answer = payment(&mut state, &body, DEFAULT_HMAC_KEY).ok().map(|a| a.body).unwrap_or_default();
        let psp =
            serde_json::from_str::<Value>(&answer).ok().and_then(|v| v["pspReference"].as_str().map(str::to_owned));
        let Some(psp) = psp else { panic!("no payment: {answer}") };
        let capture = |value: i64| json!({"merchantAccount": "M", "amount": {"currency": "EUR", "value": value}});
        assert!(modification(&mut state, &psp, &capture(600), ModificationKind::Capture).is_ok());
        assert!(modification(&mut state, &psp, &capture(401), ModificationKind::Capture).is_err(), "pending counts");
        assert!(modification(&mut state, &psp, &json!({"merchantAccount": "M"}), ModificationKind::Cancel).is_err());
        assert_eq!(state.payments.get(&psp).map(|p| p.captured), Some(0));
        assert_eq!(settle(&mut state, DEFAULT_HMAC_KEY), 1);
        assert_eq!(state.payments.get(&psp).map(|p| p.captured), Some(600));
        let events: Vec<_> = state.deliveries.iter().map(|d| d.event_type.clone()).collect();
        assert_eq!(events, ["AUTHORISATION", "CAPTURE"]);
    }

    #[test]
    fn signatures_follow_adyens_published_vector() {
        let key = "9064450A8892A093D9E97EFCC9639DE31B74F3A7803135555A3C96F5A57915D6";
        assert_eq!(
            sign(key, "test_REPORT_AVAILABLE::Magento2Rik:testMerchantRef1:0:EUR:REPORT_AVAILABLE:true"),
            "NuEkADFmlCC6VgX+wcoPAegIWxVPNBPCuKlM4Hzo5qc="
        );
    }
}
