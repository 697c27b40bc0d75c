//! `--tls-port`: the Hub's 8883 unless told otherwise.

use super::{HubArgs, TlsPort};
use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    hub: HubArgs,
}

fn tls_port(args: &[&str]) -> Result<TlsPort, clap::Error> {
    Cli::try_parse_from(std::iter::once("hub").chain(args.iter().copied())).map(|c| c.hub.tls_port)
}

#[test]
fn the_tls_port_is_the_hubs_8883_unless_told_otherwise() {
    assert_eq!(tls_port(&[]).unwrap(), TlsPort(Some(8883)));
    assert_eq!(tls_port(&["--tls-port", "0"]).unwrap(), TlsPort(Some(0)));
    assert_eq!(tls_port(&["--tls-port", "off"]).unwrap(), TlsPort(None));
    assert_eq!(
        tls_port(&["--tls-port", "9883"]).unwrap(),
        TlsPort(Some(9883))
    );
    for bad in ["65536", "-1", "OFF", ""] {
        let err = tls_port(&[&format!("--tls-port={bad}")])
            .expect_err(bad)
            .to_string();
        assert!(
            err.contains("--tls-port") && err.contains("off"),
            "{bad}: {err}"
        );
    }
}
