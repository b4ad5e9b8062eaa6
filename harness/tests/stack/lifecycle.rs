use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::Value;

use crate::support::api::{self, Api, path};
use crate::support::{TestStack, component, eventually, pid_alive, text, when};

/// `method` `path` on the gateway: status and body.
async fn call(gateway: &Api, method: &str, path: &str) -> (u16, Value) {
    let reply = if method == "GET" { gateway.get(path).await } else { gateway.post(path).await };
    reply.expect("gateway answers")
}

/// Every non-checkout endpoint through the gateway.
async fn exercise_gateway(gateway: &Api) -> String {
    let (status, body) = call(gateway, "POST", &path::create_item(4)).await;
    assert_eq!(status, 200, "{body}");
    let item = body["item_id"].as_str().unwrap().to_owned();
    assert_eq!(call(gateway, "POST", &path::add_stock(&item, 10)).await.0, 200);
    assert_eq!(call(gateway, "POST", &path::subtract_stock(&item, 3)).await.0, 200);
    assert_eq!(call(gateway, "GET", &path::find_item(&item)).await.1, serde_json::json!({"stock": 7, "price": 4}));
    assert_eq!(call(gateway, "POST", &path::batch_init_stock(5, 10, 1)).await.0, 200);

    let (_, body) = call(gateway, "POST", path::CREATE_USER).await;
    let user = body["user_id"].as_str().unwrap().to_owned();
    assert_eq!(call(gateway, "POST", &path::add_funds(&user, 50)).await.0, 200);
    assert_eq!(call(gateway, "POST", &path::pay(&user, 20)).await.0, 200);
    assert_eq!(call(gateway, "GET", &path::find_user(&user)).await.1["credit"], 30);
    assert_eq!(call(gateway, "POST", &path::batch_init_users(5, 10)).await.0, 200);

    let (_, body) = call(gateway, "POST", &path::create_order(&user)).await;
    let order = body["order_id"].as_str().unwrap().to_owned();
    assert_eq!(call(gateway, "POST", &path::add_item(&order, &item, 2)).await.1["total_cost"], 8);
    let (_, found) = call(gateway, "GET", &path::find_order(&order)).await;
    assert_eq!(found["items"], serde_json::json!([[item, 2]]));
    assert_eq!(call(gateway, "POST", &path::batch_init_orders(5, 5, 5, 1)).await.0, 200);
    assert_eq!(call(gateway, "GET", &path::find_order("4")).await.0, 200);

    // Not routed: internal paths and unknown prefixes.
    assert_eq!(call(gateway, "GET", path::HEALTH).await.0, 404);
    item
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_status_restart_and_down() {
    let _serial = crate::support::serial();
    let stack = TestStack::new("lifecycle-stack");
    let gateway = api::client(&stack.gateway());

    // A port already taken is named up front instead of failing deep in a log.
    let redis_port = stack.port_base + 20;
    let squatter = std::net::TcpListener::bind(("127.0.0.1", redis_port)).unwrap();
    let out = stack.harness(&["up", "--protocol", "2pc", "--detach"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains(&format!("ports in use: {redis_port} (redis)")), "{}", text(&out.stderr));
    drop(squatter);

    let out = stack.harness(&["up", "--protocol", "2pc", "--detach", "--replicas", "2", "--partitions", "3"]);
    assert!(out.status.success(), "up failed: {}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("ready"), "{}", text(&out.stdout));

    // A second `up` on the same directory refuses instead of clobbering.
    let again = stack.harness(&["up", "--protocol", "saga", "--detach"]);
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("already running"), "{}", text(&again.stderr));

    let status = stack.status().expect("status succeeds while the stack runs");
    assert_eq!(status["phase"], "ready");
    assert_eq!(status["protocol"], "2pc");
    assert_eq!(status["gateway"], stack.gateway());
    for name in [
        "postgres-order",
        "postgres-stock",
        "postgres-payment",
        "redis",
        "kafka#0",
        "gateway",
        "order#0",
        "order#1",
        "stock#0",
        "stock#1",
        "payment#0",
        "payment#1",
    ] {
        let pid = component(&status, name)["pid"].as_u64().unwrap();
        assert!(pid_alive(pid), "{name} (pid {pid}) is not running");
    }
    for db in ["order", "stock", "payment"] {
        let url = status["databases"][db].as_str().unwrap();
        let pool = sqlx::PgPool::connect(url).await.expect("database reachable");
        let max_prepared: String = sqlx::query_scalar("SHOW max_prepared_transactions").fetch_one(&pool).await.unwrap();
        let max_conn: String = sqlx::query_scalar("SHOW max_connections").fetch_one(&pool).await.unwrap();
        assert!(max_prepared.parse::<u32>().unwrap() >= max_conn.parse::<u32>().unwrap());
        let fsync: String = sqlx::query_scalar("SHOW fsync").fetch_one(&pool).await.unwrap();
        assert_eq!(fsync, "on");
    }
    let consumer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", status["kafka_bootstrap"].as_str().unwrap()).create().unwrap();
    let metadata = consumer.fetch_metadata(None, Duration::from_secs(10)).expect("Kafka answers");
    let saga_topics: Vec<_> = metadata.topics().iter().filter(|t| t.name().starts_with("saga-")).collect();
    assert_eq!(saga_topics.len(), 3);
    assert!(saga_topics.iter().all(|t| t.partitions().len() == 3));

    let item = exercise_gateway(&gateway).await;

    // A killed service replica is restarted by the supervisor.
    let victim = component(&status, "stock#0")["pid"].as_u64().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(victim as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    eventually("stock#0 restarted", Duration::from_secs(15), || async {
        let c = component(&stack.status().expect("still running"), "stock#0").clone();
        when(c["restarts"] == 1 && c["pid"].as_u64() != Some(victim), || c.to_string())
    })
    .await;
    let restarted = component(&stack.status().unwrap(), "stock#0").clone();
    let log = std::fs::read_to_string(stack.dir.join("harness.log")).unwrap();
    assert!(log.contains("process exited; restarting") && log.contains("stock#0"), "{log}");
    let replica = api::client(restarted["url"].as_str().unwrap());
    eventually("the restarted stock#0 healthy", Duration::from_secs(15), || async {
        match replica.get(path::HEALTH).await {
            Ok((status, _)) => when(status == 200, || format!("{} answered {status}", path::HEALTH)),
            Err(err) => Err(err.to_string()),
        }
    })
    .await;
    assert_eq!(call(&gateway, "GET", &path::find_item(&item)).await.0, 200);

    // down stops everything.
    let pids: Vec<u64> =
        stack.status().unwrap()["components"].as_array().unwrap().iter().map(|c| c["pid"].as_u64().unwrap()).collect();
    let out = stack.harness(&["down"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for pid in pids {
        assert!(!pid_alive(pid), "pid {pid} survived down");
    }
    assert!(stack.status().is_none(), "status fails once the stack is down");

    // --keep-data brings the same databases back; a plain up starts empty.
    let out = stack.harness(&["up", "--protocol", "2pc", "--detach", "--keep-data"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(call(&gateway, "GET", &path::find_item(&item)).await.1["stock"], 7);
    assert!(stack.harness(&["down"]).status.success());
    let out = stack.harness(&["up", "--protocol", "2pc", "--detach"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(call(&gateway, "GET", &path::find_item(&item)).await.0, 400);
}
