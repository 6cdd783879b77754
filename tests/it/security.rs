//! etcd connection security: TLS with client certificates, and user/password
//! auth with the password taken from the environment and never echoed.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::cli::{berth, BERTH};

const APP: &str =
    "apiVersion: berth/v1\nkind: Component\nmetadata: {name: web}\nspec: {image: 'bench/web:1'}\n";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate.
pub(crate) fn make_certs(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=berth-test-ca",
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca.pem",
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .expect("ext");
    for name in ["server", "client"] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &format!("{name}-key.pem"),
                "-out",
                &format!("{name}.csr"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca-key.pem",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "san.ext",
                "-out",
                &format!("{name}.pem"),
            ],
        );
    }
}

struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn tls_with_client_certificates() {
    crate::support::etcd::require_etcd();
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    make_certs(d);
    let (port, peer) = (
        berth::localetcd::free_port().expect("port"),
        berth::localetcd::free_port().expect("port"),
    );
    let ep = format!("https://127.0.0.1:{port}");
    let p = |f: &str| d.join(f).to_string_lossy().to_string();
    let _etcd = Child(
        Command::new("etcd")
            .args([
                "--name",
                "tls",
                "--data-dir",
                &p("data"),
                "--listen-client-urls",
                &ep,
                "--advertise-client-urls",
                &ep,
            ])
            .args([
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
            ])
            .args([
                "--initial-cluster",
                &format!("tls=http://127.0.0.1:{peer}"),
                "--heartbeat-interval",
                "10",
                "--election-timeout",
                "100",
            ])
            .args([
                "--cert-file",
                &p("server.pem"),
                "--key-file",
                &p("server-key.pem"),
                "--trusted-ca-file",
                &p("ca.pem"),
                "--client-cert-auth",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd"),
    );
    let tls = [
        "--etcd-cacert",
        &p("ca.pem"),
        "--etcd-cert",
        &p("client.pem"),
        "--etcd-key",
        &p("client-key.pem"),
    ];
    let mut args: Vec<&str> = tls.to_vec();
    args.extend(["apply", "-f", "-"]);
    // etcd needs a moment to start; retry the first apply.
    let mut out = berth(&ep, "/tls", &args, Some(APP));
    for _ in 0..50 {
        if out.code == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        out = berth(&ep, "/tls", &args, Some(APP));
    }
    assert_eq!(out.stdout, "component/web created\n", "{out:?}");
    let mut args: Vec<&str> = tls.to_vec();
    args.extend(["get", "comp", "-o", "name"]);
    assert_eq!(
        berth(&ep, "/tls", &args, None).ok().stdout,
        "component/web\n"
    );
    // Without a client certificate the server refuses: a one-line error, quickly.
    let start = std::time::Instant::now();
    let out = berth(
        &ep,
        "/tls",
        &[
            "--etcd-cacert",
            &p("ca.pem"),
            "--etcd-timeout",
            "2s",
            "get",
            "comp",
        ],
        None,
    );
    assert!(out.one_line_error().contains(&ep), "{out:?}");
    assert!(start.elapsed() < Duration::from_secs(5));
    // Only one of cert and key is a configuration error.
    let out = berth(
        &ep,
        "/tls",
        &["--etcd-cert", &p("client.pem"), "get", "comp"],
        None,
    );
    assert!(out.one_line_error().contains("--etcd-key"), "{out:?}");
}

#[tokio::test]
async fn user_and_password_from_environment() {
    let etcd = crate::support::etcd::TestEtcd::start().await;
    let mut client = etcd.client().await;
    client
        .user_add("root", "s3cret-pw", None)
        .await
        .expect("user add");
    client.user_grant_role("root", "root").await.expect("grant");
    client.auth_enable().await.expect("auth enable");

    let run = |password: Option<&str>, user: bool| {
        let mut cmd = Command::new(BERTH);
        cmd.args(["--etcd", &etcd.endpoint(), "--root", etcd.root()]);
        if user {
            cmd.args(["--etcd-user", "root"]);
        }
        cmd.args(["apply", "-f", "-"])
            .env_remove("BERTH_ETCD_PASSWORD");
        if let Some(pw) = password {
            cmd.env("BERTH_ETCD_PASSWORD", pw);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(APP.as_bytes())
            .expect("stdin");
        child.wait_with_output().expect("wait")
    };
    let anonymous = run(None, false);
    assert!(
        !anonymous.status.success(),
        "auth is enabled: anonymous must fail"
    );
    let wrong = run(Some("wrong-pw"), true);
    assert!(!wrong.status.success());
    assert!(
        !String::from_utf8_lossy(&wrong.stderr).contains("wrong-pw"),
        "password echoed"
    );
    let good = run(Some("s3cret-pw"), true);
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&good.stdout),
        "component/web created\n"
    );
    // The password is not a visible flag.
    let help = Command::new(BERTH)
        .args(["apply", "--help"])
        .output()
        .expect("help");
    assert!(!String::from_utf8_lossy(&help.stdout).contains("--etcd-password"));
    client.auth_disable().await.ok();
}
