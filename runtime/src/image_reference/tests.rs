use super::{ImagePattern, ImageRef, ImageRefError, MAX_REFERENCE_LEN};

const SHA256: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
const OTHER_SHA256: &str =
    "sha256:0000000000000000000000000000000000000000000000000000000000000000";

fn parsed(text: &str) -> ImageRef {
    ImageRef::parse(text).unwrap_or_else(|err| panic!("{text:?} should parse: {err}"))
}

fn pattern(text: &str) -> ImagePattern {
    ImagePattern::parse(text).unwrap_or_else(|err| panic!("pattern {text:?} should parse: {err}"))
}

fn allows(pattern_text: &str, image: &str) -> bool {
    pattern(pattern_text).matches(&parsed(image))
}

/// (input, registry, repository, tag, digest).
type Normalised<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, Option<&'a str>);

/// Docker's normalisation.
#[test]
fn references_normalise_as_docker_does() {
    let sha = Some(SHA256);
    let cases: &[Normalised] = &[
        (
            "busybox",
            "docker.io",
            "library/busybox",
            Some("latest"),
            None,
        ),
        (
            "pearl-sim:1.0",
            "docker.io",
            "library/pearl-sim",
            Some("1.0"),
            None,
        ),
        (
            "pearl-sim:5000/alpine:latest",
            "pearl-sim:5000",
            "alpine",
            Some("latest"),
            None,
        ),
        (
            "pearl-sim:5000/alpine",
            "pearl-sim:5000",
            "alpine",
            Some("latest"),
            None,
        ),
        ("localhost/x", "localhost", "x", Some("latest"), None),
        (
            "localhost:5000/x/y:t",
            "localhost:5000",
            "x/y",
            Some("t"),
            None,
        ),
        // A single component is never a registry, even `localhost:5000`.
        (
            "localhost:5000",
            "docker.io",
            "library/localhost",
            Some("5000"),
            None,
        ),
        (
            "test.com:tag",
            "docker.io",
            "library/test.com",
            Some("tag"),
            None,
        ),
        (
            "docker.io/x",
            "docker.io",
            "library/x",
            Some("latest"),
            None,
        ),
        (
            "docker.io/library/x",
            "docker.io",
            "library/x",
            Some("latest"),
            None,
        ),
        (
            "index.docker.io/x",
            "docker.io",
            "library/x",
            Some("latest"),
            None,
        ),
        (
            "index.docker.io/acme/x:2",
            "docker.io",
            "acme/x",
            Some("2"),
            None,
        ),
        (
            "acme/miner",
            "docker.io",
            "acme/miner",
            Some("latest"),
            None,
        ),
        (
            "acme/team/miner:v1",
            "docker.io",
            "acme/team/miner",
            Some("v1"),
            None,
        ),
        (
            "ghcr.io/pearl-research-labs/pearl-miner:master",
            "ghcr.io",
            "pearl-research-labs/pearl-miner",
            Some("master"),
            None,
        ),
        ("ghcr.io/x", "ghcr.io", "x", Some("latest"), None),
        (
            "10.0.0.5:5000/x",
            "10.0.0.5:5000",
            "x",
            Some("latest"),
            None,
        ),
        ("[::1]:5000/x", "[::1]:5000", "x", Some("latest"), None),
        ("[2001:db8::1]/x:t", "[2001:db8::1]", "x", Some("t"), None),
        // An upper-case first component is a registry (Docker's rule).
        ("Registry/x", "Registry", "x", Some("latest"), None),
        (
            "GHCR.IO/pearl/miner",
            "GHCR.IO",
            "pearl/miner",
            Some("latest"),
            None,
        ),
        (
            "x@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "docker.io",
            "library/x",
            None,
            sha,
        ),
        (
            "x:1.0@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "docker.io",
            "library/x",
            Some("1.0"),
            sha,
        ),
        (
            "acme/a_b__c-d---e.f",
            "docker.io",
            "acme/a_b__c-d---e.f",
            Some("latest"),
            None,
        ),
        ("a__b", "docker.io", "library/a__b", Some("latest"), None),
        ("a--b.c/x", "a--b.c", "x", Some("latest"), None),
        (
            "1.2.3.4:65535/x",
            "1.2.3.4:65535",
            "x",
            Some("latest"),
            None,
        ),
        (
            "xn--n3h.com/myimage:xn--n3h.com",
            "xn--n3h.com",
            "myimage",
            Some("xn--n3h.com"),
            None,
        ),
        (
            "x:Upper_Case-tag.1",
            "docker.io",
            "library/x",
            Some("Upper_Case-tag.1"),
            None,
        ),
    ];
    for &(input, registry, repository, tag, digest) in cases {
        let image = parsed(input);
        assert_eq!(
            (
                image.registry(),
                image.repository(),
                image.tag(),
                image.digest()
            ),
            (registry, repository, tag, digest),
            "{input}"
        );
    }
}

#[test]
fn the_canonical_form_parses_back_to_the_same_reference() {
    for input in [
        "busybox",
        "pearl-sim:5000/alpine",
        "index.docker.io/x",
        "Registry/x:T",
        "[::1]:5000/a/b@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "x:1@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    ] {
        let image = parsed(input);
        let canonical = image.to_string();
        assert_eq!(parsed(&canonical), image, "{input} -> {canonical}");
    }
    assert_eq!(
        parsed("busybox").to_string(),
        "docker.io/library/busybox:latest"
    );
    assert_eq!(
        parsed("pearl-sim:5000/alpine").to_string(),
        "pearl-sim:5000/alpine:latest"
    );
    assert_eq!(
        parsed(&format!("x@{SHA256}")).to_string(),
        format!("docker.io/library/x@{SHA256}")
    );
}

#[test]
fn bad_references_are_refused_with_the_reason() {
    let long = format!("a/{}", "b".repeat(MAX_REFERENCE_LEN));
    let long_path = format!("x/{}", "a".repeat(260));
    let long_tag = format!("x:{}", "t".repeat(129));
    let image_id = "f".repeat(64);
    let cases: Vec<(&str, ImageRefError)> = vec![
        ("", ImageRefError::Empty),
        (&long, ImageRefError::TooLong { length: long.len() }),
        (&long_path, ImageRefError::RepositoryTooLong { length: 262 }),
        ("pearl sim", ImageRefError::BadCharacter { at: 5 }),
        ("x:latest\n", ImageRefError::BadCharacter { at: 8 }),
        (
            "x\u{1b}]0;pwned\u{7}",
            ImageRefError::BadCharacter { at: 1 },
        ),
        ("pérl", ImageRefError::BadCharacter { at: 1 }),
        ("ｐｅａｒｌ", ImageRefError::BadCharacter { at: 0 }),
        (&image_id, ImageRefError::ImageId(image_id.clone())),
        ("Pearl-Sim", ImageRefError::Uppercase("Pearl-Sim".into())),
        (
            "acme/Miner:1",
            ImageRefError::Uppercase("acme/Miner".into()),
        ),
        (
            "ghcr.io/Org/x",
            ImageRefError::Uppercase("ghcr.io/Org/x".into()),
        ),
        ("a/../b", ImageRefError::Component("..".into())),
        ("a/./b", ImageRefError::Component(".".into())),
        ("..", ImageRefError::Component("..".into())),
        ("a//b", ImageRefError::Component("".into())),
        ("/x", ImageRefError::Component("".into())),
        ("x/", ImageRefError::Component("".into())),
        ("-x", ImageRefError::Component("-x".into())),
        ("x.", ImageRefError::Component("x.".into())),
        ("a___b", ImageRefError::Component("a___b".into())),
        ("x*", ImageRefError::Component("x*".into())),
        ("x:", ImageRefError::EmptyPart("after ':'")),
        (
            ":latest",
            ImageRefError::EmptyPart("before the tag or digest"),
        ),
        ("x@", ImageRefError::EmptyPart("after '@'")),
        (
            "@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            ImageRefError::EmptyPart("before the tag or digest"),
        ),
        ("x@a@b", ImageRefError::TwoDigests),
        ("x:.tag", ImageRefError::Tag(".tag".into())),
        ("x:-tag", ImageRefError::Tag("-tag".into())),
        ("x:a:b", ImageRefError::Component("x:a".into())),
        (&long_tag, ImageRefError::Tag("t".repeat(129))),
        ("x@sha256:abc", ImageRefError::Digest("sha256:abc".into())),
        (
            "x@md5:ffffffffffffffffffffffffffffffff",
            ImageRefError::Digest("md5:ffffffffffffffffffffffffffffffff".into()),
        ),
        (
            "x@sha256:FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
            ImageRefError::Digest(
                "sha256:FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF".into(),
            ),
        ),
        (
            "x@sha512:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            ImageRefError::Digest(
                "sha512:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff".into(),
            ),
        ),
        ("-bad.com/x", ImageRefError::Registry("-bad.com".into())),
        (
            "foo_bar.com/x",
            ImageRefError::Registry("foo_bar.com".into()),
        ),
        ("a..b/x", ImageRefError::Registry("a..b".into())),
        ("host:port/x", ImageRefError::Registry("host:port".into())),
        ("[::1/x", ImageRefError::Registry("[::1".into())),
        ("a-.com/x", ImageRefError::Registry("a-.com".into())),
        ("host:/x", ImageRefError::Registry("host:".into())),
        ("[::1]x/y", ImageRefError::Registry("[::1]x".into())),
        ("[:g:]:1/y", ImageRefError::Registry("[:g:]:1".into())),
        ("[]/x", ImageRefError::Component("[]".into())),
        ("a-_b", ImageRefError::Component("a-_b".into())),
        ("a_-b", ImageRefError::Component("a_-b".into())),
        ("a.-b", ImageRefError::Component("a.-b".into())),
    ];
    for (input, want) in cases {
        assert_eq!(ImageRef::parse(input), Err(want), "{input:?}");
    }
}

#[test]
fn error_messages_say_what_to_write() {
    for (input, says) in [
        (
            "",
            "such as 'ghcr.io/pearl-research-labs/pearl-miner:latest'",
        ),
        ("Pearl-Sim", "must be lower-case, such as 'pearl-sim'"),
        ("a/../b", "path component '..' is not valid"),
        ("x@sha256:abc", "64 lower-case hex digits"),
        ("x:.t", "not starting with '.' or '-'"),
    ] {
        let message = ImageRef::parse(input).unwrap_err().to_string();
        assert!(message.contains(says), "{input:?}: {message}");
    }
    let flood = "a".repeat(100_000);
    let message = ImageRef::parse(&flood).unwrap_err().to_string();
    assert!(message.len() < 200, "{message}");
}

/// The case: `pearl-sim:*` must not reach another registry.
#[test]
fn a_tag_wildcard_stays_in_its_repository() {
    let p = pattern("pearl-sim:*");
    assert_eq!(p.to_string(), "docker.io/library/pearl-sim:*");
    for allowed in [
        "pearl-sim",
        "pearl-sim:latest",
        "pearl-sim:1.0",
        "docker.io/pearl-sim:x",
        "docker.io/library/pearl-sim:x",
        "index.docker.io/pearl-sim:x",
        "index.docker.io/library/pearl-sim",
        "DOCKER.IO/library/pearl-sim",
        &format!("pearl-sim@{SHA256}"),
        &format!("pearl-sim:1@{SHA256}"),
    ] {
        assert!(p.matches(&parsed(allowed)), "{allowed}");
    }
    for denied in [
        "pearl-sim:5000/alpine:latest",
        "pearl-sim:5000/pearl-sim:latest",
        "pearl-sim.evil.com/pearl-sim:1",
        "localhost/pearl-sim",
        "localhost:5000/pearl-sim:1",
        "evil/pearl-sim:1",
        "pearl-sim/evil:1",
        "library/pearl-sim/x",
        "pearl-sim-evil:1",
        "xpearl-sim:1",
        "ghcr.io/library/pearl-sim:1",
        "Docker.io/pearl-sim",
        "[::1]:5000/pearl-sim",
    ] {
        assert!(!p.matches(&parsed(denied)), "{denied}");
    }
}

#[test]
fn a_pattern_without_a_tag_means_latest_as_in_docker() {
    let p = pattern("acme/miner");
    assert_eq!(p.to_string(), "docker.io/acme/miner:latest");
    assert!(p.matches(&parsed("acme/miner")));
    assert!(p.matches(&parsed("docker.io/acme/miner:latest")));
    assert!(!p.matches(&parsed("acme/miner:1")));
    assert!(!p.matches(&parsed(&format!("acme/miner@{SHA256}"))));
    assert!(!p.matches(&parsed(&format!("acme/miner:latest@{SHA256}"))));
}

#[test]
fn tag_globs_match_the_tag_only() {
    assert!(allows("acme/miner:1.*", "acme/miner:1.4.2"));
    assert!(allows("acme/miner:1.*", "acme/miner:1."));
    assert!(!allows("acme/miner:1.*", "acme/miner:2.1"));
    assert!(!allows("acme/miner:1.*", "acme/miner:11"));
    assert!(allows("acme/miner:v?", "acme/miner:v2"));
    assert!(!allows("acme/miner:v?", "acme/miner:v10"));
    assert!(allows("acme/miner:*-cuda", "acme/miner:1.2-cuda"));
    assert!(allows("acme/miner:**", "acme/miner:x"));
    // Tags are case-sensitive, as in Docker.
    assert!(!allows("acme/miner:Latest", "acme/miner:latest"));
    // A reference with a digest is the digest: a tag pattern cannot vouch for it.
    assert!(!allows(
        "acme/miner:1.*",
        &format!("acme/miner:1.4@{SHA256}")
    ));
    assert!(!allows("acme/miner:1.*", &format!("acme/miner@{SHA256}")));
    assert!(!allows("acme/miner:1.*", "acme/miner"));
}

#[test]
fn a_last_component_wildcard_stays_in_its_parent() {
    let p = pattern("ghcr.io/pearl-research-labs/*:*");
    assert_eq!(p.to_string(), "ghcr.io/pearl-research-labs/*:*");
    for allowed in [
        "ghcr.io/pearl-research-labs/pearl-miner:master",
        "ghcr.io/pearl-research-labs/prlmon",
        "GHCR.IO/pearl-research-labs/prlmon:1",
        &format!("ghcr.io/pearl-research-labs/x@{SHA256}"),
    ] {
        assert!(p.matches(&parsed(allowed)), "{allowed}");
    }
    for denied in [
        "ghcr.io/pearl-research-labs/pearl/prlmon",
        "ghcr.io/pearl-research-labs-evil/x",
        "ghcr.io/evil/pearl-research-labs",
        "ghcr.io:443/pearl-research-labs/x",
        "evil.io/pearl-research-labs/x",
        "pearl-research-labs/x",
        "ghcr.io/x",
    ] {
        assert!(!p.matches(&parsed(denied)), "{denied}");
    }
    let prefix = pattern("acme/miner-*:1");
    assert!(prefix.matches(&parsed("acme/miner-cuda:1")));
    assert!(!prefix.matches(&parsed("acme/miner:1")));
    assert!(!prefix.matches(&parsed("acme/miner-cuda/x:1")));
    let official = pattern("pearl-*:*");
    assert_eq!(official.to_string(), "docker.io/library/pearl-*:*");
    assert!(official.matches(&parsed("pearl-sim:2")));
    assert!(!official.matches(&parsed("pearl-sim:5000/pearl-x")));
    assert!(!official.matches(&parsed("acme/pearl-sim")));
    let hub = pattern("docker.io/library/*:*");
    assert!(hub.matches(&parsed("alpine")));
    assert!(!hub.matches(&parsed("acme/alpine")));
}

#[test]
fn a_star_alone_allows_any_image() {
    let any = pattern("*");
    assert_eq!(any.to_string(), "*");
    for image in [
        "busybox",
        "pearl-sim:5000/alpine:latest",
        "[::1]:5000/a/b/c@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    ] {
        assert!(any.matches(&parsed(image)), "{image}");
    }
}

#[test]
fn a_digest_pattern_pins_the_digest() {
    let p = pattern(&format!("pearl-sim@{SHA256}"));
    assert_eq!(
        p.to_string(),
        format!("docker.io/library/pearl-sim@{SHA256}")
    );
    assert!(p.matches(&parsed(&format!("pearl-sim@{SHA256}"))));
    assert!(p.matches(&parsed(&format!(
        "docker.io/library/pearl-sim:any@{SHA256}"
    ))));
    assert!(!p.matches(&parsed(&format!("pearl-sim@{OTHER_SHA256}"))));
    assert!(!p.matches(&parsed("pearl-sim:latest")));
    assert!(!p.matches(&parsed(&format!("other@{SHA256}"))));
    assert!(!p.matches(&parsed(&format!("pearl-sim:5000/pearl-sim@{SHA256}"))));
}

#[test]
fn registries_with_ports_and_localhost_are_literal() {
    assert!(allows(
        "localhost:5000/pearl/*:*",
        "localhost:5000/pearl/miner:1"
    ));
    assert!(!allows(
        "localhost:5000/pearl/*:*",
        "localhost:5001/pearl/miner:1"
    ));
    assert!(!allows(
        "localhost:5000/pearl/*:*",
        "localhost/pearl/miner:1"
    ));
    assert!(!allows("localhost/pearl/*:*", "127.0.0.1/pearl/miner:1"));
    assert!(allows("[::1]:5000/x:*", "[::1]:5000/x:1"));
    assert!(allows(
        "registry.corp.example/pearl/miner:*",
        "Registry.Corp.Example/pearl/miner:2"
    ));
}

#[test]
fn bad_patterns_say_what_to_write_instead() {
    let cases: Vec<(String, ImageRefError)> = vec![
        ("".into(), ImageRefError::Empty),
        ("*:*".into(), ImageRefError::BareWildcardName),
        ("*@sha256:x".into(), ImageRefError::BareWildcardName),
        (
            "*.corp.example/x:*".into(),
            ImageRefError::WildcardRegistry("*.corp.example".into()),
        ),
        (
            "ghcr.io*/x".into(),
            ImageRefError::WildcardRegistry("ghcr.io*".into()),
        ),
        (
            "Reg*/x".into(),
            ImageRefError::WildcardRegistry("Reg*".into()),
        ),
        (
            "*/miner:*".into(),
            ImageRefError::WildcardNotLast("*".into()),
        ),
        (
            "ghcr.io/*/miner:*".into(),
            ImageRefError::WildcardNotLast("*".into()),
        ),
        (
            "ghcr.io/org-?/miner".into(),
            ImageRefError::WildcardNotLast("org-?".into()),
        ),
        (format!("x:1@{SHA256}"), ImageRefError::TagAndDigest),
        ("x:*@sha256:*".into(), ImageRefError::TagAndDigest),
        ("x@sha256:*".into(), ImageRefError::WildcardDigest),
        (
            "x@sha256:abc".into(),
            ImageRefError::Digest("sha256:abc".into()),
        ),
        (
            "acme/Miner-*".into(),
            ImageRefError::Uppercase("acme/Miner-*".into()),
        ),
        ("acme/-*".into(), ImageRefError::Component("-*".into())),
        (
            "acme/x[ab]".into(),
            ImageRefError::Component("x[ab]".into()),
        ),
        (
            "acme/{a,b}".into(),
            ImageRefError::Component("{a,b}".into()),
        ),
        ("a/../*".into(), ImageRefError::Component("..".into())),
        ("x:.*".into(), ImageRefError::Tag(".*".into())),
        ("x:[ab]".into(), ImageRefError::Tag("[ab]".into())),
        ("x: *".into(), ImageRefError::BadCharacter { at: 2 }),
        ("x:".into(), ImageRefError::EmptyPart("after ':'")),
        (
            format!("x:{}", "*".repeat(130)),
            ImageRefError::Tag("*".repeat(130)),
        ),
    ];
    for (input, want) in cases {
        assert_eq!(
            ImagePattern::parse(&input).map(|p| p.to_string()),
            Err(want),
            "{input:?}"
        );
    }
    let message = ImagePattern::parse("*:*").unwrap_err().to_string();
    assert!(
        message.contains("write '*' alone for any image"),
        "{message}"
    );
    let message = ImagePattern::parse("*/miner:*").unwrap_err().to_string();
    assert!(
        message.contains("'ghcr.io/pearl-research-labs/*:*'"),
        "{message}"
    );
}

#[test]
fn patterns_and_references_parse_from_str() {
    let image: ImageRef = "pearl-sim:1".parse().unwrap();
    let pattern: ImagePattern = "pearl-sim:*".parse().unwrap();
    assert!(pattern.matches(&image));
    assert!("pearl-sim:5000/".parse::<ImageRef>().is_err());
}

#[test]
fn a_canonical_pattern_parses_back_to_the_same_pattern() {
    let images = [
        "pearl-sim",
        "pearl-sim:1",
        "acme/miner-cuda:1.4",
        "ghcr.io/pearl-research-labs/pearl-miner:master",
        "Registry/x:latest",
        "localhost:5000/pearl/miner-x:2",
    ];
    for text in [
        "*",
        "pearl-sim:*",
        "acme/miner",
        "acme/miner-**:1.*",
        "index.docker.io/pearl-sim:1",
        "ghcr.io/pearl-research-labs/*:*",
        "Registry/x",
        "localhost:5000/pearl/miner-?:*",
        &format!("pearl-sim@{SHA256}"),
    ] {
        let first = pattern(text);
        let again = pattern(first.as_str());
        assert_eq!(again.as_str(), first.as_str(), "{text}");
        for image in images {
            let image = parsed(image);
            assert_eq!(
                again.matches(&image),
                first.matches(&image),
                "{text} on {image}"
            );
        }
    }
}
