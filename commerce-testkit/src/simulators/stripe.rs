//! A loopback simulator of the Stripe API subset a payment gateway adapter uses.
//!
//! [`StripeSimulator::start`] binds `127.0.0.1:0`, serves HTTP/1.1 and returns; [`StripeSimulator::base_url`]
//! is what the adapter gets instead of `https://api.stripe.com`. The server stops when the simulator is
//! dropped or [`shutdown`](StripeSimulator::shutdown).
//!
//! # Wire format and endpoints
//! Bodies are `application/x-www-form-urlencoded`, answers JSON; every request needs
//! `Authorization: Bearer <api key>` (otherwise 401 with Stripe's error JSON, never echoing the key).
//!
//! | endpoint | behaviour |
//! | --- | --- |
//! | `POST /v1/payment_intents` | `amount`, `currency`, `payment_method`, `capture_method` (`manual` / `automatic`, default automatic), `confirm=true`, `metadata[k]`: `requires_capture` or `succeeded`; `pm_card_chargeDeclined` (`generic_decline`) and `pm_card_chargeDeclinedInsufficientFunds` (`insufficient_funds`) answer 402 `card_error` / `card_declined` |
//! | `POST /v1/payment_intents/{id}/capture` | `amount_to_capture` <= `amount_capturable` (more: 400 `amount_too_large`); not `requires_capture`: 400 `payment_intent_unexpected_state` |
//! | `POST /v1/payment_intents/{id}/cancel` | from `requires_payment_method`, `requires_capture`, `requires_confirmation`, `requires_action`, `processing`; otherwise 400 `payment_intent_unexpected_state` |
//! | `POST /v1/refunds` | `payment_intent`, `amount` (default: the rest); more than refundable: 400 `amount_too_large`; fully refunded: 400 `charge_already_refunded`; nothing captured: 400 `payment_intent_unexpected_state` |
//! | `GET /v1/payment_intents/{id}` | 404 `resource_missing` for unknown ids; `expand[]=latest_charge` expands the charge (with `amount_captured`, `amount_refunded`) |
//!
//! Objects follow Stripe's shapes: a payment intent has `id`, `object`, `status`, `amount`, `amount_capturable`,
//! `amount_received`, lower-case `currency`, `capture_method`, `latest_charge` (an id unless expanded),
//! `metadata`, `last_payment_error`; a charge has `amount`, `amount_captured`, `amount_refunded`, `captured`,
//! `refunded`; a refund has `amount`, `payment_intent`, `charge`, `status`.
//!
//! # Idempotency
//! Like Stripe: a POST's `Idempotency-Key` stores the first response (status and body, 5xx included) and
//! replays it, with `Idempotent-Replayed: true`, for the same endpoint and parameters; the same key with other
//! parameters or on another endpoint is 400 `idempotency_error`; a key whose first request is still running
//! is 409 `idempotency_key_in_use`. As at Stripe, requests refused before execution (authentication, missing
//! or malformed parameters, faults injected "before processing") store nothing.
//!
//! # Deviations from Stripe
//! One charge per payment intent; no minimum amounts; any `pm_...` name other than the declining ones is
//! approved; no 3-D Secure (`requires_action`), no asynchronous refunds (they succeed at once); uncaptured
//! intents never expire. Stripe's exact code for refunding an uncaptured intent is not modelled precisely:
//! the simulator answers `payment_intent_unexpected_state`.
//!
//! # Webhooks
//! Every state change queues one signed webhook delivery, as Stripe would POST it to the endpoint:
//!
//! | state change | event `type` | `data.object` |
//! | --- | --- | --- |
//! | confirmed with `capture_method=manual` (authorized) | `payment_intent.amount_capturable_updated` | the payment intent (`status` `requires_capture`, `amount_capturable`) |
//! | confirmed with automatic capture, or captured | `payment_intent.succeeded` | the payment intent (`status` `succeeded`, `amount_received`) |
//! | declined at confirmation | `payment_intent.payment_failed` | the payment intent (`status` `requires_payment_method`, `last_payment_error`) |
//! | canceled | `payment_intent.canceled` | the payment intent (`status` `canceled`, `cancellation_reason`) |
//! | refunded (in full or in part) | `charge.refunded` | the charge (`amount_refunded` cumulative, `payment_intent`) |
//!
//! Each event has Stripe's envelope: a unique `evt_...` `id`, `object: "event"`, `api_version`, `created`
//! (the simulator's clock), `data.object`, `livemode: false`, `pending_webhooks`, `request` and `type`. The
//! body is signed like Stripe's, when the delivery is taken (Stripe signs each attempt as it sends it):
//! `Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "{t}.{body}">`
//! keyed with the endpoint secret ([`DEFAULT_WEBHOOK_SECRET`] unless
//! [`with_webhook_secret`](StripeSimulator::with_webhook_secret)), plus `Content-Type: application/json`.
//! [`take_webhooks`](StripeSimulator::take_webhooks) drains the queue through a
//! [`DeliveryPlan`] (duplicates, reordering). Requests that change nothing (refusals, idempotent replays,
//! faults injected before processing, `ApiError`) deliver nothing; a request processed before an injected
//! timeout or dropped connection still delivers, as at Stripe.
//!
//! The clock (`t`, `created`) is the system's unless [`with_fixed_time`](StripeSimulator::with_fixed_time) or
//! [`set_unix_time`](StripeSimulator::set_unix_time) pins it, so tests with a manual clock verify within the
//! tolerance.
//!
//! # Faults
//! [`inject`](StripeSimulator::inject) queues a [`Fault`] for the next request, and
//! [`inject_on`](StripeSimulator::inject_on) for the next request whose path contains a fragment
//! (`"/capture"`). Each queued fault is used once; queue it several times to make it persist.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use commerce_ports::Secret;
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
pub const DEFAULT_API_KEY: &str = "sk_test_simulator";

/// The webhook signing secret the simulator signs its deliveries with unless told otherwise.
pub const DEFAULT_WEBHOOK_SECRET: &str = "whsec_simulator_0123456789abcdef";

/// The `api_version` of the events the simulator emits.
const EVENT_API_VERSION: &str = "2024-06-20";

/// A fault the simulator injects into one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Wait this long before processing (the idempotency key is already "in flight" meanwhile).
    Latency(Duration),
    /// Process the request, then hold the response this long (longer than the client's timeout).
    TimeoutAfterProcessing(Duration),
    /// Process the request, then close the connection without answering.
    DropAfterProcessing,
    /// Answer this 5xx status before processing (nothing happens, nothing is stored), with a
    /// `Stripe-Should-Retry` header when `should_retry` is set.
    Unavailable {
        /// The HTTP status (500-599).
        status: u16,
        /// The `Stripe-Should-Retry` header, if any.
        should_retry: Option<bool>,
    },
    /// Answer this 5xx `api_error` as the API's own response: nothing changes, but the response is stored
    /// under the idempotency key and replayed, as Stripe does.
    ApiError {
        /// The HTTP status (500-599).
        status: u16,
        /// The `Stripe-Should-Retry` header, if any.
        should_retry: Option<bool>,
    },
    /// Close the connection before reading or processing the request.
    ConnectionReset,
    /// Process the request, then answer 200 with a body that is not JSON.
    MalformedBody,
    /// Process the request, then answer its 2xx with the object's `status` replaced by one no client knows
    /// (the answer stored under the idempotency key keeps the real status).
    UnknownStatus,
}

/// A response before it is turned into HTTP.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    body: String,
    should_retry: Option<bool>,
    replayed: bool,
}

impl Answer {
    fn json(status: u16, body: &Value) -> Answer {
        Answer { status, body: body.to_string(), should_retry: None, replayed: false }
    }
}

/// A Stripe error answer, and whether it was refused before execution (then it is not stored).
#[derive(Debug)]
struct Refusal {
    answer: Answer,
    before_execution: bool,
}

fn stripe_error(status: u16, kind: &str, code: Option<&str>, param: Option<&str>, message: &str) -> Answer {
    let mut error = json!({ "type": kind, "message": message });
    if let Some(code) = code {
        error["code"] = json!(code);
        error["doc_url"] = json!(format!("https://stripe.com/docs/error-codes/{}", code.replace('_', "-")));
    }
    if let Some(param) = param {
        error["param"] = json!(param);
    }
    Answer::json(status, &json!({ "error": error }))
}

fn invalid(code: &str, param: Option<&str>, message: &str) -> Refusal {
    Refusal { answer: stripe_error(400, "invalid_request_error", Some(code), param, message), before_execution: false }
}

fn bad_param(param: &str, message: &str) -> Refusal {
    Refusal {
        answer: stripe_error(400, "invalid_request_error", Some("parameter_invalid_integer"), Some(param), message),
        before_execution: true,
    }
}

fn missing(param: &str) -> Refusal {
    Refusal {
        answer: stripe_error(
            400,
            "invalid_request_error",
            Some("parameter_missing"),
            Some(param),
            &format!("Missing required param: {param}."),
        ),
        before_execution: true,
    }
}

fn no_such(what: &str, id: &str, param: &str) -> Refusal {
    Refusal {
        answer: stripe_error(
            404,
            "invalid_request_error",
            Some("resource_missing"),
            Some(param),
            &format!("No such {what}: '{id}'"),
        ),
        before_execution: false,
    }
}

#[derive(Debug, Clone)]
struct Charge {
    id: String,
    amount_captured: i64,
    amount_refunded: i64,
    captured: bool,
}

#[derive(Debug, Clone)]
struct Intent {
    id: String,
    amount: i64,
    currency: String,
    status: &'static str,
    capture_method: String,
    amount_capturable: i64,
    amount_received: i64,
    payment_method: String,
    metadata: BTreeMap<String, String>,
    charge: Option<Charge>,
    last_payment_error: Option<Value>,
    cancellation_reason: Option<String>,
    created: i64,
}

impl Intent {
    fn charge_json(&self, charge: &Charge) -> Value {
        json!({
            "id": charge.id,
            "object": "charge",
            "amount": self.amount,
            "amount_captured": charge.amount_captured,
            "amount_refunded": charge.amount_refunded,
            "captured": charge.captured,
            "refunded": charge.captured && charge.amount_refunded == charge.amount_captured,
            "currency": self.currency,
            "payment_intent": self.id,
            "status": "succeeded",
        })
    }

    fn to_json(&self, expand_charge: bool) -> Value {
        let latest_charge = match &self.charge {
            Some(charge) if expand_charge => self.charge_json(charge),
            Some(charge) => json!(charge.id),
            None => Value::Null,
        };
        json!({
            "id": self.id,
            "object": "payment_intent",
            "amount": self.amount,
            "amount_capturable": self.amount_capturable,
            "amount_received": self.amount_received,
            "currency": self.currency,
            "status": self.status,
            "capture_method": self.capture_method,
            "confirmation_method": "automatic",
            "payment_method": self.payment_method,
            "latest_charge": latest_charge,
            "metadata": self.metadata,
            "last_payment_error": self.last_payment_error,
            "cancellation_reason": self.cancellation_reason,
            "created": self.created,
            "livemode": false,
        })
    }
}

#[derive(Debug)]
struct KeyEntry {
    endpoint: String,
    params: Vec<(String, String)>,
    /// `None` while the first request is still running.
    answer: Option<Answer>,
}

#[derive(Debug, Default)]
struct State {
    intents: HashMap<String, Intent>,
    keys: HashMap<String, KeyEntry>,
    faults: VecDeque<(Option<String>, Fault)>,
    processed: Vec<String>,
    next_id: u64,
    /// Signed deliveries not taken yet, in emission order.
    webhooks: Vec<Delivery>,
    next_event: u64,
    /// `None`: [`DEFAULT_WEBHOOK_SECRET`]. A [`Secret`], so `Debug` never shows it.
    webhook_secret: Option<Secret>,
    /// `None`: the system clock.
    fixed_time: Option<i64>,
}

impl State {
    fn id(&mut self, prefix: &str) -> String {
        self.next_id = self.next_id.saturating_add(1);
        format!("{prefix}_sim{:08}", self.next_id)
    }

    /// The simulator's clock in unix seconds.
    fn now(&self) -> i64 {
        self.fixed_time.unwrap_or_else(|| time::OffsetDateTime::now_utc().unix_timestamp())
    }

    /// Signs deliveries for sending now: `Stripe-Signature` with the simulator's time and secret.
    fn sign(&self, batch: Vec<Delivery>) -> Vec<Delivery> {
        let now = self.now();
        let secret = self.webhook_secret.as_ref().map_or(DEFAULT_WEBHOOK_SECRET, Secret::expose);
        batch
            .into_iter()
            .map(|mut delivery| {
                let signature = stripe_signature(secret, now, &delivery.body);
                for (name, value) in &mut delivery.headers {
                    if name == "Stripe-Signature" {
                        value.clone_from(&signature);
                    }
                }
                delivery
            })
            .collect()
    }

    /// Queues the delivery of an event of `event_type` about `object`.
    fn emit(&mut self, event_type: &str, object: Value) {
        self.next_event = self.next_event.saturating_add(1);
        let id = format!("evt_sim{:08}", self.next_event);
        let created = self.now();
        let body = json!({
            "id": id,
            "object": "event",
            "api_version": EVENT_API_VERSION,
            "created": created,
            "data": { "object": object },
            "livemode": false,
            "pending_webhooks": 1,
            "request": { "id": Value::Null, "idempotency_key": Value::Null },
            "type": event_type,
        })
        .to_string();
        // Signed when taken (`take_webhooks`), with the time of delivery.
        self.webhooks.push(Delivery {
            event_id: id,
            event_type: event_type.to_owned(),
            headers: vec![
                ("Stripe-Signature".to_owned(), String::new()),
                ("Content-Type".to_owned(), "application/json".to_owned()),
            ],
            body: Bytes::from(body),
        });
    }
}

/// `t=<timestamp>,v1=<hex HMAC-SHA256 of "{timestamp}.{body}">`, Stripe's `Stripe-Signature` value.
fn stripe_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        // HMAC takes keys of any length; a header without `v1` never verifies, so this would fail safe.
        return format!("t={timestamp}");
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[derive(Debug)]
struct Shared {
    api_key: String,
    state: Mutex<State>,
    requests: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running loopback Stripe simulator. See the [module docs](self) for what it speaks.
#[derive(Debug)]
pub struct StripeSimulator {
    shared: Arc<Shared>,
    base_url: String,
    server: JoinHandle<()>,
}

impl StripeSimulator {
    /// Starts a simulator accepting [`DEFAULT_API_KEY`].
    ///
    /// # Errors
    /// When `127.0.0.1:0` cannot be bound.
    pub async fn start() -> std::io::Result<StripeSimulator> {
        StripeSimulator::start_with_key(DEFAULT_API_KEY).await
    }

    /// Starts a simulator accepting `api_key` as the Bearer token.
    ///
    /// # Errors
    /// When `127.0.0.1:0` cannot be bound.
    pub async fn start_with_key(api_key: impl Into<String>) -> std::io::Result<StripeSimulator> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            api_key: api_key.into(),
            state: Mutex::new(State::default()),
            requests: AtomicU64::new(0),
        });
        let server = tokio::spawn(super::serve(listener, Arc::clone(&shared), handle));
        Ok(StripeSimulator { shared, base_url: format!("http://{addr}"), server })
    }

    /// The base URL to give the adapter (`http://127.0.0.1:<port>`, no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The API key the simulator accepts.
    pub fn api_key(&self) -> &str {
        &self.shared.api_key
    }

    /// Queues a fault for the next request.
    pub fn inject(&self, fault: Fault) {
        self.shared.lock().faults.push_back((None, fault));
    }

    /// Queues a fault for the next request whose path contains `path_fragment` (e.g. `"/capture"`).
    pub fn inject_on(&self, path_fragment: impl Into<String>, fault: Fault) {
        self.shared.lock().faults.push_back((Some(path_fragment.into()), fault));
    }

    /// How many POST requests the simulator executed (state-changing calls, including refused ones that
    /// reached execution such as an over-capture). Replays, requests refused before execution and faults
    /// injected before processing are not counted.
    pub fn processed_calls(&self) -> usize {
        self.shared.lock().processed.len()
    }

    /// How many executed POST requests had a path containing `path_fragment`.
    pub fn processed_calls_on(&self, path_fragment: &str) -> usize {
        self.shared.lock().processed.iter().filter(|p| p.contains(path_fragment)).count()
    }

    /// How many HTTP requests arrived at all (every attempt, replays and faults included).
    pub fn requests_received(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Signs webhook deliveries with `secret` (Stripe's `whsec_...` endpoint secret) from now on, instead of
    /// [`DEFAULT_WEBHOOK_SECRET`] (deliveries are signed when taken).
    pub fn with_webhook_secret(self, secret: Secret) -> StripeSimulator {
        self.shared.lock().webhook_secret = Some(secret);
        self
    }

    /// The secret webhook deliveries are signed with (give it to the verifier).
    pub fn webhook_secret(&self) -> Secret {
        self.shared.lock().webhook_secret.clone().unwrap_or_else(|| Secret::new(DEFAULT_WEBHOOK_SECRET))
    }

    /// Pins the simulator's clock at `unix_seconds` (the `t` of signatures, `created` of events and
    /// objects); see [`set_unix_time`](Self::set_unix_time).
    pub fn with_fixed_time(self, unix_seconds: i64) -> StripeSimulator {
        self.set_unix_time(Some(unix_seconds));
        self
    }

    /// Pins the simulator's clock at `unix_seconds` (a test's manual clock), or lets it follow the system
    /// clock again with `None`.
    pub fn set_unix_time(&self, unix_seconds: Option<i64>) {
        self.shared.lock().fixed_time = unix_seconds;
    }

    /// The simulator's clock in unix seconds.
    pub fn unix_time(&self) -> i64 {
        self.shared.lock().now()
    }

    /// How many webhook deliveries are queued.
    pub fn pending_webhooks(&self) -> usize {
        self.shared.lock().webhooks.len()
    }

    /// Takes every queued webhook delivery (the queue is then empty), in emission order as changed by
    /// `plan` (duplicates, reordering).
    ///
    /// Like Stripe, which signs each delivery attempt when it sends it, every delivery is signed at this call
    /// with the simulator's current time (so a test on a manual clock sets [`set_unix_time`] first);
    /// `created` in the body stays the time of the change.
    ///
    /// [`set_unix_time`]: StripeSimulator::set_unix_time
    pub fn take_webhooks(&self, plan: DeliveryPlan) -> Vec<Delivery> {
        let mut state = self.shared.lock();
        let batch = std::mem::take(&mut state.webhooks);
        let signed = state.sign(batch);
        drop(state);
        plan.apply(signed)
    }

    /// Stops the server and closes its connections.
    pub fn shutdown(self) {
        // Dropping aborts the server task.
    }
}

impl Drop for StripeSimulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn http_response(answer: Answer) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("request-id", "req_simulator");
    if let Some(retry) = answer.should_retry {
        builder = builder.header("stripe-should-retry", if retry { "true" } else { "false" });
    }
    if answer.replayed {
        builder = builder.header("idempotent-replayed", "true");
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
    let query = request.uri().query().unwrap_or_default().to_owned();
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let authorization = header("authorization");
    let idempotency_key = header("idempotency-key");

    let fault = super::take_fault(&mut shared.lock().faults, &path);
    match fault {
        Some(Fault::ConnectionReset) => return Err(dropped()),
        Some(Fault::Unavailable { status, should_retry }) => {
            let mut answer = stripe_error(status, "api_error", None, None, "The service is temporarily unavailable.");
            answer.should_retry = should_retry;
            return Ok(http_response(answer));
        }
        _ => {}
    }
    if authorization.as_deref() != Some(format!("Bearer {}", shared.api_key).as_str()) {
        return Ok(http_response(stripe_error(
            401,
            "invalid_request_error",
            None,
            None,
            "Invalid API Key provided. You can find your API keys in the Dashboard.",
        )));
    }
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Err(dropped()),
    };
    let params: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let query_params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let key = if method == Method::POST { idempotency_key } else { None };

    // Processing runs in a detached task: hyper drops this handler future when the client goes away (a
    // client timeout), and that must not cancel a request half-way with its key left in flight forever.
    // As at Stripe, a request that was received is processed to the end whatever the client does.
    let processing = tokio::spawn(process(shared, fault, method, path, params, query_params, key));
    match processing.await {
        Ok(Processed::Early(answer)) => Ok(http_response(answer)),
        Ok(Processed::Done(answer)) => after_processing(fault, answer).await,
        Err(_) => Err(std::io::Error::other("simulator: processing task failed")),
    }
}

/// The outcome of [`process`].
enum Processed {
    /// An answer sent as it is (an idempotency conflict or a key in use).
    Early(Answer),
    /// An answer (processed or replayed) that goes through [`after_processing`].
    Done(Answer),
}

/// Idempotency, the injected latency and the API itself, for one received request.
async fn process(
    shared: Arc<Shared>,
    fault: Option<Fault>,
    method: Method,
    path: String,
    params: Vec<(String, String)>,
    query_params: Vec<(String, String)>,
    key: Option<String>,
) -> Processed {
    let endpoint = format!("{method} {path}");

    // Idempotency (POST only, as at Stripe).
    let mut sorted = params.clone();
    sorted.sort();
    if let Some(key) = &key {
        let early = idempotency_check(&mut shared.lock(), key, &endpoint, sorted);
        if let Some(answer) = early {
            return if answer.replayed { Processed::Done(answer) } else { Processed::Early(answer) };
        }
    }

    if let Some(Fault::Latency(delay)) = fault {
        tokio::time::sleep(delay).await;
    }

    let answer = {
        let mut state = shared.lock();
        let outcome = if let Some(Fault::ApiError { status, should_retry }) = fault {
            let mut answer = stripe_error(status, "api_error", None, None, "An unknown error occurred.");
            answer.should_retry = should_retry;
            Ok(answer)
        } else {
            route(&mut state, &method, &path, &params, &query_params)
        };
        let (answer, store) = match outcome {
            Ok(answer) => (answer, true),
            Err(refusal) => (refusal.answer, !refusal.before_execution),
        };
        if method == Method::POST && store {
            state.processed.push(path.clone());
        }
        if let Some(key) = &key {
            if store {
                if let Some(entry) = state.keys.get_mut(key) {
                    entry.answer = Some(answer.clone());
                }
            } else {
                state.keys.remove(key);
            }
        }
        answer
    };
    Processed::Done(answer)
}

/// Stripe's idempotency rules for a POST with `key`: an early answer (conflict, in use, replay), or `None`
/// after marking the key in flight.
fn idempotency_check(state: &mut State, key: &str, endpoint: &str, params: Vec<(String, String)>) -> Option<Answer> {
    match state.keys.get(key) {
        Some(entry) if entry.endpoint != endpoint || entry.params != params => {
            let message = format!(
                "Keys for idempotent requests can only be used with the same parameters they were first used \
                 with. Try using a key other than '{key}' if you meant to execute a different request."
            );
            Some(stripe_error(400, "idempotency_error", None, None, &message))
        }
        Some(KeyEntry { answer: None, .. }) => Some(stripe_error(
            409,
            "invalid_request_error",
            Some("idempotency_key_in_use"),
            None,
            "There is currently another in-progress request using this Idempotent Key (that probably means you \
             submitted twice, and the other request is still going through). Please try again later.",
        )),
        Some(KeyEntry { answer: Some(answer), .. }) => {
            let mut replay = answer.clone();
            replay.replayed = true;
            Some(replay)
        }
        None => {
            state.keys.insert(key.to_owned(), KeyEntry { endpoint: endpoint.to_owned(), params, answer: None });
            None
        }
    }
}

async fn after_processing(fault: Option<Fault>, answer: Answer) -> Result<Response<Full<Bytes>>, std::io::Error> {
    match fault {
        Some(Fault::TimeoutAfterProcessing(hold)) => {
            tokio::time::sleep(hold).await;
            Ok(http_response(answer))
        }
        Some(Fault::DropAfterProcessing) => Err(dropped()),
        Some(Fault::MalformedBody) => {
            Ok(http_response(Answer { status: 200, body: "{\"object\": \"payment_int".to_owned(), ..answer }))
        }
        Some(Fault::UnknownStatus) if (200..300).contains(&answer.status) => {
            let mut body: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
            if let Some(object) = body.as_object_mut() {
                object.insert("status".to_owned(), Value::String("simulator_unknown_status".to_owned()));
            }
            Ok(http_response(Answer { body: body.to_string(), ..answer }))
        }
        _ => Ok(http_response(answer)),
    }
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn integer(params: &[(String, String)], name: &str) -> Result<Option<i64>, Refusal> {
    match param(params, name) {
        None => Ok(None),
        Some(raw) => match raw.parse::<i64>() {
            Ok(v) if v > 0 => Ok(Some(v)),
            _ => Err(bad_param(name, &format!("Invalid positive integer for {name}: '{raw}'"))),
        },
    }
}

fn expands_charge(query: &[(String, String)]) -> bool {
    query.iter().any(|(k, v)| k.starts_with("expand") && v == "latest_charge")
}

fn route(
    state: &mut State,
    method: &Method,
    path: &str,
    params: &[(String, String)],
    query: &[(String, String)],
) -> Result<Answer, Refusal> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (&Method::POST, ["v1", "payment_intents"]) => create_intent(state, params),
        (&Method::POST, ["v1", "payment_intents", id, "capture"]) => capture(state, id, params),
        (&Method::POST, ["v1", "payment_intents", id, "cancel"]) => cancel(state, id, params),
        (&Method::POST, ["v1", "refunds"]) => refund(state, params),
        (&Method::GET, ["v1", "payment_intents", id]) => {
            let intent = state.intents.get(*id).ok_or_else(|| no_such("payment_intent", id, "intent"))?;
            Ok(Answer::json(200, &intent.to_json(expands_charge(query))))
        }
        _ => Err(Refusal {
            answer: stripe_error(
                404,
                "invalid_request_error",
                None,
                None,
                &format!("Unrecognized request URL ({method}: {path})."),
            ),
            before_execution: true,
        }),
    }
}

fn create_intent(state: &mut State, params: &[(String, String)]) -> Result<Answer, Refusal> {
    let amount = integer(params, "amount")?.ok_or_else(|| missing("amount"))?;
    let currency = param(params, "currency").ok_or_else(|| missing("currency"))?;
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(Refusal {
            answer: stripe_error(
                400,
                "invalid_request_error",
                Some("parameter_invalid_string"),
                Some("currency"),
                &format!(
                    "Invalid currency: {currency}. Stripe currently supports these currencies: usd, eur, jpy, ..."
                ),
            ),
            before_execution: true,
        });
    }
    let capture_method = param(params, "capture_method").unwrap_or("automatic");
    if capture_method != "automatic" && capture_method != "manual" {
        return Err(Refusal {
            answer: stripe_error(
                400,
                "invalid_request_error",
                Some("parameter_invalid_string"),
                Some("capture_method"),
                &format!(
                    "Invalid capture_method: must be one of automatic, automatic_async or manual (got {capture_method})"
                ),
            ),
            before_execution: true,
        });
    }
    let payment_method = param(params, "payment_method").unwrap_or_default();
    let confirm = param(params, "confirm") == Some("true");
    if confirm && !payment_method.starts_with("pm_") {
        return Err(no_such("PaymentMethod", payment_method, "payment_method"));
    }
    let metadata: BTreeMap<String, String> = params
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("metadata[").and_then(|rest| rest.strip_suffix(']')).map(|name| (name.to_owned(), v.clone()))
        })
        .collect();
    let id = state.id("pi");
    let mut intent = Intent {
        id: id.clone(),
        amount,
        currency: currency.to_owned(),
        status: if confirm { "requires_capture" } else { "requires_confirmation" },
        capture_method: capture_method.to_owned(),
        amount_capturable: 0,
        amount_received: 0,
        payment_method: payment_method.to_owned(),
        metadata,
        charge: None,
        last_payment_error: None,
        cancellation_reason: None,
        created: state.now(),
    };
    if !confirm {
        let answer = Answer::json(200, &intent.to_json(false));
        state.intents.insert(id, intent);
        return Ok(answer);
    }
    let decline = match payment_method {
        "pm_card_chargeDeclined" => Some("generic_decline"),
        "pm_card_chargeDeclinedInsufficientFunds" => Some("insufficient_funds"),
        _ => None,
    };
    if let Some(decline_code) = decline {
        let charge_id = state.id("ch");
        let error = json!({
            "type": "card_error",
            "code": "card_declined",
            "decline_code": decline_code,
            "message": "Your card was declined.",
            "charge": charge_id,
            "doc_url": "https://stripe.com/docs/error-codes/card-declined",
        });
        intent.status = "requires_payment_method";
        intent.last_payment_error = Some(error.clone());
        let mut body = json!({ "error": error });
        body["error"]["payment_intent"] = intent.to_json(false);
        state.emit("payment_intent.payment_failed", intent.to_json(false));
        state.intents.insert(id, intent);
        return Ok(Answer::json(402, &body));
    }
    let charge_id = state.id("ch");
    if capture_method == "manual" {
        intent.amount_capturable = amount;
        intent.charge = Some(Charge { id: charge_id, amount_captured: 0, amount_refunded: 0, captured: false });
    } else {
        intent.status = "succeeded";
        intent.amount_received = amount;
        intent.charge = Some(Charge { id: charge_id, amount_captured: amount, amount_refunded: 0, captured: true });
    }
    let object = intent.to_json(false);
    let answer = Answer::json(200, &object);
    let event_type = if intent.status == "succeeded" {
        "payment_intent.succeeded"
    } else {
        "payment_intent.amount_capturable_updated"
    };
    state.emit(event_type, object);
    state.intents.insert(id, intent);
    Ok(answer)
}

fn unexpected_state(intent: &Intent, message: String) -> Refusal {
    let mut answer =
        stripe_error(400, "invalid_request_error", Some("payment_intent_unexpected_state"), None, &message);
    if let Ok(mut body) = serde_json::from_str::<Value>(&answer.body) {
        body["error"]["payment_intent"] = intent.to_json(false);
        answer.body = body.to_string();
    }
    Refusal { answer, before_execution: false }
}

fn capture(state: &mut State, id: &str, params: &[(String, String)]) -> Result<Answer, Refusal> {
    let requested = integer(params, "amount_to_capture")?;
    let intent = state.intents.get_mut(id).ok_or_else(|| no_such("payment_intent", id, "intent"))?;
    if intent.status != "requires_capture" {
        let message = format!(
            "This PaymentIntent could not be captured because it has a status of {}. Only a PaymentIntent with \
             one of the following statuses may be captured: requires_capture.",
            intent.status
        );
        return Err(unexpected_state(intent, message));
    }
    let amount = requested.unwrap_or(intent.amount_capturable);
    if amount > intent.amount_capturable {
        return Err(invalid(
            "amount_too_large",
            Some("amount_to_capture"),
            &format!(
                "The amount to capture ({amount}) is greater than the amount capturable ({}).",
                intent.amount_capturable
            ),
        ));
    }
    intent.amount_received = amount;
    intent.amount_capturable = 0;
    intent.status = "succeeded";
    if let Some(charge) = &mut intent.charge {
        charge.amount_captured = amount;
        charge.captured = true;
    }
    let object = intent.to_json(false);
    let answer = Answer::json(200, &object);
    state.emit("payment_intent.succeeded", object);
    Ok(answer)
}

fn cancel(state: &mut State, id: &str, params: &[(String, String)]) -> Result<Answer, Refusal> {
    let intent = state.intents.get_mut(id).ok_or_else(|| no_such("payment_intent", id, "intent"))?;
    const CANCELABLE: [&str; 5] =
        ["requires_payment_method", "requires_capture", "requires_confirmation", "requires_action", "processing"];
    if !CANCELABLE.contains(&intent.status) {
        let message = format!(
            "You cannot cancel this PaymentIntent because it has a status of {}. Only a PaymentIntent with one of \
             the following statuses may be canceled: {}.",
            intent.status,
            CANCELABLE.join(", ")
        );
        return Err(unexpected_state(intent, message));
    }
    intent.status = "canceled";
    intent.amount_capturable = 0;
    intent.cancellation_reason = param(params, "cancellation_reason").map(str::to_owned);
    let object = intent.to_json(false);
    let answer = Answer::json(200, &object);
    state.emit("payment_intent.canceled", object);
    Ok(answer)
}

fn refund(state: &mut State, params: &[(String, String)]) -> Result<Answer, Refusal> {
    let requested = integer(params, "amount")?;
    let intent_id = param(params, "payment_intent").ok_or_else(|| missing("payment_intent"))?.to_owned();
    let refund_id = state.id("re");
    let intent =
        state.intents.get_mut(&intent_id).ok_or_else(|| no_such("payment_intent", &intent_id, "payment_intent"))?;
    let captured = intent.charge.as_ref().filter(|c| c.captured && intent.status == "succeeded").cloned();
    let Some(charge) = captured else {
        let message = format!(
            "This PaymentIntent ({intent_id}) does not have a successful charge to refund (status {}).",
            intent.status
        );
        return Err(unexpected_state(intent, message));
    };
    let refundable = charge.amount_captured.saturating_sub(charge.amount_refunded);
    if refundable == 0 {
        return Err(invalid(
            "charge_already_refunded",
            None,
            &format!("Charge {} has already been refunded.", charge.id),
        ));
    }
    let amount = requested.unwrap_or(refundable);
    if amount > refundable {
        return Err(invalid(
            "amount_too_large",
            Some("amount"),
            &format!("Refund amount ({amount}) is greater than unrefunded amount on charge ({refundable})"),
        ));
    }
    if let Some(c) = &mut intent.charge {
        c.amount_refunded = c.amount_refunded.saturating_add(amount);
    }
    let charge_object = intent.charge.as_ref().map(|c| intent.charge_json(c));
    let answer = Answer::json(
        200,
        &json!({
            "id": refund_id,
            "object": "refund",
            "amount": amount,
            "currency": intent.currency,
            "payment_intent": intent.id,
            "charge": charge.id,
            "reason": param(params, "reason"),
            "metadata": {},
            "status": "succeeded",
        }),
    );
    if let Some(object) = charge_object {
        state.emit("charge.refunded", object);
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_faults_match_fragments_in_order() {
        let mut state = State::default();
        state.faults.push_back((Some("/capture".to_owned()), Fault::MalformedBody));
        state.faults.push_back((None, Fault::ConnectionReset));
        assert_eq!(crate::simulators::take_fault(&mut state.faults, "/v1/refunds"), Some(Fault::ConnectionReset));
        assert_eq!(crate::simulators::take_fault(&mut state.faults, "/v1/refunds"), None);
        assert_eq!(
            crate::simulators::take_fault(&mut state.faults, "/v1/payment_intents/pi_1/capture"),
            Some(Fault::MalformedBody)
        );
    }

    #[test]
    fn state_changes_queue_signed_events_and_debug_hides_the_secret() {
        let mut state = State {
            fixed_time: Some(1_700_000_000),
            webhook_secret: Some(Secret::new("whsec_unit_secret")),
            ..State::default()
        };
        let p = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        let created = create_intent(
            &mut state,
            &p(&[("amount", "500"), ("currency", "eur"), ("payment_method", "pm_card_visa"), ("confirm", "true")]),
        );
        assert!(created.is_ok());
        assert!(create_intent(&mut state, &p(&[("amount", "5"), ("currency", "EUR")])).is_err(), "refused: no event");
        assert_eq!(state.webhooks.len(), 1);
        let signed = state.sign(state.webhooks.clone());
        let delivery = &signed[0];
        assert_eq!(delivery.event_type, "payment_intent.succeeded");

        // The header is Stripe's scheme, recomputed here independently.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"whsec_unit_secret").expect("any key length");
        mac.update(b"1700000000.");
        mac.update(&delivery.body);
        let expected = format!("t=1700000000,v1={}", hex::encode(mac.finalize().into_bytes()));
        let header = delivery.headers.iter().find(|(n, _)| n == "Stripe-Signature").map(|(_, v)| v.as_str());
        assert_eq!(header, Some(expected.as_str()));
        let body: Value = serde_json::from_slice(&delivery.body).unwrap_or(Value::Null);
        assert_eq!(body["id"], delivery.event_id.as_str());
        assert_eq!(body["created"], 1_700_000_000);
        assert_eq!(body["data"]["object"]["created"], 1_700_000_000, "objects use the same clock");
        assert_eq!(body["data"]["object"]["amount_received"], 500);
        assert!(!format!("{state:?}").contains("whsec_unit_secret"));
    }

    #[test]
    fn intents_capture_once_and_refund_up_to_the_captured_amount() {
        let mut state = State::default();
        let p = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        let created = create_intent(
            &mut state,
            &p(&[
                ("amount", "1000"),
                ("currency", "eur"),
                ("payment_method", "pm_card_visa"),
                ("capture_method", "manual"),
                ("confirm", "true"),
            ]),
        );
        let id = created
            .ok()
            .and_then(|a| serde_json::from_str::<Value>(&a.body).ok())
            .and_then(|v| v["id"].as_str().map(str::to_owned));
        let Some(id) = id else { panic!("no intent created") };
        assert!(capture(&mut state, &id, &p(&[("amount_to_capture", "1001")])).is_err());
        assert!(capture(&mut state, &id, &p(&[("amount_to_capture", "600")])).is_ok());
        assert!(capture(&mut state, &id, &p(&[])).is_err(), "a second capture is refused");
        assert!(refund(&mut state, &p(&[("payment_intent", &id), ("amount", "601")])).is_err());
        assert!(refund(&mut state, &p(&[("payment_intent", &id), ("amount", "600")])).is_ok());
        let again = refund(&mut state, &p(&[("payment_intent", &id)])).err().map(|r| r.answer.body);
        assert!(again.is_some_and(|b| b.contains("charge_already_refunded")));
    }
}
