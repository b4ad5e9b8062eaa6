//! The checkout API as a client sees it: one typed client of a gateway (or of
//! any implementation of the API at a base URL), used by the workloads, by
//! `--target` and by the end-to-end tests, and the one place where a checkout
//! reply is classified.
//!
//! The calls that build a data set fail on anything but a 2xx (a workload
//! cannot run on half-made data); [`Api::checkout`] never fails, because
//! every reply, and the lack of one, is a measurement; [`Api::post`],
//! [`Api::get`] and [`Api::delete`] are the raw calls, for tests of bad input
//! and of a replica's internal endpoints, with the paths built by [`path`].

use std::time::Duration;

use anyhow::{Context, bail};
use protocol_core::Refusal;
use serde_json::Value;

use crate::run::verify::OrderRow;

/// Every path of the API the harness calls, built in one place: the typed
/// calls of [`Api`] and the tests that need a raw reply use the same ones.
pub mod path {
    /// `batch_init` of the stock service: items `0..items-1`.
    pub fn batch_init_stock(items: i64, stock: i64, price: i64) -> String {
        format!("/stock/batch_init/{items}/{stock}/{price}")
    }

    /// `batch_init` of the payment service: users `0..users-1`.
    pub fn batch_init_users(users: i64, credit: i64) -> String {
        format!("/payment/batch_init/{users}/{credit}")
    }

    /// `batch_init` of the order service: orders `0..orders-1`.
    pub fn batch_init_orders(orders: i64, items: i64, users: i64, price: i64) -> String {
        format!("/orders/batch_init/{orders}/{items}/{users}/{price}")
    }

    /// A new user with no credit.
    pub const CREATE_USER: &str = "/payment/create_user";

    /// Adds `amount` to a user's credit.
    pub fn add_funds(user: &str, amount: i64) -> String {
        format!("/payment/add_funds/{user}/{amount}")
    }

    /// Takes `amount` from a user's credit.
    pub fn pay(user: &str, amount: i64) -> String {
        format!("/payment/pay/{user}/{amount}")
    }

    /// A user's credit.
    pub fn find_user(user: &str) -> String {
        format!("/payment/find_user/{user}")
    }

    /// A new item at `price`, with no stock.
    pub fn create_item(price: i64) -> String {
        format!("/stock/item/create/{price}")
    }

    /// Adds `amount` units to an item's stock.
    pub fn add_stock(item: &str, amount: i64) -> String {
        format!("/stock/add/{item}/{amount}")
    }

    /// Takes `amount` units from an item's stock.
    pub fn subtract_stock(item: &str, amount: i64) -> String {
        format!("/stock/subtract/{item}/{amount}")
    }

    /// An item's stock and price.
    pub fn find_item(item: &str) -> String {
        format!("/stock/find/{item}")
    }

    /// A new order of `user`.
    pub fn create_order(user: &str) -> String {
        format!("/orders/create/{user}")
    }

    /// Adds `quantity` of `item` to an order.
    pub fn add_item(order: &str, item: &str, quantity: i64) -> String {
        format!("/orders/addItem/{order}/{item}/{quantity}")
    }

    /// An order.
    pub fn find_order(order: &str) -> String {
        format!("/orders/find/{order}")
    }

    /// Checks an order out.
    pub fn checkout(order: &str) -> String {
        format!("/orders/checkout/{order}")
    }

    /// A replica's readiness (503 until it can serve).
    pub const HEALTH: &str = "/health";

    /// A protocol's counters on a replica (`protocol`: `2pc` or `saga`).
    pub fn protocol_metrics(protocol: &str) -> String {
        format!("/internal/{protocol}/metrics")
    }

    /// A saga service replica's counters.
    pub const SAGA_METRICS: &str = "/internal/saga/metrics";

    /// A saga service replica's effective settings.
    pub const SAGA_SETTINGS: &str = "/internal/saga/settings";

    /// Every crash point armed in a replica (`DELETE` disarms them all).
    pub const CRASHPOINTS: &str = "/internal/crashpoints";

    /// Arms crash point `point` in a replica.
    pub fn crashpoint(point: &str) -> String {
        format!("/internal/crashpoints/{point}")
    }

    /// The spans a replica recorded since the last drain (`protocol_core::spans`).
    pub const SPANS: &str = "/internal/spans";

    /// The checkouts an order replica is running.
    pub const CHECKOUTS_IN_FLIGHT: &str = "/internal/checkouts";
}

/// A client of one base URL.
#[derive(Debug, Clone)]
pub struct Api {
    base: String,
    http: reqwest::Client,
}

/// How one checkout reply is read: its status, and for a refusal the
/// `"reason"` the services name ([`protocol_core::Refusal`]); for a 200
/// whether this call paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// 2xx: the order is paid. `already` when the reply says an earlier call
    /// paid it (`"outcome": "already_paid"`) and this one charged nothing;
    /// `false` also when the reply says nothing either way (another
    /// implementation of the API).
    Paid {
        /// Whether an earlier call paid the order.
        already: bool,
    },
    /// 4xx: an item was short.
    OutOfStock,
    /// 4xx: the user's credit was short.
    InsufficientCredit,
    /// 409: a row stayed locked past the lock budget (2PC); try again.
    Busy,
    /// Any other 4xx (unknown order or item, empty order, an order being
    /// checked out, a reply without a reason the harness knows).
    OtherRejection,
    /// 5xx: a system failure; the final state says whether it paid.
    System,
    /// No reply: a timeout or a connection error.
    NoReply,
}

/// The three ways a reply counts in a timeline and in the course's scoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// 2xx.
    Paid,
    /// 4xx: refused, nothing changed.
    Refused,
    /// 5xx or no reply: the outcome is the final state's to tell.
    Failed,
}

impl Reply {
    /// Classifies a status (`None`: no reply) and its JSON body.
    pub fn classify(status: Option<u16>, body: &Value) -> Reply {
        let refusal = || serde_json::from_value::<Refusal>(body["reason"].clone()).ok();
        match status {
            None => Reply::NoReply,
            Some(200..=299) => Reply::Paid { already: body["outcome"] == "already_paid" },
            Some(400..=499) => match refusal() {
                Some(Refusal::OutOfStock) => Reply::OutOfStock,
                Some(Refusal::InsufficientCredit) => Reply::InsufficientCredit,
                Some(Refusal::Busy) => Reply::Busy,
                _ => Reply::OtherRejection,
            },
            Some(_) => Reply::System,
        }
    }

    /// Which of the three ways it counts.
    pub fn class(self) -> Class {
        match self {
            Reply::Paid { .. } => Class::Paid,
            Reply::OutOfStock | Reply::InsufficientCredit | Reply::Busy | Reply::OtherRejection => Class::Refused,
            Reply::System | Reply::NoReply => Class::Failed,
        }
    }

    /// Name in summaries and reports.
    pub fn name(self) -> &'static str {
        match self {
            Reply::Paid { .. } => "paid",
            Reply::OutOfStock => "out-of-stock",
            Reply::InsufficientCredit => "insufficient-credit",
            Reply::Busy => "busy",
            Reply::OtherRejection => "other-4xx",
            Reply::System => "system-5xx",
            Reply::NoReply => "no-reply",
        }
    }
}

/// One checkout's reply.
#[derive(Debug, Clone)]
pub struct CheckoutReply {
    /// HTTP status (`None`: no reply).
    pub status: Option<u16>,
    /// The JSON body (`Null` without one; a 5xx's body is not read).
    pub body: Value,
    /// What it means.
    pub reply: Reply,
}

impl CheckoutReply {
    /// Status and body of a checkout that must have been answered; panics
    /// (naming the order) when it was not. For tests, where no reply is a
    /// failure of the test.
    pub fn expect_reply(self) -> (u16, Value) {
        match self.status {
            Some(status) => (status, self.body),
            None => panic!("the checkout got no reply: {}", self.body),
        }
    }
}

/// An item as `GET /stock/find` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item {
    /// Units in stock.
    pub stock: i64,
    /// Price of one unit.
    pub price: i64,
}

impl Api {
    /// A client of `base` whose calls give up after `timeout`, keeping up to
    /// `idle` connections open for reuse.
    pub fn new(base: &str, timeout: Duration, idle: usize) -> anyhow::Result<Api> {
        let http = reqwest::Client::builder().pool_max_idle_per_host(idle).timeout(timeout).build()?;
        Ok(Api { base: base.trim_end_matches('/').to_owned(), http })
    }

    /// `POST <path>`: status and JSON body (`Null` when there is none).
    pub async fn post(&self, path: &str) -> reqwest::Result<(u16, Value)> {
        let resp = self.http.post(format!("{}{path}", self.base)).send().await?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }

    /// `GET <path>`: status and JSON body (`Null` when there is none).
    pub async fn get(&self, path: &str) -> reqwest::Result<(u16, Value)> {
        let resp = self.http.get(format!("{}{path}", self.base)).send().await?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }

    /// `DELETE <path>`: status and JSON body (`Null` when there is none).
    pub async fn delete(&self, path: &str) -> reqwest::Result<(u16, Value)> {
        let resp = self.http.delete(format!("{}{path}", self.base)).send().await?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }

    /// A call that must succeed: its body, or an error naming the call and
    /// the reply.
    async fn ok(&self, post: bool, path: &str) -> anyhow::Result<Value> {
        let call = if post { "POST" } else { "GET" };
        let (status, body) = if post { self.post(path).await } else { self.get(path).await }
            .with_context(|| format!("{call} {path}"))?;
        if !(200..300).contains(&status) {
            bail!("{call} {path} answered {status}: {body}");
        }
        Ok(body)
    }

    async fn field<T>(
        &self,
        post: bool,
        path: &str,
        field: &str,
        read: impl Fn(&Value) -> Option<T>,
    ) -> anyhow::Result<T> {
        let body = self.ok(post, path).await?;
        read(&body[field]).with_context(|| format!("{path}: no {field} in {body}"))
    }

    /// `batch_init` of the stock service: items `0..n-1`.
    pub async fn batch_init_stock(&self, items: i64, stock: i64, price: i64) -> anyhow::Result<()> {
        self.ok(true, &path::batch_init_stock(items, stock, price)).await.map(drop)
    }

    /// `batch_init` of the payment service: users `0..n-1`.
    pub async fn batch_init_users(&self, users: i64, credit: i64) -> anyhow::Result<()> {
        self.ok(true, &path::batch_init_users(users, credit)).await.map(drop)
    }

    /// `batch_init` of the order service: orders `0..n-1` of two random items
    /// of `0..items-1` each, for random users of `0..users-1`.
    pub async fn batch_init_orders(&self, orders: i64, items: i64, users: i64, price: i64) -> anyhow::Result<()> {
        self.ok(true, &path::batch_init_orders(orders, items, users, price)).await.map(drop)
    }

    /// A new user holding `credit`.
    pub async fn new_user(&self, credit: i64) -> anyhow::Result<String> {
        let id = self.field(true, path::CREATE_USER, "user_id", |v| Some(v.as_str()?.to_owned())).await?;
        if credit > 0 {
            self.ok(true, &path::add_funds(&id, credit)).await?;
        }
        Ok(id)
    }

    /// A new item at `price` with `stock` units.
    pub async fn new_item(&self, price: i64, stock: i64) -> anyhow::Result<String> {
        let id = self.field(true, &path::create_item(price), "item_id", |v| Some(v.as_str()?.to_owned())).await?;
        if stock > 0 {
            self.ok(true, &path::add_stock(&id, stock)).await?;
        }
        Ok(id)
    }

    /// A new order of `user` holding `lines` of (item, quantity).
    pub async fn new_order(&self, user: &str, lines: &[(&str, i64)]) -> anyhow::Result<String> {
        let id = self.field(true, &path::create_order(user), "order_id", |v| Some(v.as_str()?.to_owned())).await?;
        for (item, quantity) in lines {
            self.ok(true, &path::add_item(&id, item, *quantity)).await?;
        }
        Ok(id)
    }

    /// A user's credit.
    pub async fn credit_of(&self, user: &str) -> anyhow::Result<i64> {
        self.field(false, &path::find_user(user), "credit", Value::as_i64).await
    }

    /// An item's stock and price.
    pub async fn item(&self, item: &str) -> anyhow::Result<Item> {
        let body = self.ok(false, &path::find_item(item)).await?;
        match (body["stock"].as_i64(), body["price"].as_i64()) {
            (Some(stock), Some(price)) => Ok(Item { stock, price }),
            _ => bail!("{}: no stock and price in {body}", path::find_item(item)),
        }
    }

    /// An item's stock (all a verifier needs, so a system whose item shows
    /// no price can still be checked).
    pub async fn stock_of(&self, item: &str) -> anyhow::Result<i64> {
        self.field(false, &path::find_item(item), "stock", Value::as_i64).await
    }

    /// An order as `GET /orders/find` shows it.
    pub async fn order(&self, order: &str) -> anyhow::Result<OrderRow> {
        let body = self.ok(false, &path::find_order(order)).await?;
        let read = || {
            let items = body["items"]
                .as_array()?
                .iter()
                .map(|line| Some((line[0].as_str()?.to_owned(), line[1].as_i64()?)))
                .collect::<Option<Vec<_>>>()?;
            Some(OrderRow {
                user_id: body["user_id"].as_str()?.to_owned(),
                paid: body["paid"].as_bool()?,
                total_cost: body["total_cost"].as_i64()?,
                items,
            })
        };
        read().with_context(|| format!("{}: not an order: {body}", path::find_order(order)))
    }

    /// Whether an order is paid.
    pub async fn paid(&self, order: &str) -> anyhow::Result<bool> {
        Ok(self.order(order).await?.paid)
    }

    /// `POST /orders/checkout/<order>`, classified.
    pub async fn checkout(&self, order: &str) -> CheckoutReply {
        self.checkout_with(order, &[]).await
    }

    /// [`Api::checkout`] with extra request headers (`(name, value)`): a
    /// client that sends its own ids.
    pub async fn checkout_with(&self, order: &str, headers: &[(&str, &str)]) -> CheckoutReply {
        let mut request = self.http.post(format!("{}{}", self.base, path::checkout(order)));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let resp = match request.send().await {
            Ok(resp) => resp,
            Err(err) => {
                let body = Value::String(format!("checkout of {order}: {err}"));
                return CheckoutReply { status: None, body, reply: Reply::NoReply };
            }
        };
        let status = resp.status().as_u16();
        // A refusal's body says why, a 200's whether this call paid; a 5xx's
        // (a gateway's HTML page, perhaps) says nothing the harness reads.
        let body = if status < 500 { resp.json().await.unwrap_or(Value::Null) } else { Value::Null };
        CheckoutReply { status: Some(status), reply: Reply::classify(Some(status), &body), body }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn classifies_replies_by_status_and_named_reason() {
        let busy = json!({"error": "payment is busy: ...", "reason": "busy"});
        assert_eq!(Reply::classify(Some(409), &busy), Reply::Busy);
        // The wording does not count, only the named reason.
        assert_eq!(Reply::classify(Some(409), &json!({"error": "order 1 is busy"})), Reply::OtherRejection);
        let short = json!({"error": "out of stock on item 3", "reason": "out_of_stock"});
        assert_eq!(Reply::classify(Some(400), &short), Reply::OutOfStock);
        let poor = json!({"error": "insufficient credit", "reason": "insufficient_credit"});
        assert_eq!(Reply::classify(Some(400), &poor), Reply::InsufficientCredit);
        assert_eq!(Reply::classify(Some(400), &json!({"reason": "empty_order"})), Reply::OtherRejection);
        assert_eq!(Reply::classify(Some(400), &json!({"reason": "no-such-reason"})), Reply::OtherRejection);
        assert_eq!(Reply::classify(Some(200), &Value::Null), Reply::Paid { already: false });
        assert_eq!(Reply::classify(Some(200), &json!({"outcome": "paid"})), Reply::Paid { already: false });
        assert_eq!(Reply::classify(Some(200), &json!({"outcome": "already_paid"})), Reply::Paid { already: true });
        assert_eq!(Reply::classify(Some(503), &Value::Null), Reply::System);
        assert_eq!(Reply::classify(None, &Value::Null), Reply::NoReply);
    }

    #[test]
    fn every_reply_counts_one_way() {
        assert_eq!(Reply::Paid { already: true }.class(), Class::Paid);
        assert_eq!(Reply::Busy.class(), Class::Refused);
        assert_eq!(Reply::OtherRejection.class(), Class::Refused);
        assert_eq!(Reply::System.class(), Class::Failed);
        assert_eq!(Reply::NoReply.class(), Class::Failed);
    }
}
