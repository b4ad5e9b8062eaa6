//! The payment service's public HTTP API (`docs/design.md` section 5).

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use service_common::error::{ApiError, ApiResult};
use service_common::params::{Amount, Count, Id, NonNegative, PathParams};

use crate::store::Store;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub max_batch: i64,
}

/// The payment routes, under `/payment`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/payment/create_user", post(create_user))
        .route("/payment/batch_init/{n}/{starting_money}", post(batch_init))
        .route("/payment/find_user/{user_id}", get(find_user))
        .route("/payment/add_funds/{user_id}/{amount}", post(add_funds))
        .route("/payment/pay/{user_id}/{amount}", post(pay))
        .with_state(state)
}

async fn create_user(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let id = Id::new_random();
    state.store.create(&id).await?;
    Ok(Json(json!({ "user_id": id.as_str() })))
}

async fn batch_init(
    State(state): State<AppState>,
    PathParams((n, money)): PathParams<(String, String)>,
) -> ApiResult<Json<Value>> {
    let n = Count::parse("n", &n, state.max_batch)?;
    let money = NonNegative::parse("starting_money", &money)?;
    state.store.batch_init(n.get(), money.get()).await?;
    Ok(Json(json!({ "msg": "Batch init for users successful" })))
}

async fn find_user(State(state): State<AppState>, PathParams(user_id): PathParams<String>) -> ApiResult<Json<Value>> {
    let id = Id::parse("user_id", &user_id)?;
    let credit = state.store.credit(&id).await?.ok_or_else(|| ApiError::not_found(format!("user {id} not found")))?;
    Ok(Json(json!({ "user_id": id.as_str(), "credit": credit })))
}

async fn add_funds(
    State(state): State<AppState>,
    PathParams((user_id, amount)): PathParams<(String, String)>,
) -> ApiResult<Json<Value>> {
    let id = Id::parse("user_id", &user_id)?;
    let amount = Amount::parse("amount", &amount)?;
    let credit = state.store.add_funds(&id, amount.get()).await?;
    Ok(Json(json!({ "user_id": id.as_str(), "credit": credit })))
}

async fn pay(
    State(state): State<AppState>,
    PathParams((user_id, amount)): PathParams<(String, String)>,
) -> ApiResult<Json<Value>> {
    let id = Id::parse("user_id", &user_id)?;
    let amount = Amount::parse("amount", &amount)?;
    let credit = state.store.pay(&id, amount.get()).await?;
    Ok(Json(json!({ "user_id": id.as_str(), "credit": credit })))
}
