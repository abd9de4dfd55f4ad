//! Reading what a daemon serves: samples of an exposition, single values, sums, strict
//! OpenMetrics validity, and one collection rendered as `/probe` renders it.

use super::*;

/// One parsed exposition sample.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the samples of an exposition (comments skipped; label values unescaped).
pub fn samples(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => continue,
        };
        let mut labels = Vec::new();
        let mut rest = rest;
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices();
            let mut key = String::new();
            let mut end = 0;
            while let Some((i, c)) = chars.next() {
                match c {
                    '}' => {
                        end = i + 1;
                        break;
                    }
                    ',' => {}
                    '=' => {
                        chars.next(); // opening quote
                        let mut value = String::new();
                        while let Some((_, c)) = chars.next() {
                            match c {
                                '\\' => {
                                    if let Some((_, e)) = chars.next() {
                                        value.push(if e == 'n' { '\n' } else { e });
                                    }
                                }
                                '"' => break,
                                c => value.push(c),
                            }
                        }
                        labels.push((std::mem::take(&mut key), value));
                    }
                    c => key.push(c),
                }
            }
            rest = &body[end..];
        }
        let value = rest
            .trim()
            .split(' ')
            .next()
            .unwrap_or("")
            .parse()
            .unwrap_or(f64::NAN);
        out.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    out
}

/// The value of the one sample named `name` whose labels include `labels`.
pub fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<Sample> = samples(text)
        .into_iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(*v)))
        .collect();
    match found.as_slice() {
        [one] => Some(one.value),
        [] => None,
        many => panic!(
            "{} samples of {name} match {labels:?}: {many:?}",
            many.len()
        ),
    }
}

/// The sum of the samples named `name` whose labels include `labels` (0 when there are none).
pub fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(text)
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(*v)))
        .map(|s| s.value)
        .sum()
}

/// The value of the sample `name{labels}` in `text`; panics naming it when there is none.
pub fn must(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    value(text, name, labels).unwrap_or_else(|| panic!("no {name}{labels:?} in:\n{text}"))
}

/// Runs `command` with `text` on its stdin: its output (stdout, stderr and status).
pub fn feed(mut command: std::process::Command, text: &str) -> std::process::Output {
    use std::io::Write as _;
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?} runs (`cargo xtask test` sets it up): {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write exposition");
    child.wait_with_output().expect("the command finishes")
}

/// Runs a Python `parser` module's `text_string_to_metric_families` over `text` with the
/// `prometheus-client` of the test environment: its output.
pub fn python_parse(parser: &str, text: &str) -> std::process::Output {
    let script = format!(
        "import sys\nfrom {parser} import text_string_to_metric_families\nprint(len(list(text_string_to_metric_families(sys.stdin.read()))))\n"
    );
    let mut command = std::process::Command::new(venv_tool("python3"));
    command.args(["-c", &script]);
    feed(command, text)
}

/// Fails unless PyPI's `prometheus-client` strict OpenMetrics parser accepts `text`.
pub fn assert_openmetrics_valid(text: &str) {
    let out = python_parse("prometheus_client.openmetrics.parser", text);
    assert!(
        out.status.success(),
        "the OpenMetrics parser rejected the exposition (`cargo xtask test` installs prometheus-client into target/venv):\n{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One collection of `t` with its configured collectors and one visit to its `database`
/// (where its driver visits databases), stored and rendered as `/probe` renders them (no
/// `server` label), with the collection itself.
pub async fn collect_text(t: &TargetConfig) -> (mesa::collectors::Collection, String) {
    use mesa::collectors::{Collect, TargetCollector};
    let collector = TargetCollector::new(
        std::sync::Arc::new(gateway(t)),
        t.collection.collectors,
        t.collection.databases.clone(),
        t.collection.interval,
    );
    let collection = collector
        .collect(mesa::gateway::Deadline::after(Duration::from_secs(10)))
        .await
        .expect("the collection runs");
    let store = mesa::metrics::SnapshotStore::new();
    store.put(mesa::snapshot::TargetSnapshot {
        target: t.name.clone(),
        driver: t.spec.driver.driver(),
        finished_at: std::time::SystemTime::now(),
        duration: Duration::ZERO,
        result: Ok(collection.clone()),
        last_success: Some(std::time::SystemTime::now()),
    });
    // A visit to the target's database, where its driver has database-scoped collectors.
    if collector.visits() {
        let database = &t.spec.common.database;
        let visit = collector
            .visit(
                database,
                mesa::gateway::Deadline::after(Duration::from_secs(10)),
            )
            .await;
        let last = visit.up().then_some(visit.finished_at);
        store.put_visit(
            &t.name,
            database,
            mesa::metrics::families::EncodedTarget::for_visit(&t.name, &visit, last),
        );
    }
    let text = store.probe(&t.name).expect("stored");
    (collection, text)
}

/// Asserts that every collector of `collection` but `except` succeeded.
pub fn assert_the_rest_succeeded(collection: &mesa::collectors::Collection, except: &str) {
    for o in collection.outcomes.iter().filter(|o| o.collector != except) {
        assert!(o.result.is_ok(), "{}: {:?}", o.collector, o.result);
    }
}

/// Scrapes the reference exporter `child` listening on `addr` until its body contains
/// `ready` (within 20 s, else its log `log` is shown), then stops it; the body alone.
pub fn scrape_reference(
    mut child: std::process::Child,
    addr: std::net::SocketAddr,
    ready: &str,
    log: &std::path::Path,
) -> String {
    let started = std::time::Instant::now();
    let text = loop {
        let got = std::net::TcpStream::connect(addr).ok().and_then(|mut s| {
            use std::io::{Read as _, Write as _};
            s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
                .ok()?;
            let mut body = String::new();
            s.read_to_string(&mut body).ok()?;
            Some(body)
        });
        match got {
            Some(body) if body.contains(ready) => break body,
            _ if started.elapsed() > Duration::from_secs(20) => {
                let _ = child.kill();
                panic!(
                    "{} served no {ready:?}; its log:\n{}",
                    log.display(),
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or(text)
}
