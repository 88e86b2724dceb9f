use proptest::prelude::*;

use super::*;

fn tel(text: &str) -> Result<CalledNumber> {
    CalledNumber::parse_tel(text)
}

#[test]
fn tel_uri_strips_visual_separators() {
    let n = tel("tel:+1-201-555-0123").unwrap();
    assert_eq!(n.number.digits(), "12015550123");
    assert_eq!(n.rn, None);
    assert!(!n.npdi);
    let n = tel("tel:+44.(20).7946.0123").unwrap();
    assert_eq!(n.number.aus(), "+442079460123");
}

#[test]
fn rfc6116_domain_example() {
    // RFC 6116 §2.4: +442079460148 -> 8.4.1.0.6.4.9.7.0.2.4.4.e164.arpa
    let n = tel("tel:+44-20-7946-0148").unwrap();
    assert_eq!(
        n.number.enum_domain("e164.arpa"),
        "8.4.1.0.6.4.9.7.0.2.4.4.e164.arpa."
    );
    assert_eq!(
        n.number.enum_domain("e164.arpa."),
        "8.4.1.0.6.4.9.7.0.2.4.4.e164.arpa."
    );
}

#[test]
fn rn_routes_ported_number() {
    // RFC 4694 §6 style example.
    let n = tel("tel:+1-202-533-1234;npdi;rn=+1-202-544-0000").unwrap();
    assert_eq!(n.number.digits(), "12025331234");
    assert_eq!(n.rn.as_ref().unwrap().digits(), "12025440000");
    assert!(n.npdi);
    assert_eq!(n.routing().digits(), "12025440000");
}

#[test]
fn local_rn_with_context() {
    let n = tel("tel:+1-202-533-1234;rn=202-544-0000;rn-context=+1").unwrap();
    assert_eq!(n.routing().digits(), "12025440000");
    let err = tel("tel:+1-202-533-1234;rn=2025440000").unwrap_err();
    assert_eq!(err.status(), (404, "Not Found"));
}

#[test]
fn npdi_without_rn_routes_on_number() {
    let n = tel("tel:+12025331234;npdi").unwrap();
    assert!(n.npdi);
    assert_eq!(n.routing().digits(), "12025331234");
}

#[test]
fn sip_user_phone_and_plus() {
    let params = [("user", Some("phone"))];
    let uri = CalledUri {
        scheme: Scheme::Sip,
        user: "+1-212-555-1212;rn=+1-212-555-0000",
        uri_params: &params,
    };
    let n = CalledNumber::from_uri(&uri).unwrap();
    assert_eq!(n.number.digits(), "12125551212");
    assert_eq!(n.routing().digits(), "12125550000");

    let uri = CalledUri {
        scheme: Scheme::Sips,
        user: "%2B4930123456",
        uri_params: &[],
    };
    assert_eq!(
        CalledNumber::from_uri(&uri).unwrap().number.digits(),
        "4930123456"
    );
}

#[test]
fn sip_user_not_a_number() {
    let uri = CalledUri {
        scheme: Scheme::Sip,
        user: "alice",
        uri_params: &[],
    };
    let err = CalledNumber::from_uri(&uri).unwrap_err();
    assert!(matches!(
        err,
        Error::NotE164 {
            problem: NumberProblem::NotTelephone
        }
    ));
    assert_eq!(err.status().0, 404);
    let uri = CalledUri {
        scheme: Scheme::Sip,
        user: "4930123456",
        uri_params: &[("user", Some("ip"))],
    };
    assert!(CalledNumber::from_uri(&uri).is_err());
}

#[test]
fn rejections_carry_the_right_status() {
    assert_eq!(
        tel("tel:5550123").unwrap_err().status(),
        (484, "Address Incomplete")
    );
    assert_eq!(
        tel("tel:+").unwrap_err().status(),
        (484, "Address Incomplete")
    );
    assert_eq!(
        tel("tel:").unwrap_err().status(),
        (484, "Address Incomplete")
    );
    assert_eq!(
        tel("tel:+1234567890123456").unwrap_err().status(),
        (404, "Not Found")
    );
    assert_eq!(
        tel("tel:+1-800-FLOWERS").unwrap_err().status(),
        (404, "Not Found")
    );
    assert_eq!(
        tel("tel:+1 202 555").unwrap_err().status(),
        (404, "Not Found")
    );
    assert_eq!(tel("tel:+1*23#").unwrap_err().status(), (404, "Not Found"));
    assert_eq!(
        tel("tel:+0123456").unwrap_err().status(),
        (404, "Not Found")
    );
}

#[test]
fn from_enum_domain_rejects_other_names() {
    assert_eq!(
        E164::from_enum_domain("1.2.e164.arpa.", "e164.arpa")
            .unwrap()
            .digits(),
        "21"
    );
    assert!(E164::from_enum_domain("12.e164.arpa.", "e164.arpa").is_none());
    assert!(E164::from_enum_domain("1.2.example.", "e164.arpa").is_none());
    assert!(E164::from_enum_domain("e164.arpa.", "e164.arpa").is_none());
}

proptest! {
    #[test]
    fn domain_round_trips(digits in "[1-9][0-9]{0,14}", suffix in "(e164\\.arpa|e164\\.example\\.net|[a-z]{1,8})") {
        let n = E164::from_digits(digits.clone()).unwrap();
        let domain = n.enum_domain(&suffix);
        prop_assert_eq!(domain.len(), digits.len() * 2 + suffix.len() + 1);
        prop_assert_eq!(E164::from_enum_domain(&domain, &suffix), Some(n));
    }

    #[test]
    fn separators_never_change_the_number(digits in "[1-9][0-9]{0,14}", seps in proptest::collection::vec("[-.()]?", 15)) {
        let mut text = String::from("+");
        for (d, s) in digits.chars().zip(seps.iter()) {
            text.push_str(s);
            text.push(d);
        }
        let n = E164::parse_global(&text).unwrap();
        prop_assert_eq!(n.digits(), digits.as_str());
    }

    #[test]
    fn parse_never_panics(text in "\\PC{0,40}") {
        let _ = CalledNumber::parse_tel(&text);
    }
}
