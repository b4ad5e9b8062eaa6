//! Fault helpers shared by the protocols' crash tests: a one-checkout case
//! with an all-or-nothing check, arming crash points, killing components and
//! waiting for the supervisor to restart them.

use std::time::Duration;

use super::api::{Api, path};
use super::{TestStack, component, eventually, when};

/// One checkout's world: a user, an item and an order of it; by default a
/// user with 100 credit, an item with 10 stock at 10, and an order of 2.
pub struct Case {
    pub user: String,
    pub item: String,
    pub order: String,
    credit: i64,
    stock: i64,
    cost: (i64, i64),
}

impl Case {
    pub async fn new(api: &Api) -> Case {
        Case::with(api, 100, 10, 10, 2).await
    }

    /// A user with `credit`, an item with `stock` at `price`, an order of `qty`.
    pub async fn with(api: &Api, credit: i64, stock: i64, price: i64, qty: i64) -> Case {
        let user = api.new_user(credit).await.unwrap();
        let item = api.new_item(price, stock).await.unwrap();
        let order = api.new_order(&user, &[(&item, qty)]).await.unwrap();
        Case { user, item, order, credit, stock, cost: (qty, qty * price) }
    }

    /// The order is paid with exactly one debit and one set of stock
    /// decrements, or not paid and untouched. Returns whether it is paid.
    pub async fn assert_all_or_nothing(&self, api: &Api, what: &str) -> bool {
        let paid = api.paid(&self.order).await.unwrap();
        let state = (api.stock_of(&self.item).await.unwrap(), api.credit_of(&self.user).await.unwrap());
        let expected =
            if paid { (self.stock - self.cost.0, self.credit - self.cost.1) } else { (self.stock, self.credit) };
        assert_eq!(state, expected, "{what}: paid={paid} but (stock, credit) = {state:?}");
        paid
    }
}

pub async fn restarts(stack: &TestStack, name: &str) -> u64 {
    component(&stack.status().unwrap(), name)["restarts"].as_u64().unwrap()
}

pub async fn wait_restarted(stack: &TestStack, name: &str, before: u64) {
    let restarted = format!("{name} restarted");
    eventually(&restarted, Duration::from_secs(30), || async {
        let n = restarts(stack, name).await;
        when(n > before, || format!("{n} restarts"))
    })
    .await;
    let replica = super::replica(stack, name);
    eventually(&format!("{name} healthy again"), Duration::from_secs(30), || async {
        match replica.get(path::HEALTH).await {
            Ok((200, _)) => Ok(()),
            Ok((status, body)) => Err(format!("/health answered {status} {body}")),
            Err(err) => Err(err.to_string()),
        }
    })
    .await;
}

pub async fn arm(stack: &TestStack, name: &str, point: &str) {
    let (status, body) = super::replica(stack, name).post(&path::crashpoint(point)).await.unwrap();
    assert_eq!(status, 200, "arming {point} on {name}: {body}");
}

/// Sends `signal` to the process of component `name`.
pub fn signal(stack: &TestStack, name: &str, signal: nix::sys::signal::Signal) {
    let pid = component(&stack.status().unwrap(), name)["pid"].as_u64().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal).unwrap();
}

/// Waits until the supervisor restarted component `name` (more than `before`
/// restarts), without a health check (for infrastructure).
pub async fn wait_restart_count(stack: &TestStack, name: &str, before: u64) {
    eventually(&format!("{name} restarted"), Duration::from_secs(60), || async {
        let n = restarts(stack, name).await;
        when(n > before, || format!("{n} restarts"))
    })
    .await;
}
