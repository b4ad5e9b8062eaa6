use futures::future::join_all;

use crate::helpers::{spawn_payment, user_with};

/// 1000 concurrent payments of 1 from a balance of 300: exactly 300 succeed and
/// the credit ends at exactly 0 (no lost update, never negative).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_payments_never_overdraw_or_lose_updates() {
    let app = spawn_payment().await;
    let id = user_with(&app, 300).await;
    let path = format!("/payment/pay/{id}/1");
    let replies = join_all((0..1000).map(|_| app.post(&path))).await;
    let ok = replies.iter().filter(|(s, _)| *s == 200).count();
    let refused = replies.iter().filter(|(s, _)| *s == 400).count();
    assert_eq!((ok, refused), (300, 700), "unexpected replies: {:?}", replies.iter().find(|(s, _)| *s >= 500));
    assert_eq!(app.get(&format!("/payment/find_user/{id}")).await.1["credit"], 0);
}

/// Concurrent deposits and payments: the final credit is the start plus the
/// successful deposits minus the successful payments.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deposits_and_payments_conserve_credit() {
    let app = spawn_payment().await;
    let id = user_with(&app, 50).await;
    let replies = join_all((0..600).map(|i| {
        let app = &app;
        let id = &id;
        async move {
            let deposit = i % 2 == 0;
            let path = if deposit { format!("/payment/add_funds/{id}/2") } else { format!("/payment/pay/{id}/3") };
            (deposit, app.post(&path).await.0)
        }
    }))
    .await;
    assert!(replies.iter().all(|(_, s)| *s == 200 || *s == 400));
    let added = replies.iter().filter(|(d, s)| *d && *s == 200).count() as i64 * 2;
    let paid = replies.iter().filter(|(d, s)| !*d && *s == 200).count() as i64 * 3;
    assert_eq!(app.get(&format!("/payment/find_user/{id}")).await.1["credit"], 50 + added - paid);
}
