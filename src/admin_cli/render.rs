//! Aligned tables of the admin API's answers, for people. Every function takes the API's
//! JSON as it came (`--output json` prints that instead).

use serde_json::Value;

/// Prints rows under a header, each column as wide as its widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) {
    print!("{}", format_table(header, rows));
}

/// The text of [`table`].
pub fn format_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            out.push_str(cell);
            if i < last {
                out.push_str(&" ".repeat(w - cell.chars().count() + 2));
            }
        }
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// A cell: strings as they are, null as `-`, others as JSON; one line, at most `max` chars.
fn cell(v: &Value, max: usize) -> String {
    let text = match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "-".to_owned(),
        Value::Array(items) => items
            .iter()
            .map(|i| cell(i, max))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    };
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() > max {
        let cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        one_line
    }
}

fn list<'a>(body: &'a Value, key: &str) -> &'a [Value] {
    body[key].as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn rows(items: &[Value], keys: &[(&str, usize)]) -> Vec<Vec<String>> {
    items
        .iter()
        .map(|item| keys.iter().map(|(k, max)| cell(&item[*k], *max)).collect())
        .collect()
}

/// `targets`.
pub fn targets(body: &Value) {
    table(
        &["NAME", "STATUS", "REASON", "ENDPOINT", "LAST SUCCESS"],
        &rows(
            list(body, "targets"),
            &[
                ("name", 40),
                ("status", 10),
                ("reason", 24),
                ("endpoint", 60),
                ("last_success", 30),
            ],
        ),
    );
}

/// `sessions list`.
pub fn sessions(body: &Value) {
    table(
        &[
            "PID",
            "USER",
            "DATABASE",
            "STATE",
            "SECONDS",
            "APPLICATION",
            "QUERY",
        ],
        &rows(
            list(body, "sessions"),
            &[
                ("pid", 10),
                ("user", 24),
                ("database", 24),
                ("state", 30),
                ("duration_seconds", 12),
                ("application_name", 24),
                ("query", 60),
            ],
        ),
    );
}

/// `sessions cancel` and `sessions terminate PID`.
pub fn signalled(body: &Value) {
    println!("{} {}", cell(&body["result"], 20), cell(&body["pid"], 12));
}

/// `sessions terminate` with a filter.
pub fn bulk(body: &Value) {
    table(
        &[
            "PID", "USER", "DATABASE", "STATE", "SECONDS", "OUTCOME", "REASON",
        ],
        &rows(
            list(body, "sessions"),
            &[
                ("pid", 10),
                ("usename", 24),
                ("datname", 24),
                ("state", 30),
                ("state_seconds", 12),
                ("outcome", 16),
                ("reason", 60),
            ],
        ),
    );
    let dry = if body["dry_run"] == true {
        " (dry run: nothing was signalled)"
    } else {
        ""
    };
    eprintln!("{} matched{dry}", cell(&body["matched"], 12));
}

/// `users list`.
pub fn users(body: &Value) {
    table(
        &[
            "NAME",
            "LOGIN",
            "VALID UNTIL",
            "MEMBER OF",
            "SESSIONS",
            "CREATED",
        ],
        &rows(
            list(body, "users"),
            &[
                ("name", 63),
                ("login", 5),
                ("valid_until", 30),
                ("member_of", 60),
                ("sessions", 8),
                ("created_at", 30),
            ],
        ),
    );
}

/// `users create` and `users rotate`: the password alone on stdout, the rest on stderr.
pub fn password_once(body: &Value) {
    let name = cell(&body["name"], 63);
    match body["password"].as_str() {
        Some(password) => {
            println!("{password}");
            eprintln!("{name}: the password above is shown once; store it now");
        }
        None => eprintln!("{name}: done (the password is the one you chose)"),
    }
    if let Some(until) = body["valid_until"].as_str() {
        eprintln!("{name}: valid until {until}");
    }
}

/// `users delete`.
pub fn dropped(body: &Value) {
    println!(
        "dropped {} ({} sessions terminated)",
        cell(&body["name"], 63),
        cell(&body["sessions_terminated"], 12)
    );
}

/// `databases`.
pub fn databases(body: &Value) {
    table(
        &["NAME", "OWNER", "ENCODING", "SIZE BYTES"],
        &rows(
            list(body, "databases"),
            &[
                ("name", 63),
                ("owner", 63),
                ("encoding", 16),
                ("size_bytes", 20),
            ],
        ),
    );
}

/// `tables DB`.
pub fn tables(body: &Value) {
    table(
        &["SCHEMA", "NAME", "KIND"],
        &rows(
            list(body, "tables"),
            &[("schema", 63), ("name", 63), ("kind", 20)],
        ),
    );
}

/// `columns DB SCHEMA.TABLE`.
pub fn columns(body: &Value) {
    table(
        &["#", "NAME", "TYPE", "NULLABLE", "DEFAULT"],
        &rows(
            list(body, "columns"),
            &[
                ("position", 5),
                ("name", 63),
                ("data_type", 40),
                ("nullable", 8),
                ("default", 40),
            ],
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_to_the_widest_cell_and_cells_stay_on_one_line() {
        let text = format_table(
            &["PID", "QUERY"],
            &[
                vec!["7".to_owned(), "SELECT 1".to_owned()],
                vec!["12345".to_owned(), cell(&Value::from("a\nb"), 10)],
            ],
        );
        assert_eq!(text, "PID    QUERY\n7      SELECT 1\n12345  a b\n");
        assert_eq!(cell(&Value::from("x".repeat(20)), 5), "xxxx…");
        assert_eq!(cell(&Value::Null, 5), "-");
    }
}
