//! The order service's public HTTP API (`docs/design.md` section 5).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use protocol_core::spans::{self, Phase};
use protocol_core::{CheckoutError, CheckoutOutcome, RejectReason};
use serde_json::{Value, json};
use service_common::error::{ApiError, ApiResult};
use service_common::params::{Amount, Count, Id, NonNegative, PathParams};
use service_common::price_cache::PriceCache;

use crate::checkout::Checkout;
use crate::peers::Peers;
use crate::request_id::RequestId;
use crate::store::{AddItemRefused, Store};

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub cache: PriceCache,
    pub peers: Peers,
    pub checkout: Checkout,
    pub max_batch: i64,
    pub mutations: Mutations,
}

/// Deliberate bugs for the verifier's mutation tests (`SAGA2PC_MUTATIONS`):
/// with `refuse-after-paid=<n>`, every `n`-th checkout that paid answers 400
/// instead of 200, though the payment is committed. Off by default; a test
/// that turns it on must see the harness report the lie.
#[derive(Debug, Clone, Default)]
pub struct Mutations {
    refuse_after_paid_every: Option<u64>,
    paid: Arc<AtomicU64>,
}

impl Mutations {
    /// Parses `SAGA2PC_MUTATIONS` (`refuse-after-paid=<n>`; empty: none).
    pub fn parse(raw: &str) -> anyhow::Result<Self> {
        let mut mutations = Mutations::default();
        for spec in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match spec.split_once('=') {
                Some(("refuse-after-paid", n)) => {
                    let n: u64 =
                        n.parse().map_err(|_| anyhow::anyhow!("refuse-after-paid needs a count, got {n:?}"))?;
                    anyhow::ensure!(n > 0, "refuse-after-paid must be at least 1");
                    mutations.refuse_after_paid_every = Some(n);
                }
                _ => anyhow::bail!("unknown mutation {spec:?}; the only one is refuse-after-paid=<n>"),
            }
        }
        Ok(mutations)
    }

    /// Whether this paid checkout must lie.
    fn refuse_this_paid(&self) -> bool {
        let Some(every) = self.refuse_after_paid_every else { return false };
        self.paid.fetch_add(1, Ordering::Relaxed) % every == every - 1
    }
}

/// The order routes, under `/orders`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/orders/create/{user_id}", post(create_order))
        .route("/orders/batch_init/{n}/{n_items}/{n_users}/{item_price}", post(batch_init))
        .route("/orders/find/{order_id}", get(find_order))
        .route("/orders/addItem/{order_id}/{item_id}/{quantity}", post(add_item))
        .route("/orders/checkout/{order_id}", post(checkout))
        .route("/internal/checkouts", get(checkouts_in_flight))
        .with_state(state)
}

async fn create_order(
    State(state): State<AppState>,
    PathParams(user_id): PathParams<String>,
) -> ApiResult<Json<Value>> {
    let user_id = Id::parse("user_id", &user_id)?;
    // An order of a user who does not exist could never be paid.
    if !state.peers.user_exists(&user_id).await? {
        return Err(ApiError::not_found(format!("user {user_id} not found")));
    }
    let order_id = Id::new_random();
    state.store.create(&order_id, &user_id).await?;
    Ok(Json(json!({ "order_id": order_id.as_str() })))
}

async fn batch_init(
    State(state): State<AppState>,
    PathParams((n, n_items, n_users, price)): PathParams<(String, String, String, String)>,
) -> ApiResult<Json<Value>> {
    let n = Count::parse("n", &n, state.max_batch)?;
    let n_items = Count::parse("n_items", &n_items, i64::MAX)?;
    let n_users = Count::parse("n_users", &n_users, i64::MAX)?;
    let price = NonNegative::parse("item_price", &price)?;
    state.checkout.batch_init(n.get(), n_items.get(), n_users.get(), price.get()).await?;
    Ok(Json(json!({ "msg": "Batch init for orders successful" })))
}

async fn find_order(State(state): State<AppState>, PathParams(order_id): PathParams<String>) -> ApiResult<Json<Value>> {
    let id = Id::parse("order_id", &order_id)?;
    let order = state.store.find(&id).await?.ok_or_else(|| ApiError::not_found(format!("order {id} not found")))?;
    Ok(Json(json!({
        "order_id": order.order_id,
        "paid": order.paid,
        "items": order.items,
        "user_id": order.user_id,
        "total_cost": order.total_cost,
    })))
}

async fn add_item(
    State(state): State<AppState>,
    PathParams((order_id, item_id, quantity)): PathParams<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let order_id = Id::parse("order_id", &order_id)?;
    let item_id = Id::parse("item_id", &item_id)?;
    let quantity = Amount::parse("quantity", &quantity)?;
    let price = match state.cache.get(item_id.as_str()).await {
        Some(price) => price,
        None => {
            let epoch = state.cache.epoch().await;
            let price = state
                .peers
                .price(&item_id)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("item {item_id} not found")))?;
            if let Some(epoch) = epoch {
                state.cache.put(item_id.as_str(), price, epoch).await;
            }
            price
        }
    };
    match state.store.add_item(&order_id, &item_id, quantity.get(), price).await? {
        Ok(total_cost) => Ok(Json(json!({ "order_id": order_id.as_str(), "total_cost": total_cost }))),
        Err(AddItemRefused::NotFound) => Err(ApiError::not_found(format!("order {order_id} not found"))),
        Err(AddItemRefused::Paid) => Err(ApiError::rejected(format!("order {order_id} is already paid"))),
        Err(AddItemRefused::CheckoutInProgress) => {
            Err(ApiError::rejected(format!("order {order_id} is being checked out")))
        }
    }
}

async fn checkout(
    State(state): State<AppState>,
    PathParams(order_id): PathParams<String>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let order_id = Id::parse("order_id", &order_id)?;
    let request = RequestId::from_headers(&headers)?;
    let started = spans::now_us();
    let outcome = state.checkout.run(&order_id, request).await;
    spans::record(order_id.as_str(), Phase::Handler, started, spans::now_us());
    match outcome? {
        // "outcome" tells a verifier whether this call may have paid the order
        // (a saga joined by concurrent checkouts answers each of them "paid").
        Ok(CheckoutOutcome::Paid) if state.mutations.refuse_this_paid() => {
            tracing::warn!(
                order_id = order_id.as_str(),
                "mutation refuse-after-paid: answering 400 for a paid checkout"
            );
            Err(ApiError::Refused(RejectReason::OutOfStock { item_id: format!("in order {order_id} (mutation)") }))
        }
        Ok(CheckoutOutcome::Paid) => {
            Ok(Json(json!({ "order_id": order_id.as_str(), "paid": true, "outcome": "paid" })))
        }
        Ok(CheckoutOutcome::AlreadyPaid) => {
            Ok(Json(json!({ "order_id": order_id.as_str(), "paid": true, "outcome": "already_paid" })))
        }
        Ok(CheckoutOutcome::Rejected(reason)) => Err(ApiError::Refused(reason)),
        Err(CheckoutError::Aborted(cause)) => {
            Err(ApiError::Unavailable(anyhow::anyhow!("checkout of {order_id} aborted: {cause}")))
        }
        Err(CheckoutError::Timeout) => Err(ApiError::Unavailable(anyhow::anyhow!("checkout of {order_id} timed out"))),
        Err(CheckoutError::Internal(cause)) => {
            Err(ApiError::Internal(anyhow::anyhow!("checkout of {order_id} failed: {cause}")))
        }
    }
}

/// `GET /internal/checkouts`: checkouts running on this replica (not routed by
/// the gateway; the harness waits for 0 before it judges the final state).
async fn checkouts_in_flight(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "in_flight": state.checkout.in_flight() }))
}
