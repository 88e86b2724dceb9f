use super::*;

fn entry(prefix: Option<&str>, domain: Option<&str>, targets: &[&str]) -> RouteEntry {
    RouteEntry {
        prefix: prefix.map(str::to_owned),
        domain: domain.map(str::to_owned),
        targets: targets.iter().map(|t| (*t).to_owned()).collect(),
    }
}

fn uri(s: &str) -> Uri {
    s.parse().expect("valid uri")
}

#[test]
fn longest_prefix_wins_and_domains_come_first() {
    let router = StaticRouter::new(&[
        entry(Some("+"), None, &["sip:127.0.0.1:5090"]),
        entry(Some("+4721"), None, &["sip:127.0.0.2:5090"]),
        entry(None, Some("Carrier-B.example"), &["sip:127.0.0.3:5090"]),
    ]);
    let short = router.lookup(&uri("sip:+1555@x.example")).expect("route");
    assert_eq!(short[0].to_string(), "sip:127.0.0.1:5090");
    let long = router.lookup(&uri("tel:+4721345678")).expect("route");
    assert_eq!(long[0].to_string(), "sip:127.0.0.2:5090");
    let domain = router
        .lookup(&uri("sip:+4721345678@carrier-b.example"))
        .expect("route");
    assert_eq!(domain[0].to_string(), "sip:127.0.0.3:5090");
    assert!(router.lookup(&uri("sip:alice@elsewhere.example")).is_none());
}

#[test]
fn escaped_plus_is_a_plus() {
    assert_eq!(
        called_number(&uri("sip:%2B4721@h.example")).as_deref(),
        Some("+4721")
    );
}

#[test]
fn request_uri_keeps_the_dialled_number() {
    let out = request_uri_for(
        &uri("sip:+4721345678@node.example;user=phone"),
        &uri("sip:127.0.0.1:5090"),
    );
    let Uri::Sip(sip) = out else {
        panic!("sip uri expected")
    };
    assert_eq!(sip.user.as_deref(), Some("+4721345678"));
    assert_eq!(sip.port, Some(5090));
    let out = request_uri_for(&uri("tel:+4721345678"), &uri("sip:127.0.0.1:5090"));
    assert!(
        out.to_string()
            .starts_with("sip:+4721345678@127.0.0.1:5090"),
        "{out}"
    );
}

#[tokio::test]
async fn numeric_targets_resolve_without_dns() {
    let targets = resolve_uri(&uri("sip:127.0.0.1:5090;transport=tcp"))
        .await
        .expect("resolves");
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].transport, Transport::Tcp);
    assert_eq!(targets[0].remote, "127.0.0.1:5090".parse().expect("addr"));
    let tls = resolve_uri(&uri("sips:[::1]")).await.expect("resolves");
    assert_eq!(tls[0].transport, Transport::Tls);
    assert_eq!(tls[0].remote.port(), 5061);
}

#[tokio::test]
async fn broadcast_next_hops_are_never_used() {
    let targets = resolve_uri(&uri("sip:255.255.255.255:5060"))
        .await
        .expect("resolves to nothing usable");
    assert!(targets.is_empty());
}
