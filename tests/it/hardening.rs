//! Hardening (issue 7): channel binding against a relaying server, and the admin actions'
//! safety rules, against the real cluster.

use std::time::Duration;

use mesa::config::ChannelBinding;
use mesa::gateway::{Administrator, Deadline, FailureReason};
use mesa::http::tls::{ServerTls, server_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

const D: Duration = Duration::from_secs(5);

/// A server that holds a certificate the client trusts (signed by the cluster's CA, for
/// localhost) and, after TLS, asks for the password in cleartext: what an attacker relaying a
/// login would do. Returns the password the client sent, if any.
async fn password_phisher() -> (u16, tokio::task::JoinHandle<Option<String>>) {
    let c = cluster();
    let tls = server_config(&ServerTls::new(
        c.dir().join("server.crt"),
        c.dir().join("server.key"),
    ))
    .expect("server TLS");
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.ok()?;
        let mut ssl_request = [0u8; 8];
        tcp.read_exact(&mut ssl_request).await.ok()?;
        tcp.write_all(b"S").await.ok()?;
        let mut tls = acceptor.accept(tcp).await.ok()?;
        let len = tls.read_u32().await.ok()?;
        let mut startup = vec![0u8; usize::try_from(len).ok()?.checked_sub(4)?];
        tls.read_exact(&mut startup).await.ok()?;
        // AuthenticationCleartextPassword.
        tls.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]).await.ok()?;
        tls.flush().await.ok()?;
        let tag = tls.read_u8().await.ok()?;
        let len = tls.read_u32().await.ok()?;
        let mut body = vec![0u8; usize::try_from(len).ok()?.checked_sub(4)?];
        tls.read_exact(&mut body).await.ok()?;
        (tag == b'p').then(|| {
            String::from_utf8_lossy(&body)
                .trim_end_matches('\0')
                .to_owned()
        })
    });
    (port, task)
}

#[tokio::test]
async fn an_authenticated_server_gets_no_password_without_channel_binding() {
    let c = cluster();
    // The defaults for verify-full: channel binding required.
    let config = daemon_config(&format!(
        "targets:\n  - {{name: cb, driver: postgres, host: localhost, port: {{port}}, username: mesa_monitor, password_file: fixture.pw, sslmode: verify-full, sslrootcert: {}}}\n",
        c.ca_cert().display()
    ));
    let real = config.targets[0].clone();
    assert_eq!(real.channel_binding, ChannelBinding::Require);
    // Against the real server, SCRAM-SHA-256-PLUS binds the login to the TLS channel.
    gateway(&real)
        .server_health(Deadline::after(D))
        .await
        .expect("verify-full with channel binding logs in");

    // A relay holding a trusted certificate asks for the password in cleartext: refused.
    let (port, phisher) = password_phisher().await;
    let mut relayed = real.clone();
    relayed.port = port;
    let err = gateway(&relayed)
        .server_health(Deadline::after(D))
        .await
        .expect_err("no login without channel binding");
    assert_eq!(err.reason(), FailureReason::AuthFailed, "{err}");
    assert_eq!(phisher.await.expect("phisher"), None, "the password leaked");

    // With binding only preferred (libpq's default), the same relay gets the password: this
    // is what the default prevents.
    let (port, phisher) = password_phisher().await;
    relayed.port = port;
    relayed.channel_binding = ChannelBinding::Prefer;
    let _ = gateway(&relayed).server_health(Deadline::after(D)).await;
    assert_eq!(
        phisher.await.expect("phisher").as_deref(),
        Some(ROLE_PASSWORD),
        "the relay should have phished the password with binding merely preferred"
    );
}
