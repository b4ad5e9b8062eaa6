use futures::future::join_all;

use crate::helpers::{item_with, spawn_stock};

/// 1000 concurrent subtractions of 1 from a row holding 400: exactly 400 succeed,
/// the rest are refused, and the stock ends at exactly 0 (no lost update, never
/// negative).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_subtracts_never_oversell_or_lose_updates() {
    let app = spawn_stock().await;
    let id = item_with(&app, 1, 400).await;
    let path = format!("/stock/subtract/{id}/1");
    let replies = join_all((0..1000).map(|_| app.post(&path))).await;
    let ok = replies.iter().filter(|(s, _)| *s == 200).count();
    let refused = replies.iter().filter(|(s, _)| *s == 400).count();
    assert_eq!((ok, refused), (400, 600), "unexpected replies: {:?}", replies.iter().find(|(s, _)| *s >= 500));
    assert_eq!(app.get(&format!("/stock/find/{id}")).await.1["stock"], 0);
}

/// Concurrent adds and subtracts: the final stock is the start plus the
/// successful adds minus the successful subtracts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_adds_and_subtracts_conserve_stock() {
    let app = spawn_stock().await;
    let id = item_with(&app, 1, 50).await;
    let add = format!("/stock/add/{id}/2");
    let sub = format!("/stock/subtract/{id}/3");
    let replies = join_all((0..600).map(|i| {
        let path = if i % 2 == 0 { add.clone() } else { sub.clone() };
        let app = &app;
        async move { (path.contains("/add/"), app.post(&path).await.0) }
    }))
    .await;
    assert!(replies.iter().all(|(_, s)| *s == 200 || *s == 400));
    let added: i64 = replies.iter().filter(|(a, s)| *a && *s == 200).count() as i64 * 2;
    let taken: i64 = replies.iter().filter(|(a, s)| !*a && *s == 200).count() as i64 * 3;
    assert_eq!(app.get(&format!("/stock/find/{id}")).await.1["stock"], 50 + added - taken);
}
