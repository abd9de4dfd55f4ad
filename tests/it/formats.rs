//! The exposition format a scraper asks for (issue 20, section 5): OpenMetrics for
//! Prometheus' `Accept`, the classic text format 0.0.4 for a scraper that asks for it or asks
//! for nothing (vmagent, Telegraf, curl), each with its content type, each through a strict
//! parser for that format (the OpenMetrics reference parser; Prometheus' own classic text
//! parser through `promtool`, and the Python client's), with gzip for both, on `/metrics` and
//! `/probe`, with the same samples in both.

use std::collections::BTreeSet;

use mesa::app::{App, DEFAULT_GRACE_PERIOD};

use crate::exporter::{get_as, system_gunzip};
use crate::prometheus::which;
use crate::support::*;

const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `(name, labels)` of every sample, without the values (they move between scrapes), and
/// without the exporter's own process figures.
fn shapes(text: &str) -> BTreeSet<String> {
    samples(text)
        .iter()
        .filter(|s| {
            !s.name.starts_with("mesa_process") && !s.name.starts_with("mesa_collect_start_delay")
        })
        .map(|s| format!("{}{:?}", s.name, s.labels))
        .collect()
}

/// Fails unless Prometheus' classic text parser (`promtool check metrics`) parses `text`;
/// its lint advice (naming conventions) is not a parse error and is allowed.
fn assert_promtool_parses(text: &str) {
    let promtool =
        which("promtool").expect("promtool (apt-get install prometheus; .ci/run installs it)");
    let mut command = std::process::Command::new(promtool);
    command.args(["check", "metrics"]);
    let out = feed(command, text);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !said.contains("parsing error") && !said.contains("error while linting"),
        "{said}"
    );
}

/// Fails unless the Python client's classic text parser reads `text`.
fn assert_python_classic_parses(text: &str) {
    let out = python_parse("prometheus_client.parser", text);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_scraper_gets_the_format_it_asks_for() {
    let app = App::start(daemon_config(&format!(
        "collection: {{interval: 5s, timeout: 4s, {NO_VISITS}}}
web: {{listen_address: '127.0.0.1:0'}}
targets:
  - {{name: fmt, driver: postgres, host: '{{host}}', port: {{port}}, database: postgres, username: mesa_monitor, password_file: fixture.pw, sslmode: disable}}
"
    )))
    .await
    .expect("daemon starts");
    let addr = app.metrics_addr();
    let collected = eventually(std::time::Duration::from_secs(30), || async {
        http_get(addr, "/metrics")
            .await
            .2
            .contains("pg_up{server=\"fmt\"} 1")
    })
    .await;
    assert!(collected);

    for path in ["/metrics", "/probe?target=fmt"] {
        // Prometheus: OpenMetrics.
        let (status, headers, body) = get_as(addr, path, PROMETHEUS_ACCEPT, None).await;
        let om = String::from_utf8(body).expect("utf-8");
        assert_eq!(status, 200);
        assert_eq!(
            headers["content-type"],
            mesa::metrics::CONTENT_TYPE,
            "{path}"
        );
        assert!(om.ends_with("# EOF\n"), "{path}");
        assert!(
            om.contains("# TYPE pg_stat_database_xact_commit counter\n"),
            "{path}"
        );
        assert_openmetrics_valid(&om);

        // No Accept, `*/*`, and text/plain asked by name (vmagent, Telegraf): the classic text.
        for accept in [
            "",
            "*/*",
            "text/plain;version=0.0.4;q=1,application/openmetrics-text;q=0.5",
        ] {
            let (status, headers, body) = get_as(addr, path, accept, None).await;
            let text = String::from_utf8(body).expect("utf-8");
            assert_eq!(status, 200);
            assert_eq!(headers["content-type"], CLASSIC, "{path} {accept:?}");
            assert_eq!(headers["vary"], "accept, accept-encoding");
            assert!(!text.contains("# EOF"), "{path}");
            assert!(
                text.contains("# HELP pg_stat_database_xact_commit_total ")
                    && text.contains("# TYPE pg_stat_database_xact_commit_total counter\n"),
                "a counter's HELP and TYPE name its samples:\n{text}"
            );
            assert!(
                text.contains("pg_stat_database_xact_commit_total{"),
                "{path}"
            );
            // The same samples in both formats: two scrapes in a row usually see the same
            // collection; one that fell between two (the shared cluster changes) is retried.
            let mut same = false;
            for _ in 0..10 {
                let om = get_as(addr, path, PROMETHEUS_ACCEPT, None).await.2;
                let text = get_as(addr, path, accept, None).await.2;
                let (om, text) = (String::from_utf8_lossy(&om), String::from_utf8_lossy(&text));
                if shapes(&text) == shapes(&om) {
                    same = true;
                    break;
                }
            }
            assert!(
                same,
                "{path}: the classic text has other samples than OpenMetrics"
            );
            assert_promtool_parses(&text);
            assert_python_classic_parses(&text);
        }

        // gzip for both.
        let (_, headers, zipped) = get_as(addr, path, "", Some("gzip")).await;
        assert_eq!(headers["content-encoding"], "gzip");
        assert_eq!(headers["content-type"], CLASSIC);
        let text = system_gunzip(&zipped);
        assert!(
            !text.contains("# EOF") && text.contains("# TYPE pg_up gauge"),
            "{path}"
        );
        assert_promtool_parses(&text);
        let (_, headers, zipped) = get_as(addr, path, PROMETHEUS_ACCEPT, Some("gzip")).await;
        assert_eq!(headers["content-encoding"], "gzip");
        assert_eq!(headers["content-type"], mesa::metrics::CONTENT_TYPE);
        assert!(system_gunzip(&zipped).ends_with("# EOF\n"), "{path}");
    }
    app.shutdown(DEFAULT_GRACE_PERIOD).await.expect("shutdown");
}
