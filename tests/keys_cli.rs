//! `adit keys` as a new user runs it (issue 18): admin tokens look
//! different from collector keys, `keys list` shows enough of each key to
//! find it, and `keys revoke` takes the key itself as well as its id.

mod common;

use common::*;

/// Runs `adit keys …` on `db_url`; (success, stdout, stderr).
fn keys(db_url: &str, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_adit"))
        .arg("keys")
        .args(args)
        .env("DATABASE_URL", db_url)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("adit runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn last_line(s: &str) -> String {
    s.lines().last().unwrap_or("").to_string()
}

/// The `keys list` line of key `id`.
fn line_of(db_url: &str, id: &str) -> String {
    let (ok, out, err) = keys(db_url, &["list"]);
    assert!(ok, "{err}");
    out.lines()
        .find(|l| l.split('\t').next() == Some(id))
        .unwrap_or_else(|| panic!("no line for key {id}: {out}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_list_shows_a_prefix_and_revoke_takes_the_key_itself() {
    let database = TestDb::new("keys_cli").await;
    let db_url = database.url().to_string();
    let (ok, out, err) = keys(&db_url, &["create", "--site", "3", "--name", "farm"]);
    assert!(ok, "{err}");
    let key = last_line(&out);
    assert!(key.starts_with("hsc_") && key.len() == 44, "{key}");
    let (ok, out, err) = keys(&db_url, &["create", "--admin"]);
    assert!(ok, "{err}");
    let token = last_line(&out);
    assert!(token.starts_with("hsa_") && token.len() == 44, "{token}");

    // A key made before prefixes were stored shows none.
    let db = connect(&db_url).await;
    let old = format!("hsc_{}", "Z".repeat(40));
    let old_id: i32 = db
        .query_one(
            "INSERT INTO collector_keys (key_hash, site_id) VALUES ($1, 4) RETURNING id",
            &[&&adit_control::keys::hash_key(&old)[..]],
        )
        .await
        .unwrap()
        .get(0);

    let key_line = line_of(&db_url, "1");
    assert!(
        key_line.contains(&format!("key={}…", &key[..12])),
        "{key_line}"
    );
    assert!(
        !key_line.contains(&key[12..]),
        "the rest stays secret: {key_line}"
    );
    let token_line = line_of(&db_url, "2");
    assert!(token_line.contains("admin") && token_line.contains(&format!("key={}…", &token[..12])));
    let old_line = line_of(&db_url, &old_id.to_string());
    assert!(old_line.contains("\tkey=\t"), "{old_line}");

    // Revoke by the key itself; then again; an unknown key; garbage.
    let (ok, _, err) = keys(&db_url, &["revoke", &key]);
    assert!(ok, "{err}");
    assert!(err.contains("Revoked key 1"), "{err}");
    assert!(line_of(&db_url, "1").contains("revoked="));
    let (ok, _, err) = keys(&db_url, &["revoke", &key]);
    assert!(!ok && err.contains("already revoked"), "{err}");
    let (ok, _, err) = keys(&db_url, &["revoke", &format!("hsc_{}", "Q".repeat(40))]);
    assert!(!ok && err.contains("no key matches"), "{err}");
    let (ok, _, err) = keys(&db_url, &["revoke", "hsc_not-a-key"]);
    assert!(!ok && err.contains("key id"), "{err}");
    assert!(!err.contains("invalid digit"), "{err}");
    // An old key (no prefix) by the key, a token by its id.
    let (ok, _, err) = keys(&db_url, &["revoke", &old]);
    assert!(ok, "{err}");
    let (ok, _, err) = keys(&db_url, &["revoke", "2"]);
    assert!(ok, "{err}");
    let live: i64 = db
        .query_one(
            "SELECT count(*) FROM collector_keys WHERE revoked_at IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(live, 0);
}
