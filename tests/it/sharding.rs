//! Sharding (issue 10): three replicas with `--shard.count 3` over one config of 30 targets.
//! Every target is collected by exactly one replica, the union of their `/metrics` is the
//! target set of one unsharded Mesa, and a replica asked for a target it does not own says
//! which shard does, on `/probe` and on the admin API.

use std::collections::BTreeSet;
use std::time::Duration;

use mesa::app::{App, DEFAULT_GRACE_PERIOD};
use mesa::shard::Shard;

use crate::support::*;

const TARGETS: usize = 30;

fn config(shard: Shard, token_sha256: &str) -> mesa::config::Config {
    let mut yaml = format!(
        "collection: {{interval: 2s, timeout: 1s}}
web: {{listen_address: '127.0.0.1:0'}}
admin:
  listen_address: '127.0.0.1:0'
  tokens:
    - {{name: shard, sha256: '{token_sha256}', scopes: [read], targets: ['*']}}
targets:
"
    );
    for i in 0..TARGETS {
        yaml.push_str(&format!(
            "  - {{name: fleet-{i:02}, driver: postgres, host: '{{host}}', port: {{port}}, username: mesa_monitor, password_file: fixture.pw, sslmode: disable}}\n"
        ));
    }
    let mut config = daemon_config(&yaml);
    config.shard = shard;
    config
}

/// The `server` labels of `pg_up` once every target the replica serves has been collected.
async fn served(app: &App) -> BTreeSet<String> {
    let addr = app.metrics_addr();
    assert!(
        eventually(Duration::from_secs(20), || async {
            http_get(addr, "/readyz").await.0 == 200
        })
        .await,
        "{}",
        http_get(addr, "/readyz").await.2
    );
    let body = http_get(addr, "/metrics").await.2;
    samples(&body)
        .into_iter()
        .filter(|s| s.name == "pg_up")
        .filter_map(|s| s.label("server").map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_split_thirty_targets_and_point_at_each_other() {
    let token = mesa::token::generate().expect("token");
    let mut replicas = Vec::new();
    for index in 0..3 {
        let shard = Shard::new(index, 3).expect("shard");
        replicas.push((
            shard,
            App::start(config(shard, &token.sha256_hex))
                .await
                .expect("replica starts"),
        ));
    }
    let single = App::start(config(Shard::SINGLE, &token.sha256_hex))
        .await
        .expect("unsharded Mesa starts");

    let mut union = BTreeSet::new();
    let mut total = 0;
    for (shard, app) in &replicas {
        let mine = served(app).await;
        for name in &mine {
            assert!(shard.owns(name), "{shard} serves {name}");
        }
        assert!(
            !mine.is_empty() && mine.len() < TARGETS,
            "{shard}: {mine:?}"
        );
        total += mine.len();
        union.extend(mine);
    }
    assert_eq!(total, TARGETS, "every target exactly once");
    let everything = served(&single).await;
    assert_eq!(everything.len(), TARGETS);
    assert_eq!(union, everything);

    // Replica 0, asked for a target of another shard, names the owner.
    let (shard0, app0) = &replicas[0];
    let foreign = everything
        .iter()
        .find(|t| !shard0.owns(t))
        .expect("another shard's target");
    let owner = shard0.owner_of(foreign);
    let (status, _, body) =
        http_get(app0.metrics_addr(), &format!("/probe?target={foreign}")).await;
    assert_eq!(status, 421, "{body}");
    assert!(
        body.contains(&format!("collected by shard {owner} of 3; this is shard 0")),
        "{body}"
    );
    let reply = request(
        app0.admin_addr().expect("admin"),
        "GET",
        &format!("/api/v1/targets/{foreign}/health"),
        Some(token.token.expose()),
        None,
    )
    .await;
    assert_eq!(reply.status, 421, "{}", reply.body);
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    assert!(
        reply.json()["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&format!("served by shard {owner} of 3"))),
        "{}",
        reply.body
    );
    // A name no replica has is still unknown, not misdirected.
    let (status, _, _) = http_get(app0.metrics_addr(), "/probe?target=nowhere").await;
    assert_eq!(status, 400);

    for (_, app) in replicas {
        app.shutdown(DEFAULT_GRACE_PERIOD).await.expect("shutdown");
    }
    single
        .shutdown(DEFAULT_GRACE_PERIOD)
        .await
        .expect("shutdown");
}
