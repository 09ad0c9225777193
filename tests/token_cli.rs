//! End-to-end tests of `hvs token create|list|revoke`.

use std::path::Path;
use std::process::Command;

fn hvs(args: &[&str], dir: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hvs"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn create_list_revoke() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data_arg = data.to_str().unwrap();

    let (code, out, err) = hvs(
        &[
            "token",
            "create",
            "--models",
            "chat-*,planner",
            "--namespaces",
            "chat*,shared",
            "--label",
            "chat bots",
            "--data",
            data_arg,
        ],
        tmp.path(),
    );
    assert_eq!(code, 0, "{err}");
    // The token alone on stdout; the warning and the file on stderr.
    let token = out.trim();
    assert!(
        token.starts_with("hvs_") && token.len() == 4 + 64,
        "{out:?}"
    );
    assert!(err.contains("cannot be shown again"), "{err}");
    let file = data.join("tokens.json");
    assert!(err.contains(&file.display().to_string()), "{err}");

    // The file holds the hash and the grant, never the token.
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains(token) && !text.contains(&token[4..]),
        "{text}"
    );
    let entries: serde_json::Value = serde_json::from_str(&text).unwrap();
    let entry = &entries[0];
    assert_eq!(entries.as_array().unwrap().len(), 1);
    assert_eq!(entry["label"], "chat bots");
    assert_eq!(entry["models"], serde_json::json!(["chat-*", "planner"]));
    assert_eq!(entry["namespaces"], serde_json::json!(["chat*", "shared"]));
    let hash = entry["sha256"].as_str().unwrap();
    assert_eq!(hash.len(), 64);
    let id = entry["id"].as_str().unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The hash loads back and verifies the printed token.
    let store = hvs::runtime::auth::TokenStore::load(&file).unwrap();
    assert_eq!(store.verify(token).map(|e| e.id.as_str()), Some(id));

    let (code, out, err) = hvs(&["token", "list", "--data", data_arg], tmp.path());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(id) && out.contains("chat bots"), "{out}");
    assert!(
        out.contains("chat-*,planner") && out.contains("chat*,shared"),
        "{out}"
    );
    assert!(!out.contains(&hash[..16]) && !out.contains(token), "{out}");

    let tokens = file.to_str().unwrap();
    let (code, out, err) = hvs(&["token", "revoke", id, "--tokens", tokens], tmp.path());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(id), "{out}");
    let (code, out, _) = hvs(&["token", "list", "--tokens", tokens], tmp.path());
    assert_eq!(code, 0);
    assert!(!out.contains(id), "{out}");
    let store = hvs::runtime::auth::TokenStore::load(&file).unwrap();
    assert!(store.list().is_empty());
    assert!(store.verify(token).is_none());

    let (code, _, err) = hvs(&["token", "revoke", id, "--tokens", tokens], tmp.path());
    assert_eq!(code, 2);
    assert!(err.contains("error[unknown_token]"), "{err}");
}

#[test]
fn default_data_dir_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    // Nothing yet: listing names the missing file.
    let (code, _, err) = hvs(&["token", "list"], tmp.path());
    assert_eq!(code, 2);
    assert!(err.contains("error[tokens_file_missing]"), "{err}");

    let (code, out, err) = hvs(
        &["token", "create", "--models", "*", "--namespaces", "*"],
        tmp.path(),
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.trim().starts_with("hvs_"));
    assert!(tmp.path().join("hvs-data/tokens.json").is_file());

    std::fs::write(tmp.path().join("hvs-data/tokens.json"), "{oops").unwrap();
    let (code, _, err) = hvs(&["token", "list"], tmp.path());
    assert_eq!(code, 2);
    assert!(err.contains("error[tokens_file_malformed]"), "{err}");
    assert!(err.contains("tokens.json"), "{err}");
}
