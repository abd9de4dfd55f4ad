//! A target removed and re-added by two reloads in a row, before its old loop has ended, must
//! keep its new loop's series: the old loop's clean-up may not delete them.

use std::time::Duration;

use mesa::app::{App, DEFAULT_GRACE_PERIOD};

use crate::support::*;

/// Remove/re-add rounds; the race needs the old loop to end after the new one started, which
/// happens in a few percent of rounds on 2 cores.
const ROUNDS: usize = 60;

fn config(with: bool) -> mesa::config::Config {
    let extra = if with {
        "  - {name: flapping, driver: postgres, host: '{host}', port: {port}, username: mesa_monitor, password_file: fixture.pw, sslmode: disable}\n"
    } else {
        ""
    };
    daemon_config(&format!(
        "collection: {{interval: 1s, timeout: 800ms}}
web: {{listen_address: '127.0.0.1:0'}}
targets:
  - {{name: steady, driver: postgres, host: '{{host}}', port: {{port}}, username: mesa_monitor, password_file: fixture.pw, sslmode: disable}}
{extra}"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_removed_and_readded_at_once_keeps_its_series() {
    let mut app = App::start(config(true)).await.expect("daemon");
    let up = eventually(Duration::from_secs(5), || async {
        let (_, _, body) = http_get(app.metrics_addr(), "/metrics").await;
        value(&body, "pg_up", &[("server", "flapping")]) == Some(1.0)
    })
    .await;
    assert!(up);
    let mut lost = 0;
    for round in 0..ROUNDS {
        // From a task, as SIGHUP handling does (a runtime worker, not the test's thread).
        app = tokio::spawn(async move {
            app.reload(Ok(config(false))).expect("removed");
            app.reload(Ok(config(true))).expect("re-added");
            app
        })
        .await
        .expect("reload task");
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (_, _, body) = http_get(app.metrics_addr(), "/metrics").await;
        if value(
            &body,
            "mesa_collect_skipped_total",
            &[("server", "flapping")],
        )
        .is_none()
        {
            lost += 1;
            println!("round {round}: the re-added target's counters are gone");
        }
    }
    // And its collections go on: pg_up comes back.
    let back = eventually(Duration::from_secs(5), || async {
        let (_, _, body) = http_get(app.metrics_addr(), "/metrics").await;
        value(&body, "pg_up", &[("server", "flapping")]) == Some(1.0)
    })
    .await;
    app.shutdown(DEFAULT_GRACE_PERIOD).await.expect("shutdown");
    assert_eq!(
        lost, 0,
        "in {lost} of {ROUNDS} rounds the old loop deleted the new one's series"
    );
    assert!(back, "the re-added target collects");
}
