//! The protocol-neutral checkout conformance suite.
//!
//! Every scenario talks only to the public HTTP API (through the gateway), so
//! the same functions check 2PC and SAGA alike, and any implementation of the
//! course API. Scenarios create their own users, items and orders, so they can
//! share one running stack.

use std::sync::Arc;

use futures::future::join_all;
use tokio::sync::Semaphore;

use super::api::Api;

/// Runs every scenario in turn; a failing one panics with its name.
pub async fn run_all(api: &Api) {
    success(api).await;
    out_of_stock_on_one_of_several_items(api).await;
    insufficient_credit(api).await;
    empty_order(api).await;
    unknown_order(api).await;
    repeat_checkout(api).await;
    a_client_chosen_request_id_claims_nothing(api).await;
    an_order_for_an_unknown_user_is_refused(api).await;
    concurrent_checkouts_of_one_order(api).await;
    course_consistency(api).await;
}

/// A checkout takes the stock of every line and the total from the user.
pub async fn success(api: &Api) {
    let user = api.new_user(100).await.unwrap();
    let a = api.new_item(10, 5).await.unwrap();
    let b = api.new_item(20, 5).await.unwrap();
    let order = api.new_order(&user, &[(&a, 2), (&b, 1), (&a, 1)]).await.unwrap();
    let (status, body) = api.checkout(&order).await.expect_reply();
    assert_eq!(status, 200, "success: {body}");
    assert!(api.paid(&order).await.unwrap(), "success: order not paid");
    assert_eq!((api.stock_of(&a).await.unwrap(), api.stock_of(&b).await.unwrap()), (2, 4), "success: stock");
    assert_eq!(api.credit_of(&user).await.unwrap(), 100 - 50, "success: credit");
}

/// One short item fails the whole checkout; nothing changes anywhere.
pub async fn out_of_stock_on_one_of_several_items(api: &Api) {
    let user = api.new_user(100).await.unwrap();
    let a = api.new_item(1, 5).await.unwrap();
    let b = api.new_item(1, 1).await.unwrap();
    let c = api.new_item(1, 5).await.unwrap();
    let order = api.new_order(&user, &[(&a, 1), (&b, 2), (&c, 1)]).await.unwrap();
    let (status, body) = api.checkout(&order).await.expect_reply();
    assert_eq!((status, &body["reason"]), (400, &"out_of_stock".into()), "out of stock: {body}");
    assert!(!api.paid(&order).await.unwrap(), "out of stock: order paid");
    let stocks = (api.stock_of(&a).await.unwrap(), api.stock_of(&b).await.unwrap(), api.stock_of(&c).await.unwrap());
    assert_eq!(stocks, (5, 1, 5), "out of stock: stock changed");
    assert_eq!(api.credit_of(&user).await.unwrap(), 100, "out of stock: credit changed");
}

/// Too little credit fails the checkout; stock is untouched.
pub async fn insufficient_credit(api: &Api) {
    let user = api.new_user(5).await.unwrap();
    let a = api.new_item(3, 10).await.unwrap();
    let order = api.new_order(&user, &[(&a, 2)]).await.unwrap();
    let (status, body) = api.checkout(&order).await.expect_reply();
    assert_eq!((status, &body["reason"]), (400, &"insufficient_credit".into()), "insufficient credit: {body}");
    assert!(!api.paid(&order).await.unwrap());
    assert_eq!(api.stock_of(&a).await.unwrap(), 10, "insufficient credit: stock changed");
    assert_eq!(api.credit_of(&user).await.unwrap(), 5, "insufficient credit: credit changed");
}

/// An order without items cannot be checked out.
pub async fn empty_order(api: &Api) {
    let user = api.new_user(10).await.unwrap();
    let order = api.new_order(&user, &[]).await.unwrap();
    let (status, body) = api.checkout(&order).await.expect_reply();
    assert_eq!((status, &body["reason"]), (400, &"empty_order".into()), "empty order: {body}");
    assert!(!api.paid(&order).await.unwrap());
    assert_eq!(api.credit_of(&user).await.unwrap(), 10);
}

/// Unknown and malformed order ids are 4xx.
pub async fn unknown_order(api: &Api) {
    for id in ["6f9619ff-8b86-d011-b42d-00cf4fc964ff", "not-an-id"] {
        let (status, body) = api.checkout(id).await.expect_reply();
        assert!((400..500).contains(&status), "unknown order {id}: answered {status} {body}");
    }
}

/// Checking out a paid order again answers 200 and charges nothing.
pub async fn repeat_checkout(api: &Api) {
    let user = api.new_user(50).await.unwrap();
    let a = api.new_item(10, 10).await.unwrap();
    let order = api.new_order(&user, &[(&a, 1)]).await.unwrap();
    assert_eq!(api.checkout(&order).await.expect_reply().0, 200);
    assert_eq!(api.checkout(&order).await.expect_reply().0, 200, "repeat checkout must answer 200");
    assert_eq!(api.credit_of(&user).await.unwrap(), 40, "repeat checkout charged twice");
    assert_eq!(api.stock_of(&a).await.unwrap(), 9, "repeat checkout took stock twice");
}

/// A request id a client chooses claims nothing: client A pays sending
/// `X-Request-Id: a` (and a forged gateway id); client B sending the same ids
/// for the same order is told `already_paid`, not `paid`. Only the gateway's
/// own id tells a retry of the paying call from another call.
pub async fn a_client_chosen_request_id_claims_nothing(api: &Api) {
    let user = api.new_user(50).await.unwrap();
    let a = api.new_item(10, 10).await.unwrap();
    let order = api.new_order(&user, &[(&a, 1)]).await.unwrap();
    let chosen = [("X-Request-Id", "a"), ("X-Gateway-Request-Id", "forged-a")];
    let (status, body) = api.checkout_with(&order, &chosen).await.expect_reply();
    assert_eq!((status, &body["outcome"]), (200, &"paid".into()), "client A: {body}");
    let (status, body) = api.checkout_with(&order, &chosen).await.expect_reply();
    assert_eq!((status, &body["outcome"]), (200, &"already_paid".into()), "client B with A's ids: {body}");
    assert_eq!(api.credit_of(&user).await.unwrap(), 40, "charged once");
}

/// An order for a user the payment service does not know could never be
/// paid: `create` answers 400 and makes nothing.
pub async fn an_order_for_an_unknown_user_is_refused(api: &Api) {
    let user = "6f9619ff-8b86-d011-b42d-00cf4fc964ff";
    let (status, body) = api.post(&format!("/orders/create/{user}")).await.unwrap();
    assert_eq!(status, 400, "create for an unknown user: {body}");
    assert_eq!(body["error"], format!("user {user} not found"), "{body}");
}

/// 16 concurrent checkouts of one order: it is paid once, and every caller is
/// told it is paid (the true outcome), even with credit for two.
pub async fn concurrent_checkouts_of_one_order(api: &Api) {
    let user = api.new_user(25).await.unwrap();
    let a = api.new_item(10, 10).await.unwrap();
    let order = api.new_order(&user, &[(&a, 1)]).await.unwrap();
    let replies = join_all((0..16).map(|_| api.checkout(&order))).await;
    for reply in replies {
        let (status, body) = reply.expect_reply();
        assert_eq!(status, 200, "concurrent checkout answered {status} {body}");
    }
    assert!(api.paid(&order).await.unwrap());
    assert_eq!(api.credit_of(&user).await.unwrap(), 15, "charged more than once");
    assert_eq!(api.stock_of(&a).await.unwrap(), 9, "stock taken more than once");
}

/// The course's consistency test: 1 item with 100 stock at price 1, 1000 users
/// with 1 credit, 1000 concurrent single-item checkouts over 100 connections.
/// Exactly 100 succeed, stock ends at 0, total credit at 900, and every reply
/// matches the final state, checked right after the last reply.
pub async fn course_consistency(api: &Api) {
    let item = api.new_item(1, 100).await.unwrap();
    let gate = Arc::new(Semaphore::new(100));
    let setup = join_all((0..1000).map(|_| {
        let (api, item, gate) = (api.clone(), item.clone(), gate.clone());
        async move {
            let _slot = gate.acquire().await.unwrap();
            let user = api.new_user(1).await.unwrap();
            let order = api.new_order(&user, &[(&item, 1)]).await.unwrap();
            (user, order)
        }
    }))
    .await;
    let replies = join_all(setup.iter().map(|(_, order)| {
        let (api, gate) = (api.clone(), gate.clone());
        async move {
            let _slot = gate.acquire().await.unwrap();
            api.checkout(order).await.expect_reply().0
        }
    }))
    .await;
    let ok = replies.iter().filter(|s| **s == 200).count();
    let system = replies.iter().filter(|s| !(**s == 200 || (400..500).contains(*s))).count();
    let stock = api.stock_of(&item).await.unwrap();
    let credits: Vec<i64> = join_all(setup.iter().map(|(user, _)| api.credit_of(user)))
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()
        .unwrap();
    let paid: Vec<bool> = join_all(setup.iter().map(|(_, order)| api.paid(order)))
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()
        .unwrap();
    assert_eq!(ok, 100, "consistency: successful checkouts ({system} answered 5xx)");
    assert_eq!(stock, 0, "consistency: stock left");
    assert_eq!(credits.iter().sum::<i64>(), 900, "consistency: credit left");
    assert_eq!(paid.iter().filter(|p| **p).count(), 100, "consistency: paid orders");
    for (i, status) in replies.iter().enumerate() {
        // A 5xx is resolved by the final state (checked in the sums above);
        // a 200 or 4xx must match it exactly.
        if *status == 200 || (400..500).contains(status) {
            let expect_paid = *status == 200;
            assert_eq!(paid[i], expect_paid, "consistency: order {i} answered {status} but paid={}", paid[i]);
        }
        assert_eq!(credits[i], if paid[i] { 0 } else { 1 }, "consistency: user {i} credit vs paid={}", paid[i]);
    }
}
