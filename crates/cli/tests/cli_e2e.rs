//! The command line as an operator and a resident use it: `dev jpki` makes a CA and a card,
//! `serve` runs the platform, `wallet` enrolls, logs in and shows status, `ledger verify`
//! pins the ledger key and checks consistency between runs; and errors are readable.

mod common;

use common::{Server, free_port};
use std::path::Path;
use std::process::{Command, Output};

fn tsunagu(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tsunagu"));
    cmd.current_dir(dir).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the binary runs")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(out: Output) -> String {
    assert!(
        !out.status.success(),
        "unexpectedly succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("error: "),
        "errors are one readable line: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn an_operator_and_a_resident_use_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(tsunagu(d, &["dev", "jpki", "init", "--dir", "ca"], &[]));
    let card_pin = [("TSUNAGU_CARD_PIN", "abc123")];
    let issued = ok(tsunagu(
        d,
        &[
            "dev",
            "jpki",
            "issue",
            "--dir",
            "ca",
            "--name",
            "前橋　花子",
            "--address",
            "群馬県前橋市大手町二丁目12番1号",
            "--birthdate",
            "1988-04-01",
            "--sex",
            "2",
            "--out",
            "card.json",
        ],
        &card_pin,
    ));
    assert!(issued.contains("card written to card.json"), "{issued}");
    let err = fails(tsunagu(
        d,
        &[
            "dev",
            "jpki",
            "issue",
            "--dir",
            "ca",
            "--name",
            "x",
            "--address",
            "y",
            "--birthdate",
            "1988-02-30",
            "--sex",
            "2",
            "--out",
            "other.json",
        ],
        &card_pin,
    ));
    assert!(err.contains("1988-02-30"), "{err}");

    let port = free_port();
    let server = Server::start(
        d,
        &format!(
            "[server]\nbind = \"127.0.0.1:{port}\"\n[identity]\njpki_trust_anchors = [\"ca/ca.pem\"]\njpki_crls = [\"ca/ca.crl\"]\n"
        ),
        port,
    );
    let url = server.url.clone();

    let pins = [
        ("TSUNAGU_WALLET_PIN", "2468"),
        ("TSUNAGU_CARD_PIN", "abc123"),
    ];
    let enrolled = ok(tsunagu(
        d,
        &[
            "wallet",
            "enroll",
            "--wallet",
            "phone.json",
            "--url",
            &url,
            "--card",
            "card.json",
        ],
        &pins,
    ));
    assert!(enrolled.contains("level verified"), "{enrolled}");
    let token = ok(tsunagu(
        d,
        &["wallet", "login", "--wallet", "phone.json"],
        &pins,
    ));
    assert!(token.trim().len() >= 40, "an access token: {token}");
    let status = ok(tsunagu(
        d,
        &["wallet", "status", "--wallet", "phone.json"],
        &pins,
    ));
    assert!(
        status.contains("前橋　花子") && status.contains("auth.login"),
        "{status}"
    );

    let first = ok(tsunagu(
        d,
        &["ledger", "verify", "--url", &url, "--state", "auditor.json"],
        &[],
    ));
    assert!(first.contains("ledger key is now pinned"), "{first}");
    ok(tsunagu(
        d,
        &["wallet", "login", "--wallet", "phone.json"],
        &pins,
    ));
    let second = ok(tsunagu(
        d,
        &["ledger", "verify", "--url", &url, "--state", "auditor.json"],
        &[],
    ));
    assert!(
        second.contains("consistent with the saved head"),
        "{second}"
    );

    // Three wrong PINs lock the wallet, even for the right one afterwards.
    let wrong = [("TSUNAGU_WALLET_PIN", "0000")];
    assert!(
        fails(tsunagu(
            d,
            &["wallet", "login", "--wallet", "phone.json"],
            &wrong
        ))
        .contains("wrong PIN")
    );
    assert!(
        fails(tsunagu(
            d,
            &["wallet", "login", "--wallet", "phone.json"],
            &wrong
        ))
        .contains("wrong PIN")
    );
    assert!(
        fails(tsunagu(
            d,
            &["wallet", "login", "--wallet", "phone.json"],
            &wrong
        ))
        .contains("locked")
    );
    assert!(
        fails(tsunagu(
            d,
            &["wallet", "login", "--wallet", "phone.json"],
            &pins
        ))
        .contains("locked")
    );

    // A platform refusal reaches the user with its code.
    let err = fails(tsunagu(
        d,
        &[
            "wallet",
            "enroll",
            "--wallet",
            "tablet.json",
            "--url",
            &url,
            "--card",
            "card.json",
        ],
        &[
            ("TSUNAGU_WALLET_PIN", "1357"),
            ("TSUNAGU_CARD_PIN", "wrong1"),
        ],
    ));
    assert!(err.contains("wrong signing password"), "{err}");
    drop(server);
}

#[test]
fn configuration_errors_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("bad.toml"),
        "[server]\nbind = \"127.0.0.1:0\"\nport = 1\n",
    )
    .unwrap();
    let err = fails(tsunagu(d, &["serve", "--config", "bad.toml"], &[]));
    assert!(err.contains("port"), "{err}");
    std::fs::write(
        d.join("missing.toml"),
        "[identity]\njpki_trust_anchors = [\"nowhere.pem\"]\n",
    )
    .unwrap();
    let err = fails(tsunagu(d, &["serve", "--config", "missing.toml"], &[]));
    assert!(err.contains("nowhere.pem"), "{err}");
    let err = fails(tsunagu(d, &["serve", "--config", "absent.toml"], &[]));
    assert!(err.contains("absent.toml"), "{err}");
}

#[test]
fn the_ticket_benchmark_tools_seed_and_load_a_real_platform() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(tsunagu(d, &["dev", "jpki", "init", "--dir", "ca"], &[]));
    let port = free_port();
    let config = format!(
        "[server]\nbind = \"127.0.0.1:{port}\"\n[identity]\njpki_trust_anchors = [\"ca/ca.pem\"]\njpki_crls = [\"ca/ca.crl\"]\n"
    );
    std::fs::write(d.join("tsunagu.toml"), &config).unwrap();
    let seeded = ok(tsunagu(
        d,
        &[
            "dev",
            "seed",
            "--config",
            "tsunagu.toml",
            "--residents",
            "30",
            "--out",
            "seed",
        ],
        &[],
    ));
    assert!(seeded.contains("seeded 30 residents"), "{seeded}");
    assert_eq!(
        std::fs::read_to_string(d.join("seed/subjects.txt"))
            .unwrap()
            .lines()
            .count(),
        30
    );

    let server = Server::start(d, &config, port);
    let report = ok(tsunagu(
        d,
        &[
            "dev",
            "load",
            "--url",
            &server.url,
            "--seed",
            "seed",
            "--duration",
            "2",
            "--connections",
            "2",
            "--presign",
            "40",
        ],
        &[],
    ));
    // 40 requests about 30 residents who all consented: every one is a ticket, and the run
    // stops when the pre-signed assertions are used up.
    assert!(report.contains("requests: 40 "), "{report}");
    assert!(report.contains("issued tickets: 40 "), "{report}");
    assert!(report.contains("201: 40"), "{report}");
    assert!(report.contains("p99"), "{report}");
    assert!(
        report.contains("used every pre-signed assertion"),
        "{report}"
    );
}
