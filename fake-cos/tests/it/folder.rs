//! `put_dir`, the loader behind `otasim cos --dir`.

use std::time::Duration;

use fake_cos::CosConfig;
use tokio::net::TcpListener;

use crate::client::request;

#[tokio::test]
async fn symlinks_out_of_the_folder_are_not_served() {
    let outside = tempfile::tempdir().expect("temp dir");
    let secret = outside.path().join("secret.txt");
    std::fs::write(&secret, b"not firmware").expect("write");
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("fw.bin"), b"firmware").expect("write");
    std::os::unix::fs::symlink(&secret, dir.path().join("secret.bin")).expect("symlink");
    std::os::unix::fs::symlink("fw.bin", dir.path().join("alias.bin")).expect("symlink");
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("passwd")).expect("symlink");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let cos = fake_cos::start(listener, CosConfig::default())
        .await
        .expect("start");
    let load = cos.put_dir(dir.path()).expect("folder lists");
    let names: Vec<&str> = load.loaded.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(
        names,
        ["alias.bin", "fw.bin"],
        "a link inside the folder is fine"
    );
    let skipped: Vec<(String, &str)> = load
        .skipped
        .iter()
        .map(|(p, why)| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                why.as_str(),
            )
        })
        .collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    for (_, why) in &skipped {
        assert!(why.contains("out of the folder"), "{why}");
    }
    assert!(
        cos.signed_url("secret.bin", Duration::from_secs(60))
            .is_ok()
    );
    let url = cos
        .signed_url("secret.bin", Duration::from_secs(60))
        .expect("valid");
    let target = url
        .strip_prefix(&format!("http://{}", cos.local_addr()))
        .expect("on the listener");
    let resp = request(cos.local_addr(), "GET", target, &[]).await;
    assert_eq!(resp.status(), 404, "{}", resp.text());
    cos.shutdown().await;
}
