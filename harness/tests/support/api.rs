//! The course API as seen by a client: create things, read them back.

use serde_json::Value;

/// A client of one gateway (or any base URL serving the API).
#[derive(Debug, Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

/// A reply: status and JSON body (`Null` when there is none).
pub type Reply = (u16, Value);

impl Api {
    pub fn new(base: &str) -> Self {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .unwrap();
        Api { base: base.trim_end_matches('/').to_owned(), http }
    }

    pub async fn post(&self, path: &str) -> Reply {
        let resp = self.http.post(format!("{}{path}", self.base)).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> Reply {
        let resp = self.http.get(format!("{}{path}", self.base)).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn created(&self, path: &str, field: &str) -> String {
        let (status, body) = self.post(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        body[field].as_str().unwrap().to_owned()
    }

    /// A user holding `credit`.
    pub async fn user(&self, credit: i64) -> String {
        let id = self.created("/payment/create_user", "user_id").await;
        if credit > 0 {
            assert_eq!(self.post(&format!("/payment/add_funds/{id}/{credit}")).await.0, 200);
        }
        id
    }

    /// An item at `price` with `stock` units.
    pub async fn item(&self, price: i64, stock: i64) -> String {
        let id = self.created(&format!("/stock/item/create/{price}"), "item_id").await;
        if stock > 0 {
            assert_eq!(self.post(&format!("/stock/add/{id}/{stock}")).await.0, 200);
        }
        id
    }

    /// An order of `user` with `lines` of (item, quantity).
    pub async fn order(&self, user: &str, lines: &[(&str, i64)]) -> String {
        let id = self.created(&format!("/orders/create/{user}"), "order_id").await;
        for (item, qty) in lines {
            let (status, body) = self.post(&format!("/orders/addItem/{id}/{item}/{qty}")).await;
            assert_eq!(status, 200, "{body}");
        }
        id
    }

    pub async fn checkout(&self, order: &str) -> Reply {
        self.post(&format!("/orders/checkout/{order}")).await
    }

    pub async fn stock_of(&self, item: &str) -> i64 {
        let (status, body) = self.get(&format!("/stock/find/{item}")).await;
        assert_eq!(status, 200, "{body}");
        body["stock"].as_i64().unwrap()
    }

    pub async fn credit_of(&self, user: &str) -> i64 {
        let (status, body) = self.get(&format!("/payment/find_user/{user}")).await;
        assert_eq!(status, 200, "{body}");
        body["credit"].as_i64().unwrap()
    }

    pub async fn paid(&self, order: &str) -> bool {
        let (status, body) = self.get(&format!("/orders/find/{order}")).await;
        assert_eq!(status, 200, "{body}");
        body["paid"].as_bool().unwrap()
    }
}
