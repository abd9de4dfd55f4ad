//! Redaction examples and the property test: no secret survives.

use super::query_text;

fn r(s: &str) -> String {
    query_text(s.to_owned())
}

#[test]
fn password_literals_are_redacted() {
    for (given, want) in [
        (
            "ALTER ROLE app PASSWORD 'hunter2'",
            "ALTER ROLE app PASSWORD [redacted]",
        ),
        (
            "create user bob with encrypted password 'it''s secret' login",
            "create user bob with encrypted password [redacted] login",
        ),
        (
            "ALTER USER x PASSWORD E'a\\'b' VALID UNTIL 'infinity'",
            "ALTER USER x PASSWORD [redacted] VALID UNTIL 'infinity'",
        ),
        (
            "ALTER ROLE y PASSWORD $p$x'y$p$;",
            "ALTER ROLE y PASSWORD [redacted];",
        ),
        (
            "ALTER ROLE y PASSWORD $$x$$",
            "ALTER ROLE y PASSWORD [redacted]",
        ),
        (
            "CREATE USER MAPPING FOR u SERVER s OPTIONS (user 'u', password 'pw')",
            "CREATE USER MAPPING FOR u SERVER s OPTIONS (user 'u', password [redacted])",
        ),
        (
            "SELECT dblink_connect('host=db user=u password=s3cr3t dbname=x')",
            "SELECT dblink_connect('host=db user=u password=[redacted] dbname=x')",
        ),
        (
            "SELECT dblink_connect('password = ''quoted''')",
            "SELECT dblink_connect('password = [redacted]')",
        ),
        (
            "SELECT 'host=h password=''a b'' user=u'",
            "SELECT 'host=h password=[redacted] user=u'",
        ),
        (
            "UPDATE users SET password = 'plain' WHERE id = 1",
            "UPDATE users SET password = [redacted] WHERE id = 1",
        ),
        (
            "ALTER ROLE cut PASSWORD 'truncated by track_activity_query_si",
            "ALTER ROLE cut PASSWORD [redacted]",
        ),
    ] {
        assert_eq!(r(given), want, "{given}");
    }
}

#[test]
fn verifiers_and_hashes_are_redacted_anywhere() {
    let scram = "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy";
    assert_eq!(
        r(&format!("ALTER USER u PASSWORD '{scram}'")),
        "ALTER USER u PASSWORD [redacted]"
    );
    assert_eq!(
        r(&format!("SELECT '{scram}' AS v")),
        "SELECT '[redacted]' AS v"
    );
    assert_eq!(
        r("SELECT 'md5d41d8cd98f00b204e9800998ecf8427e'"),
        "SELECT '[redacted]'"
    );
}

#[test]
fn other_text_is_untouched() {
    for same in [
        "SELECT pg_sleep(60)",
        "SELECT password_reset_at FROM users WHERE password IS NULL",
        "SELECT 'passwords' || 'are fine' ",
        "SELECT md5('x'), 'Ünïcode ✓'",
        "",
    ] {
        assert_eq!(r(same), same);
    }
}

/// The forms a review found passing through (issue 17, item 2), each with its secret.
const GAPS: &[(&str, &str)] = &[
    ("ALTER ROLE a PASSWORD U&'s3cr\\0065t'", "s3cr"),
    (
        "ALTER ROLE a PASSWORD u&'topsecret' UESCAPE '!'",
        "topsecret",
    ),
    ("ALTER ROLE a PASSWORD /* why */ 'topsecret'", "topsecret"),
    ("ALTER ROLE a PASSWORD -- why\n 'topsecret'", "topsecret"),
    (
        "CREATE USER MAPPING FOR u SERVER s OPTIONS (user 'u', \"password\" 'topsecret')",
        "topsecret",
    ),
    (
        "ALTER USER MAPPING FOR u SERVER s OPTIONS (SET \"password\" 'topsecret')",
        "topsecret",
    ),
    (
        "DO $$BEGIN EXECUTE 'ALTER ROLE x PASSWORD ''topsecret'''; END$$",
        "topsecret",
    ),
    ("SELECT 'ALTER ROLE x PASSWORD ''topsecret'''", "topsecret"),
    (
        "SELECT 'EXECUTE ''ALTER ROLE x PASSWORD ''''topsecret'''''''",
        "topsecret",
    ),
    ("ALTER ROLE a PASSWORD 'top'\n'secret'", "secret"),
    (
        "SELECT dblink_connect('postgresql://app:topsecret@db:5432/x')",
        "topsecret",
    ),
    (
        "SELECT dblink_connect('postgres://app:top@secret@db/x')",
        "secret",
    ),
    (
        "SELECT dblink_connect('host=db password = topsecret')",
        "topsecret",
    ),
    (
        "SELECT dblink_connect('host=db sslpassword=topsecret')",
        "topsecret",
    ),
    (
        "SELECT dblink_connect(E'host=db password=''top\\'secret''')",
        "secret",
    ),
    ("SELECT 1 /* postgresql://u:topsecret@h */", "topsecret"),
    (
        "DO $f$ BEGIN PERFORM dblink('password=topsecret'); END $f$",
        "topsecret",
    ),
    ("ALTER ROLE a PASSWORD 'top\\' secret'", "secret"),
    ("ALTER ROLE a PASSWORD 'a\\'' secret'", "secret"),
    ("ALTER ROLE a WITH PASSWORD $$topsecret", "topsecret"),
    ("SELECT 'unterminated password=topsecret", "topsecret"),
    ("pw := 'x'; password := 'topsecret';", "topsecret"),
    ("SET my.password TO 'topsecret'", "topsecret"),
];

#[test]
fn the_forms_found_in_review_are_redacted() {
    for (given, secret) in GAPS {
        let out = r(given);
        assert!(!out.contains(secret), "{given:?} -> {out:?}");
        assert!(out.contains("[redacted]"), "{given:?} -> {out:?}");
    }
}

#[test]
fn readable_text_stays_readable() {
    assert_eq!(
        r("SELECT * FROM people WHERE name = 'O''Brien' AND note = 'it''s fine'"),
        "SELECT * FROM people WHERE name = 'O''Brien' AND note = 'it''s fine'"
    );
    assert_eq!(
        r("SELECT $1::text, \"Weird \"\"id\"\"\" FROM t -- done"),
        "SELECT $1::text, \"Weird \"\"id\"\"\" FROM t -- done"
    );
}

mod property {
    //! For random statements built from a grammar of every form a password can take, around a
    //! random secret, the secret never survives redaction.

    use proptest::prelude::*;

    use super::r;

    /// How the secret is written in SQL: (template with `{}` for the escaped secret, escape).
    fn literal() -> impl Strategy<Value = (String, fn(&str) -> String)> {
        fn doubled(s: &str) -> String {
            s.replace('\'', "''")
        }
        fn backslashed(s: &str) -> String {
            s.replace('\\', "\\\\").replace('\'', "\\'")
        }
        fn dollar(s: &str) -> String {
            s.to_owned()
        }
        prop_oneof![
            Just(("'{}'".to_owned(), doubled as fn(&str) -> String)),
            Just(("E'{}'".to_owned(), backslashed as fn(&str) -> String)),
            Just(("U&'{}'".to_owned(), doubled as fn(&str) -> String)),
            Just(("$$ {} $$".to_owned(), dollar as fn(&str) -> String)),
            Just(("$pw$ {} $pw$".to_owned(), dollar as fn(&str) -> String)),
        ]
    }

    /// Between the keyword and its value.
    fn gap() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            Just(" "),
            Just("  "),
            Just(" /* c */ "),
            Just("/**/"),
            Just(" -- c\n"),
            Just("\n\t"),
            Just(" = "),
            Just("="),
        ]
    }

    fn keyword() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            Just("PASSWORD"),
            Just("password"),
            Just("PassWord"),
            Just("\"password\""),
        ]
    }

    fn around() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            Just(""),
            Just("SELECT 1; "),
            Just("/* hello */ "),
            Just("SELECT 'a''b', $1; "),
            Just("-- note\n"),
        ]
    }

    /// A statement holding `secret`, in one of the grammar's forms.
    fn statement(secret: String) -> impl Strategy<Value = String> {
        (literal(), gap(), keyword(), around(), around(), 0..7usize).prop_map(
            move |((template, escape), gap, keyword, before, after, form)| {
                let lit = template.replace("{}", &escape(&secret));
                let body = match form {
                    0 => format!("ALTER ROLE app {keyword}{gap}{lit}"),
                    1 => format!(
                        "CREATE USER MAPPING FOR u SERVER s OPTIONS (user 'u', {keyword}{gap}{lit})"
                    ),
                    // Nested in a literal: the inner one's quotes doubled.
                    2 => format!(
                        "SELECT '{}'",
                        format!("ALTER ROLE x {keyword}{gap}{lit}").replace('\'', "''")
                    ),
                    3 => format!(
                        "DO $body$ BEGIN EXECUTE 'ALTER ROLE x {keyword} {}'; END $body$",
                        format!("'{}'", secret.replace('\'', "''")).replace('\'', "''")
                    ),
                    4 => format!(
                        "SELECT dblink_connect('host=h password{} dbname=d')",
                        if gap.contains('=') { gap } else { " = " },
                    )
                    .replace("dbname", &format!("{} dbname", secret_word(&secret))),
                    5 => format!(
                        "SELECT dblink_connect('postgresql://app:{}@db:5432/x')",
                        secret_word(&secret)
                    ),
                    // Continued on the next line.
                    _ => format!("ALTER ROLE app {keyword} 'x'\n{lit}"),
                };
                format!("{before}{body}{after}")
            },
        )
    }

    /// The secret with what cannot stand in an unquoted connection-string value left out.
    fn secret_word(secret: &str) -> String {
        secret
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn no_secret_survives(
            (secret, text) in "[A-Za-z0-9]{10,16}(['\\\\ !#][A-Za-z0-9]{0,4}){0,3}"
                .prop_flat_map(|s| (Just(s.clone()), statement(s)))
        ) {
            let out = r(&text);
            // The secret's first ten characters are letters and digits: no six of them in a
            // row may remain (nothing else in the grammar is random).
            let core: Vec<char> = secret.chars().take(10).collect();
            for w in core.windows(6) {
                let piece: String = w.iter().collect();
                prop_assert!(!out.contains(&piece), "{} -> {} (kept {})", text, out, piece);
            }
        }
    }
}
