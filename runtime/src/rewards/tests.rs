use super::{
    ComponentScan, Finding, FindingKind, Foreign, Hidden, MAX_FINDINGS, check_payout_addresses,
    scan_component,
};

/// A Taproot-shaped address (63 characters, bech32 charset).
const WALLET: &str = "prl1pq4x0u9sr8y2hgz3k7n6f5wj4c2dm0tlvy8xe3ah9qkz0s7lgnfrsz5yqw";
/// Another one: the author's.
const AUTHOR: &str = "prl1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh";

fn foreign(texts: &[&str]) -> Foreign {
    check_payout_addresses(texts.iter().copied(), WALLET)
        .expect_err(&format!("{texts:?} should be refused"))
}

#[test]
fn the_users_wallet_passes_wherever_it_is_written() {
    let upper = WALLET.to_ascii_uppercase();
    let in_url = format!("stratum+tcp://{WALLET}.rig0@pool.example:3333");
    let flag = format!("--wallet={WALLET}");
    let env = format!("PEARL_ADDR={WALLET}");
    let json = format!("{{\"wallet\":\"{WALLET}\",\"worker\":\"w\"}}");
    let worker = format!("{WALLET}.worker_1");
    let twice = format!("{WALLET},{WALLET}");
    for texts in [
        vec![WALLET],
        vec![upper.as_str()],
        vec!["--wallet", WALLET, "8000"],
        vec![&in_url, &flag, &env, &json, &worker, &twice]
            .into_iter()
            .map(String::as_str)
            .collect(),
        vec![
            "serve",
            "--model",
            "pearl-ai/Llama-3.1-8B",
            "--port",
            "8000",
        ],
        vec![],
    ] {
        assert_eq!(
            check_payout_addresses(texts.iter().copied(), WALLET),
            Ok(()),
            "{texts:?}"
        );
    }
    // The configured value is read as the user typed it, spaces aside.
    assert_eq!(
        check_payout_addresses([WALLET], &format!("  {}\n", WALLET.to_ascii_uppercase())),
        Ok(())
    );
}

#[test]
fn another_address_is_refused_wherever_it_is_written() {
    let upper = AUTHOR.to_ascii_uppercase();
    let mixed = format!("{}{}", &AUTHOR[..10].to_ascii_uppercase(), &AUTHOR[10..]);
    for text in [
        AUTHOR.to_owned(),
        upper,
        mixed,
        format!("--wallet={AUTHOR}"),
        format!("PEARL_ADDR={AUTHOR}"),
        format!("stratum+tcp://{AUTHOR}.warmup@pool.pearlhash.xyz:5566"),
        format!("https://pool.example/submit?addr={AUTHOR}&x=1"),
        format!("{WALLET};{AUTHOR}"),
        format!("{{\"wallet\":\"{AUTHOR}\"}}"),
        format!("'{AUTHOR}'"),
        format!("({AUTHOR})"),
    ] {
        let err = foreign(&["--model", "m", &text]);
        assert_eq!((err.index, err.how), (2, Hidden::Written), "{text}");
        assert!(err.address.eq_ignore_ascii_case(AUTHOR), "{text}: {err}");
    }
}

#[test]
fn a_longer_run_another_hrp_or_a_fragment_is_not_the_wallet() {
    for (text, address) in [
        (format!("{WALLET}x"), format!("{WALLET}x")),
        (format!("x{WALLET}"), format!("x{WALLET}")),
        (format!("t{WALLET}"), format!("t{WALLET}")),
        ("xprl1qabc".to_owned(), "xprl1qabc".to_owned()),
        ("prl1q".to_owned(), "prl1q".to_owned()),
        ("--wallet=prl1pfrag".to_owned(), "prl1pfrag".to_owned()),
        (WALLET[..40].to_owned(), WALLET[..40].to_owned()),
    ] {
        let err = foreign(&[&text]);
        assert_eq!(
            (err.address.as_str(), err.how),
            (address.as_str(), Hidden::Written),
            "{text}"
        );
    }
}

#[test]
fn a_testnet_wallet_is_its_own_address() {
    let testnet = format!("t{WALLET}");
    assert_eq!(check_payout_addresses([testnet.as_str()], &testnet), Ok(()));
    let err = check_payout_addresses([WALLET], &testnet).unwrap_err();
    assert_eq!(err.address, WALLET);
}

#[test]
fn percent_encoding_does_not_hide_an_address() {
    let encoded: String = AUTHOR.bytes().map(|b| format!("%{b:02X}")).collect();
    let err = foreign(&[&format!("https://pool.example/?a={encoded}")]);
    assert_eq!(
        (err.index, err.how, err.address.as_str()),
        (0, Hidden::PercentEncoded, AUTHOR)
    );
    let partly = format!("%70rl1q{}", &AUTHOR[5..]);
    assert_eq!(foreign(&[&partly]).how, Hidden::PercentEncoded);
    let own: String = WALLET.bytes().map(|b| format!("%{b:02x}")).collect();
    assert_eq!(check_payout_addresses([own.as_str()], WALLET), Ok(()));
    // Not valid UTF-8 once decoded: still checked, nothing panics.
    let invalid = format!("%ff%fe%70rl1q{}", &AUTHOR[5..]);
    let err = foreign(&[&invalid]);
    assert_eq!(
        (err.how, err.address.as_str()),
        (Hidden::PercentEncoded, AUTHOR)
    );
}

#[test]
fn an_address_start_split_between_values_is_refused() {
    let tail = &AUTHOR[1..];
    for (cut, pieces) in [
        (1, vec!["p", tail]),
        (2, vec!["pr", &AUTHOR[2..]]),
        (3, vec!["--wallet=prl", &AUTHOR[3..]]),
        (4, vec!["prl1", &AUTHOR[4..]]),
        (0, vec!["p", "r", "l", "1", &AUTHOR[4..]]),
    ] {
        let mut texts = vec!["serve", "--model", "m"];
        texts.extend(pieces.iter().copied());
        let err = foreign(&texts);
        assert_eq!(err.how, Hidden::Split, "cut at {cut}: {err}");
        assert_eq!(err.index, 3, "cut at {cut}");
        assert!(err.address.ends_with(&AUTHOR[5..]), "{err}");
        assert!(
            err.to_string()
                .contains("values 3 and 4 split a Pearl address"),
            "{err}"
        );
    }
    // Cut after the start: the first piece is an address that is not the wallet.
    let err = foreign(&["prl1q", &AUTHOR[5..]]);
    assert_eq!(
        (err.index, err.how, err.address.as_str()),
        (0, Hidden::Written, "prl1q")
    );
    // The wallet followed by a value that happens to continue it is fine.
    assert_eq!(
        check_payout_addresses([WALLET, "8000", "serve"], WALLET),
        Ok(())
    );
    // Overlapping starts: `prl1p` + `rl1q…` hides a second start in the first.
    let err = foreign(&["prl1p", &AUTHOR[1..]]);
    assert_eq!(err.how, Hidden::Written);
}

#[test]
fn what_is_shown_is_bounded_and_says_which_key_decides() {
    let long = format!("prl1q{}", "x".repeat(10_000));
    let err = foreign(&[&long]);
    assert!(err.address.chars().count() <= 121, "{}", err.address.len());
    let message = foreign(&["a", AUTHOR]).to_string();
    assert_eq!(
        message,
        format!(
            "value 1 carries Pearl address '{AUTHOR}', which is not [mining].wallet_address: a container may pay only the user's wallet"
        )
    );
    assert!(!message.contains(WALLET));
}

#[test]
fn with_no_wallet_configured_every_address_is_foreign() {
    assert!(check_payout_addresses([WALLET], "").is_err());
    assert_eq!(check_payout_addresses(["no address here"], ""), Ok(()));
}

fn component_with(strings: &[&[u8]]) -> Vec<u8> {
    let mut bytes = b"\0asm\x0d\0\x01\0".to_vec();
    for s in strings {
        bytes.extend_from_slice(b"\x00\xffjunk");
        bytes.extend_from_slice(s);
    }
    bytes.extend_from_slice(b"\x00tail");
    bytes
}

#[test]
fn a_component_scan_finds_addresses_and_pool_urls() {
    let bytes = component_with(&[
        b"--wallet=",
        AUTHOR.as_bytes(),
        b"stratum+tcp://pool.pearlhash.xyz:5566",
        b"stratum+ssl://de.pearl.herominers.com:1200/x",
        b"STRATUM2+TCP://us2.alphapool.tech:5566",
        b"pool:https://pool.openjarvis.ai/submit",
        b"stratum+tcp://",
        b"WALLET=",
        AUTHOR.to_ascii_uppercase().as_bytes(),
        AUTHOR.as_bytes(),
    ]);
    let scan = scan_component(&bytes);
    let found: Vec<(FindingKind, &str)> = scan
        .findings
        .iter()
        .map(|f| (f.kind, f.text.as_str()))
        .collect();
    assert_eq!(
        found,
        vec![
            (FindingKind::PearlAddress, AUTHOR),
            (
                FindingKind::PoolUrl,
                "stratum+tcp://pool.pearlhash.xyz:5566"
            ),
            (
                FindingKind::PoolUrl,
                "stratum+ssl://de.pearl.herominers.com:1200/x"
            ),
            (
                FindingKind::PoolUrl,
                "STRATUM2+TCP://us2.alphapool.tech:5566"
            ),
            (
                FindingKind::PoolUrl,
                "pool:https://pool.openjarvis.ai/submit"
            ),
            (FindingKind::PoolUrl, "stratum+tcp://"),
        ]
    );
    assert_eq!(scan.omitted, 0);
    let first = &scan.findings[0];
    assert_eq!(
        &bytes[first.offset..first.offset + AUTHOR.len()],
        AUTHOR.as_bytes()
    );
    assert_eq!(
        first.to_string(),
        format!("Pearl address '{AUTHOR}' (at byte {})", first.offset)
    );
}

#[test]
fn a_component_scan_ignores_what_is_not_an_address_or_pool() {
    let bytes = component_with(&[
        b"prl1qshort",
        b"prl1 is a prefix",
        b"pool: no url",
        b"thread pool:",
        b"stratum is a word",
        b"http://127.0.0.1:8000/metrics",
        b"prl1bbbbbbbbbbbbbbbbbbbbbb",
    ]);
    assert_eq!(scan_component(&bytes), ComponentScan::default());
    assert_eq!(scan_component(&[]), ComponentScan::default());
}

#[test]
fn a_component_scan_is_capped_and_counts_the_rest() {
    let addresses: Vec<String> = (0..MAX_FINDINGS + 5)
        .map(|n| {
            format!(
                "prl1q{}",
                "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
                    .chars()
                    .cycle()
                    .skip(n)
                    .take(38)
                    .collect::<String>()
            )
        })
        .collect();
    let mut strings: Vec<&[u8]> = addresses.iter().map(|a| a.as_bytes()).collect();
    strings.extend(addresses.iter().map(|a| a.as_bytes()));
    let long_url = format!("stratum+tcp://{}", "a".repeat(1000));
    strings.push(long_url.as_bytes());
    let scan = scan_component(&component_with(&strings));
    assert_eq!(scan.findings.len(), MAX_FINDINGS);
    assert_eq!(
        scan.omitted, 6,
        "5 more addresses and the URL; duplicates not counted"
    );
    let texts: Vec<&str> = scan.findings.iter().map(|f| f.text.as_str()).collect();
    let unique: std::collections::HashSet<&&str> = texts.iter().collect();
    assert_eq!(unique.len(), texts.len());
    let long = scan_component(long_url.as_bytes());
    assert_eq!(long.findings[0].text.chars().count(), 121);
}

#[test]
fn findings_serialise_for_json() {
    let finding = Finding {
        kind: FindingKind::PoolUrl,
        text: "stratum+tcp://x:1".into(),
        offset: 7,
    };
    assert_eq!(
        serde_json::to_value(&finding).unwrap(),
        serde_json::json!({"kind": "pool-url", "text": "stratum+tcp://x:1", "offset": 7})
    );
}
