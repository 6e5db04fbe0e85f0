//! Mutual TLS between nodes: nodes with certificates of the cluster's CA
//! form a cluster; a plaintext client, a TLS client without a certificate,
//! and a node whose certificate comes from another CA are refused.

// Helpers outside #[test] functions fail the test as loudly as an assert.
#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use drove_tests::stores::{get, post};
use drove_tests::{metric, wait_for, NodeProc, TestCluster};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn certs(dir: &Path, nodes: &str) {
    let out = Command::new(drove_tests::drove_bin())
        .args(["certs", "--out"])
        .arg(dir)
        .args(["--nodes", nodes])
        .output()
        .expect("run drove certs");
    assert!(out.status.success(), "drove certs: {out:?}");
}

fn tls_args(dir: &Path, name: &str) -> Vec<String> {
    let p = |f: String| dir.join(f).to_string_lossy().into_owned();
    vec![
        "--tls-cert".into(),
        p(format!("{name}.pem")),
        "--tls-key".into(),
        p(format!("{name}-key.pem")),
        "--tls-ca".into(),
        p("ca.pem".into()),
    ]
}

fn temp_dir(what: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("drove-tls-{what}-{}", drove_tests::random_hex()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Bytes a peer received from `from`, as `node` counts them.
async fn bytes_from(node: &NodeProc, from: &str) -> u64 {
    let label = format!("peer=\"{from}\"");
    metric(&node.http_addr(), "drove_peer_bytes_in_total", &[&label])
        .await
        .unwrap_or(0)
}

/// Whether the server closes (or fails) a connection that sent `hello`:
/// whatever it answers (a TLS alert, say), the connection must end.
async fn refused<S: AsyncReadExt + AsyncWriteExt + Unpin>(mut s: S, hello: &[u8]) -> bool {
    let _ = s.write_all(hello).await;
    let mut buf = [0u8; 256];
    let ended = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), ended)
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn only_nodes_with_the_clusters_certificates_connect() {
    let _machine = drove_tests::shared_machine().await;
    let dir = temp_dir("ca");
    certs(&dir, "n1,n2,n3");
    let mut c = TestCluster::new(3);
    for n in &mut c.nodes {
        n.extra = tls_args(&dir, &n.name.clone());
    }
    c.start_all();
    c.wait_converged(Duration::from_secs(30)).await;
    // Links carry data both ways over TLS.
    wait_for(
        Duration::from_secs(30),
        "traffic over TLS links",
        || async {
            let ok =
                bytes_from(&c.nodes[0], "n2").await > 0 && bytes_from(&c.nodes[2], "n1").await > 0;
            ok.then_some(())
        },
    )
    .await;

    // A plaintext client gets nowhere.
    let plain = TcpStream::connect(c.nodes[0].listen)
        .await
        .expect("connect");
    assert!(refused(plain, b"\0\0\0\x10not a tls hello").await);

    // A TLS client that trusts the CA but has no certificate of its own.
    let ca: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("ca.pem"))
        .expect("ca")
        .collect::<Result<_, _>>()
        .expect("ca pem");
    let mut roots = rustls::RootCertStore::empty();
    for cert in ca {
        roots.add(cert).expect("root");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(c.nodes[0].listen)
        .await
        .expect("connect");
    let name = ServerName::try_from("n1").expect("name");
    match connector.connect(name, tcp).await {
        Err(_) => {}
        Ok(tls) => assert!(
            refused(tls, b"\0\0\0\x04ping").await,
            "served without a client certificate"
        ),
    }

    // A node with the right cookie but a certificate from another CA.
    let other = temp_dir("other-ca");
    certs(&other, "n4");
    let mut intruder = NodeProc::new("n4", vec![c.nodes[0].listen.to_string()], &c.cookie);
    intruder.extra = tls_args(&other, "n4");
    intruder.start();
    wait_for(Duration::from_secs(30), "the intruder to serve", || {
        intruder.cluster()
    })
    .await;
    // Gossip sees n4 (it holds the cookie), but no session reaches it: it
    // is shown as unreachable, with the reason, not as a healthy member.
    let n1 = &c.nodes[0];
    let row = wait_for(
        Duration::from_secs(30),
        "n4 shown as unreachable",
        || async move {
            let view = n1.cluster().await?;
            view.members
                .into_iter()
                .find(|m| m.name == "n4" && m.status == "unreachable")
        },
    )
    .await;
    let reason = row.reason.expect("a reason");
    eprintln!("n4 on n1: unreachable: {reason}");
    assert!(
        reason.contains("TLS") || reason.contains("handshake"),
        "{reason}"
    );
    let status = Command::new(drove_tests::drove_bin())
        .args(["status", "--http", &n1.http_addr()])
        .output()
        .expect("drove status");
    let printed = String::from_utf8_lossy(&status.stdout);
    assert!(printed.contains("unreachable"), "{printed}");
    for n in &c.nodes {
        assert_eq!(bytes_from(n, "n4").await, 0, "{} took data from n4", n.name);
        assert_eq!(
            bytes_from(&intruder, &n.name).await,
            0,
            "n4 took data from {}",
            n.name
        );
    }
    drop(intruder);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&other);
}

/// One idle outsider connection to a TLS node's cluster port once held its
/// accept loop in the TLS handshake, so no peer could form a session: now
/// the handshake runs off the accept loop and the third node's links form
/// as fast as with no attacker.
#[tokio::test(flavor = "multi_thread")]
async fn an_idle_outsider_does_not_hold_up_tls_sessions() {
    let _machine = drove_tests::shared_machine().await;
    let dir = temp_dir("hol");
    certs(&dir, "n1,n2,n3");
    let mut c = TestCluster::new(3);
    for n in &mut c.nodes {
        n.extra = tls_args(&dir, &n.name.clone());
    }
    c.nodes[0].start();
    c.nodes[1].start();
    // n3 is dialled by n1 and n2 (the smaller id dials): the outsider sits
    // on n3's port from the moment it listens.
    c.nodes[2].start();
    let target = c.nodes[2].listen;
    let outsider = wait_for(Duration::from_secs(30), "n3 to listen", || async move {
        TcpStream::connect(target).await.ok()
    })
    .await;
    let started = std::time::Instant::now();
    wait_for(Duration::from_secs(10), "links to n3 over TLS", || async {
        let ok = bytes_from(&c.nodes[2], "n1").await > 0 && bytes_from(&c.nodes[2], "n2").await > 0;
        ok.then_some(())
    })
    .await;
    eprintln!(
        "links formed {:?} after the outsider connected",
        started.elapsed()
    );
    drop(outsider);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A node that holds the cookie and reaches the shared job store, but
/// whose certificate no peer accepts, reaches a minority of the cluster:
/// it is cut off and takes no jobs; the nodes the others reach run them.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_no_session_reaches_takes_no_jobs() {
    let _machine = drove_tests::shared_machine().await;
    let redis = drove_tests::redis::RedisServer::start();
    let store = |mut args: Vec<String>| {
        args.extend(["--jobs".to_string(), redis.url()]);
        args
    };
    let dir = temp_dir("jobs-ca");
    certs(&dir, "n1,n2,n3");
    let mut c = TestCluster::new(3);
    for n in &mut c.nodes {
        n.extra = store(tls_args(&dir, &n.name.clone()));
    }
    c.start_all();
    c.wait_converged(Duration::from_secs(30)).await;
    let other = temp_dir("jobs-other-ca");
    certs(&other, "n4");
    let mut intruder = NodeProc::new("n4", vec![c.nodes[0].listen.to_string()], &c.cookie);
    intruder.extra = store(tls_args(&other, "n4"));
    intruder.start();
    let intruder_ref = &intruder;
    wait_for(
        Duration::from_secs(30),
        "n4's pipelines cut off",
        || async move {
            let (_, list) = get(intruder_ref, "/api/jobs/pipelines").await?;
            let list = list.as_array()?.clone();
            (!list.is_empty() && list.iter().all(|p| p["status"] == "cutoff")).then_some(())
        },
    )
    .await;
    let (_, list) = get(&c.nodes[0], "/api/jobs/pipelines")
        .await
        .expect("n1's pipelines");
    assert!(
        list.as_array()
            .is_some_and(|l| l.iter().all(|p| p["status"] != "cutoff")),
        "n1 reaches a majority: {list}"
    );
    let mut ids = Vec::new();
    for i in 0..30 {
        let body =
            serde_json::json!({ "queue": "default", "worker": "drove.noop", "args": { "i": i } });
        let (status, answer) = post(&c.nodes[0], "/api/jobs", body).await;
        assert_eq!(status, 200, "{answer}");
        ids.push(answer["id"].as_u64().expect("an id"));
    }
    let n1 = &c.nodes[0];
    for id in ids {
        let done = wait_for(
            Duration::from_secs(30),
            "the job to complete",
            || async move {
                let (_, j) = get(n1, &format!("/api/jobs/{id}")).await?;
                (j["state"] == "completed").then_some(j)
            },
        )
        .await;
        let ran_on = done["node"].as_str().unwrap_or_default();
        assert!(!ran_on.is_empty(), "no node in {done}");
        assert!(
            !ran_on.starts_with("n4"),
            "job {id} ran on the cut-off node: {done}"
        );
    }
    drop(intruder);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&other);
}
