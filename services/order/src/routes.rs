//! The order service's public HTTP API (DESIGN.md section 5).

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use protocol_core::{CheckoutError, CheckoutOutcome};
use serde_json::{Value, json};
use service_common::error::{ApiError, ApiResult};
use service_common::params::{Amount, Count, Id, NonNegative, PathParams};
use service_common::price_cache::PriceCache;

use crate::checkout::Checkout;
use crate::stock_client::StockClient;
use crate::store::{AddItemRefused, Store};

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub cache: PriceCache,
    pub stock: StockClient,
    pub checkout: Checkout,
    pub max_batch: i64,
}

/// The order routes, under `/orders`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/orders/create/{user_id}", post(create_order))
        .route("/orders/batch_init/{n}/{n_items}/{n_users}/{item_price}", post(batch_init))
        .route("/orders/find/{order_id}", get(find_order))
        .route("/orders/addItem/{order_id}/{item_id}/{quantity}", post(add_item))
        .route("/orders/checkout/{order_id}", post(checkout))
        .with_state(state)
}

async fn create_order(
    State(state): State<AppState>,
    PathParams(user_id): PathParams<String>,
) -> ApiResult<Json<Value>> {
    let user_id = Id::parse("user_id", &user_id)?;
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
            let price = state
                .stock
                .price(&item_id)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("item {item_id} not found")))?;
            state.cache.put(item_id.as_str(), price).await;
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

async fn checkout(State(state): State<AppState>, PathParams(order_id): PathParams<String>) -> ApiResult<Json<Value>> {
    let order_id = Id::parse("order_id", &order_id)?;
    match state.checkout.run(&order_id).await? {
        Ok(CheckoutOutcome::Paid | CheckoutOutcome::AlreadyPaid) => {
            Ok(Json(json!({ "order_id": order_id.as_str(), "paid": true })))
        }
        Ok(CheckoutOutcome::Rejected(reason)) => Err(ApiError::rejected(reason.to_string())),
        Err(CheckoutError::Aborted(cause)) => {
            Err(ApiError::Unavailable(anyhow::anyhow!("checkout of {order_id} aborted: {cause}")))
        }
        Err(CheckoutError::Timeout) => Err(ApiError::Unavailable(anyhow::anyhow!("checkout of {order_id} timed out"))),
        Err(CheckoutError::Internal(cause)) => {
            Err(ApiError::Internal(anyhow::anyhow!("checkout of {order_id} failed: {cause}")))
        }
    }
}
