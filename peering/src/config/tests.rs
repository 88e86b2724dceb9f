use super::*;

#[test]
fn empty_file_gives_single_machine_defaults() {
    let config = Config::from_toml("").expect("empty config is valid");
    assert_eq!(config.sip.listen.len(), 2);
    assert!(
        config
            .sip
            .listen
            .iter()
            .all(|l| l.address == SocketAddr::from(([127, 0, 0, 1], 5060)))
    );
    assert_eq!(config.sip.max_message_size, 64 * 1024);
    assert_eq!(
        config.admin.listen,
        Some(SocketAddr::from(([127, 0, 0, 1], 8060)))
    );
    assert!(config.admin.listen.is_some_and(|a| a.ip().is_loopback()));
    assert!(config.routes.is_empty());
}

#[test]
fn relay_example_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/relay.toml");
    let config = Config::load(&path).expect("examples/relay.toml loads");
    assert_eq!(config.routes.len(), 1);
    assert_eq!(config.routes[0].prefix.as_deref(), Some("+"));
    assert_eq!(config.routes[0].targets, vec!["sip:127.0.0.1:5090"]);
    let udp = config
        .sip
        .listen
        .iter()
        .find(|l| l.transport == TransportKind::Udp)
        .expect("udp listener");
    assert_eq!(udp.address, SocketAddr::from(([127, 0, 0, 1], 5060)));
}

#[test]
fn unknown_keys_are_rejected() {
    let err = Config::from_toml("[sip]\nlisten_on = 5\n").expect_err("unknown key");
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
    assert!(err.to_string().contains("listen_on"), "{err}");
}

#[test]
fn route_needs_exactly_one_selector_and_sip_targets() {
    let both = "[[route]]\nprefix = \"+\"\ndomain = \"a.example\"\ntargets = [\"sip:127.0.0.1\"]\n";
    assert!(matches!(
        Config::from_toml(both),
        Err(ConfigError::Invalid { .. })
    ));
    let tel = "[[route]]\nprefix = \"+\"\ntargets = [\"tel:+123\"]\n";
    assert!(matches!(
        Config::from_toml(tel),
        Err(ConfigError::Invalid { .. })
    ));
    let none = "[[route]]\nprefix = \"+\"\ntargets = []\n";
    assert!(matches!(
        Config::from_toml(none),
        Err(ConfigError::Invalid { .. })
    ));
}

#[test]
fn tls_listener_needs_tls_section() {
    let text = "[[sip.listen]]\ntransport = \"tls\"\naddress = \"127.0.0.1:5061\"\n";
    let err = Config::from_toml(text).expect_err("tls without [tls]");
    assert!(err.to_string().contains("tls"), "{err}");
}

#[test]
fn timer_c_below_three_minutes_is_refused() {
    let err = Config::from_toml("[timers]\ntimer_c_ms = 1000\n").expect_err("timer C too short");
    assert!(matches!(err, ConfigError::Invalid { ref key, .. } if key == "timers.timer_c_ms"));
}

#[test]
fn relative_paths_resolve_against_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.toml");
    std::fs::write(
        &path,
        "[node]\ndata_dir = \"state\"\n[tls]\ncertificate = \"certs/node.pem\"\nprivate_key = \"/abs/key.pem\"\n",
    )
    .expect("write");
    let config = Config::load(&path).expect("loads");
    assert_eq!(config.node.data_dir, Some(dir.path().join("state")));
    let tls = config.tls.expect("tls");
    assert_eq!(tls.certificate, dir.path().join("certs/node.pem"));
    assert_eq!(tls.private_key, PathBuf::from("/abs/key.pem"));
}

#[test]
fn ipv6_listeners_parse() {
    let config = Config::from_toml(
        "[[sip.listen]]\ntransport = \"udp\"\naddress = \"[::1]:5060\"\nadvertise = \"sip.example.net\"\n",
    )
    .expect("ipv6 listener");
    assert!(config.sip.listen[0].address.is_ipv6());
    assert_eq!(
        config.sip.listen[0].advertise.as_deref(),
        Some("sip.example.net")
    );
}

#[test]
fn enum_example_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/enum.toml");
    let config = Config::load(&path).expect("examples/enum.toml loads");
    let section = config.enum_routing.expect("[enum] section");
    assert_eq!(section.server, SocketAddr::from(([127, 0, 0, 1], 5353)));
    assert_eq!(section.suffixes, vec!["e164.arpa"]);
    assert!(config.routes.is_empty(), "routing is by ENUM only");
    assert!(
        config
            .sip
            .listen
            .iter()
            .any(|l| l.address == SocketAddr::from(([127, 0, 0, 1], 5060)))
    );
}
