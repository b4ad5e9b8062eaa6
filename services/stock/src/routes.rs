//! The stock service's public HTTP API (`docs/design.md` section 5).

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use service_common::error::{ApiError, ApiResult};
use service_common::params::{Amount, Count, Id, NonNegative, PathParams};
use service_common::price_cache::PriceCache;

use crate::store::Store;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub cache: PriceCache,
    pub max_batch: i64,
}

/// The stock routes, under `/stock`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/stock/item/create/{price}", post(create_item))
        .route("/stock/batch_init/{n}/{starting_stock}/{item_price}", post(batch_init))
        .route("/stock/find/{item_id}", get(find_item))
        .route("/stock/add/{item_id}/{amount}", post(add_stock))
        .route("/stock/subtract/{item_id}/{amount}", post(subtract_stock))
        .with_state(state)
}

async fn create_item(State(state): State<AppState>, PathParams(price): PathParams<String>) -> ApiResult<Json<Value>> {
    let price = NonNegative::parse("price", &price)?;
    let id = Id::new_random();
    state.store.create(&id, price.get()).await?;
    Ok(Json(json!({ "item_id": id.as_str() })))
}

async fn batch_init(
    State(state): State<AppState>,
    PathParams((n, stock, price)): PathParams<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let n = Count::parse("n", &n, state.max_batch)?;
    let stock = NonNegative::parse("starting_stock", &stock)?;
    let price = NonNegative::parse("item_price", &price)?;
    state.store.batch_init(n.get(), stock.get(), price.get()).await?;
    // The prices of these ids may have changed: drop what the order service
    // cached. If Redis is unreachable the order service cannot read stale
    // entries either, and Redis keeps nothing across a restart, so a failed
    // invalidation is logged rather than failing a batch that has committed.
    if let Err(err) = state.cache.invalidate((0..n.get()).map(|i| i.to_string())).await {
        tracing::warn!(error = %err, "could not invalidate cached prices");
    }
    Ok(Json(json!({ "msg": "Batch init for stock successful" })))
}

async fn find_item(State(state): State<AppState>, PathParams(item_id): PathParams<String>) -> ApiResult<Json<Value>> {
    let id = Id::parse("item_id", &item_id)?;
    let item = state.store.find(&id).await?.ok_or_else(|| ApiError::not_found(format!("item {id} not found")))?;
    Ok(Json(json!({ "stock": item.stock, "price": item.price })))
}

async fn add_stock(
    State(state): State<AppState>,
    PathParams((item_id, amount)): PathParams<(String, String)>,
) -> ApiResult<Json<Value>> {
    let id = Id::parse("item_id", &item_id)?;
    let amount = Amount::parse("amount", &amount)?;
    let stock = state.store.add(&id, amount.get()).await?;
    Ok(Json(json!({ "item_id": id.as_str(), "stock": stock })))
}

async fn subtract_stock(
    State(state): State<AppState>,
    PathParams((item_id, amount)): PathParams<(String, String)>,
) -> ApiResult<Json<Value>> {
    let id = Id::parse("item_id", &item_id)?;
    let amount = Amount::parse("amount", &amount)?;
    let stock = state.store.subtract(&id, amount.get()).await?;
    Ok(Json(json!({ "item_id": id.as_str(), "stock": stock })))
}
