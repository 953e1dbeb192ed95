//! The Docker facade (`jarvis_mine::docker`) against the machine's real
//! Docker engine, with the fake miner image built locally (no registry, no
//! GPU). Every test removes what it creates, even when it fails, through a
//! per-test label ([`ContainerCleanup`]).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use jarvis_mine::docker::{
    ContainerSpec, ContainerState, Docker, DockerError, GpuRequest, ImageProgress, ImageSource,
    Mount, PEARL_DOCKERFILE, RestartPolicy,
};
use jarvis_mine::redact::{REDACTED, Redactor};
use jarvis_mine_tests::{
    ContainerCleanup, TEST_CASE_LABEL, fake_miner_image, free_port, kill_container, raw_docker, run,
};

fn docker() -> Docker {
    Docker::connect().expect("the test machine runs a Docker engine")
}

/// A spec running the fake miner on 127.0.0.1:`port` in the host network.
fn miner_spec(cleanup: &ContainerCleanup, port: u16, env: &[(&str, &str)]) -> ContainerSpec {
    ContainerSpec {
        name: Some(format!("jarvis-test-{}", cleanup.value())),
        image: fake_miner_image(),
        args: vec![
            "pearl-ai/Llama-3.3-70B-Instruct-pearl".into(),
            "--host".into(),
            "127.0.0.1".into(),
            "--port".into(),
            port.to_string(),
        ],
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        labels: cleanup.labels(),
        network_mode: "host".into(),
        restart_policy: RestartPolicy::No,
        ..Default::default()
    }
}

/// Polls `inspect` until `done` holds (or fails after `limit`).
fn wait_for(
    docker: &Docker,
    id: &str,
    limit: Duration,
    done: impl Fn(&ContainerState) -> bool,
) -> ContainerState {
    let mut last = None;
    run::wait_for(limit, || {
        let state = docker.inspect(id).unwrap().expect("the container exists");
        let reached = done(&state);
        last = Some(state.clone());
        reached.then_some(state)
    })
    .unwrap_or_else(|| panic!("container {id} did not get there within {limit:?}: {last:?}"))
}

/// `GET path` on 127.0.0.1:`port`; `None` while nothing listens.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    Some(reply)
}

fn secret(cleanup: &ContainerCleanup) -> String {
    format!("pw-{}", cleanup.value())
}

#[test]
fn connects_and_sees_images() {
    let docker = docker();
    let version = docker.version().unwrap();
    assert!(!version.is_empty() && version != "unknown", "{version}");
    let image = fake_miner_image();
    assert!(docker.image_present(&image).unwrap(), "{image}");
    assert!(
        !docker
            .image_present("jarvis-test/does-not-exist:1")
            .unwrap()
    );
}

#[test]
fn a_missing_image_with_no_registry_says_what_to_do() {
    let image = "jarvis-test/does-not-exist:1";
    let mut events = Vec::new();
    let error = docker()
        .ensure_image(image, None, &mut |event| events.push(event))
        .unwrap_err();
    let DockerError::ImageUnavailable(message) = &error else {
        panic!("expected ImageUnavailable, got {error:?}");
    };
    for needle in [
        image,
        "pull error:",
        "[mining.extra].pearl_source_dir",
        "docker build -t jarvis-test/does-not-exist:1 -f miner/vllm-miner/Dockerfile .",
    ] {
        assert!(
            message.contains(needle),
            "{needle:?} missing from: {message}"
        );
    }
    assert!(!events.iter().any(|e| matches!(e, ImageProgress::Done(_))));
}

/// A directory shaped like a Pearl checkout, with `dockerfile` as its miner
/// Dockerfile.
fn pearl_like_checkout(dockerfile: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let miner = dir.path().join("miner/vllm-miner");
    std::fs::create_dir_all(&miner).unwrap();
    std::fs::write(miner.join("Dockerfile"), dockerfile).unwrap();
    std::fs::write(miner.join("entrypoint.sh"), "#!/bin/sh\nexec \"$@\"\n").unwrap();
    std::fs::create_dir_all(dir.path().join(".git/objects")).unwrap();
    std::fs::write(dir.path().join(".git/objects/big"), vec![0u8; 1 << 20]).unwrap();
    std::fs::write(dir.path().join(".dockerignore"), ".git\n").unwrap();
    dir
}

/// Removes an image when dropped.
struct ImageCleanup(String);

impl Drop for ImageCleanup {
    fn drop(&mut self) {
        let _ = docker().remove_image(&self.0);
    }
}

#[test]
fn ensure_image_builds_from_a_pearl_checkout() {
    let checkout = pearl_like_checkout(
        "FROM scratch\n\
         COPY miner/vllm-miner/entrypoint.sh /app/entrypoint.sh\n\
         ENTRYPOINT [\"/app/entrypoint.sh\"]\n",
    );
    let cleanup = ContainerCleanup::new("build");
    let image = format!("jarvis-test/pearl-build:{}", cleanup.value());
    let _image_cleanup = ImageCleanup(image.clone());
    let docker = docker();

    let mut events = Vec::new();
    let source = docker
        .ensure_image(&image, Some(checkout.path()), &mut |event| {
            events.push(event)
        })
        .unwrap_or_else(|error| panic!("{error}\nevents: {events:#?}"));
    assert_eq!(source, ImageSource::Built);
    assert!(docker.image_present(&image).unwrap());
    let phases: Vec<&String> = events
        .iter()
        .filter_map(|e| match e {
            ImageProgress::Phase(p) => Some(p),
            _ => None,
        })
        .collect();
    assert!(
        phases.iter().any(|p| p.starts_with("pulling")),
        "{events:#?}"
    );
    assert!(
        phases.iter().any(|p| p.starts_with("building")),
        "{events:#?}"
    );
    assert!(
        events.iter().any(|e| matches!(e, ImageProgress::BuildLine(l) if l.contains("COPY miner/vllm-miner/entrypoint.sh"))),
        "{events:#?}"
    );
    assert_eq!(
        events.last(),
        Some(&ImageProgress::Done(ImageSource::Built))
    );

    // `.dockerignore` kept .git out of the context (it has a 1 MiB file).
    let size = raw_docker(|client| {
        let image = image.clone();
        async move { client.inspect_image(&image).await.unwrap().size }
    });
    assert!(size.unwrap_or_default() < 64 * 1024, "{size:?}");

    // Present now: the second call does nothing.
    let mut again = Vec::new();
    assert_eq!(
        docker
            .ensure_image(&image, Some(checkout.path()), &mut |e| again.push(e))
            .unwrap(),
        ImageSource::Local
    );
    assert_eq!(again, [ImageProgress::Done(ImageSource::Local)]);
}

#[test]
fn a_failed_build_quotes_the_build() {
    let checkout = pearl_like_checkout("FROM scratch\nCOPY no-such-file /x\n");
    let cleanup = ContainerCleanup::new("badbuild");
    let image = format!("jarvis-test/pearl-build:{}", cleanup.value());
    let _image_cleanup = ImageCleanup(image.clone());
    let error = docker()
        .ensure_image(&image, Some(checkout.path()), &mut |_| {})
        .unwrap_err();
    let DockerError::ImageUnavailable(message) = &error else {
        panic!("expected ImageUnavailable, got {error:?}");
    };
    assert!(message.contains(&image), "{message}");
    assert!(message.contains("no-such-file"), "{message}");
    assert!(!docker().image_present(&image).unwrap());
}

#[test]
fn a_directory_that_is_not_a_pearl_checkout_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let error = docker()
        .ensure_image(
            "jarvis-test/does-not-exist:2",
            Some(dir.path()),
            &mut |_| {},
        )
        .unwrap_err();
    assert!(
        matches!(&error, DockerError::ImageUnavailable(m) if m.contains(PEARL_DOCKERFILE)),
        "{error:?}"
    );
}

#[test]
fn a_gpu_container_is_created_as_requested() {
    let cleanup = ContainerCleanup::new("gpu");
    let docker = docker();
    let models = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let password = secret(&cleanup);
    let mut labels = cleanup.labels();
    labels.insert("jarvis.provider".into(), "vllm-pearl".into());
    let spec = ContainerSpec {
        gpus: GpuRequest::DeviceIds(vec!["1".into(), "3".into()]),
        env: vec![
            ("NVIDIA_VISIBLE_DEVICES".into(), "1,3".into()),
            ("CUDA_VISIBLE_DEVICES".into(), "0,1".into()),
            ("PEARLD_RPC_PASSWORD".into(), password.clone()),
        ],
        labels,
        mounts: vec![
            Mount {
                host_path: cache.path().to_path_buf(),
                container_path: "/root/.cache/huggingface".into(),
                read_only: false,
            },
            Mount {
                host_path: models.path().to_path_buf(),
                container_path: "/models/openjarvis-local-pearl-model".into(),
                read_only: true,
            },
        ],
        shm_size_bytes: Some(8 << 30),
        restart_policy: RestartPolicy::UnlessStopped,
        ..miner_spec(&cleanup, 8000, &[])
    };
    let id = docker.create(&spec).unwrap();

    // Created, never started: this engine has no NVIDIA runtime.
    let state = docker.inspect(&id).unwrap().unwrap();
    assert_eq!(state.status, "created");
    assert!(!state.running);
    assert_eq!(state.exit_code, None);
    assert_eq!(state.started_at, None);
    assert_eq!(state.image, spec.image);
    assert_eq!(state.labels["jarvis.provider"], "vllm-pearl");
    assert_eq!(state.name, spec.name.clone().unwrap());

    let inspected = raw_docker(|client| {
        let id = id.clone();
        async move { client.inspect_container(&id, None).await.unwrap() }
    });
    let host = inspected.host_config.unwrap();
    let requests = host.device_requests.unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].device_ids.as_deref(),
        Some(&["1".to_owned(), "3".to_owned()][..])
    );
    assert_eq!(requests[0].capabilities, Some(vec![vec!["gpu".to_owned()]]));
    assert_eq!(host.shm_size, Some(8 << 30));
    assert_eq!(host.network_mode.as_deref(), Some("host"));
    assert_eq!(
        host.restart_policy.unwrap().name.map(|n| n.to_string()),
        Some("unless-stopped".into())
    );
    assert_ne!(host.privileged, Some(true));
    assert!(host.cap_add.unwrap_or_default().is_empty());
    let mounts = host.mounts.unwrap();
    assert_eq!(mounts.len(), 2);
    let ro: Vec<_> = mounts
        .iter()
        .filter(|m| m.read_only == Some(true))
        .collect();
    assert_eq!(ro.len(), 1);
    assert_eq!(
        ro[0].target.as_deref(),
        Some("/models/openjarvis-local-pearl-model")
    );
    assert_eq!(
        ro[0].source.as_deref(),
        Some(models.path().to_str().unwrap())
    );
    let config = inspected.config.unwrap();
    let env = config.env.unwrap();
    for expected in [
        "NVIDIA_VISIBLE_DEVICES=1,3".to_owned(),
        "CUDA_VISIBLE_DEVICES=0,1".to_owned(),
        format!("PEARLD_RPC_PASSWORD={password}"),
    ] {
        assert!(env.contains(&expected), "{expected} not in {env:?}");
    }
    assert_eq!(
        config
            .labels
            .unwrap()
            .get("jarvis.provider")
            .map(String::as_str),
        Some("vllm-pearl")
    );

    // Listed by label, in any state.
    let listed = docker
        .list_labelled(jarvis_mine_tests::TEST_CASE_LABEL, Some(cleanup.value()))
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    assert_eq!(listed[0].state, "created");
    assert_eq!(listed[0].name, spec.name.clone().unwrap());

    docker.remove(&id).unwrap();
    assert_eq!(docker.inspect(&id).unwrap(), None);

    // Every GPU: count -1.
    let all = ContainerSpec {
        name: Some(format!("jarvis-test-{}-all", cleanup.value())),
        gpus: GpuRequest::All,
        ..spec
    };
    let id = docker.create(&all).unwrap();
    let requests = raw_docker(|client| {
        let id = id.clone();
        async move { client.inspect_container(&id, None).await.unwrap() }
    })
    .host_config
    .unwrap()
    .device_requests
    .unwrap();
    assert_eq!(requests[0].count, Some(-1));
    assert_eq!(requests[0].capabilities, Some(vec![vec!["gpu".to_owned()]]));
    assert_eq!(
        requests[0].device_ids.clone().unwrap_or_default(),
        Vec::<String>::new()
    );
    docker.remove(&id).unwrap();
}

#[test]
fn the_fake_miner_runs_logs_follows_and_stops() {
    let cleanup = ContainerCleanup::new("run");
    let docker = docker();
    let port = free_port();
    let password = secret(&cleanup);
    let spec = miner_spec(
        &cleanup,
        port,
        &[
            ("PEARLD_RPC_PASSWORD", &password),
            ("FAKE_MINER_BLOCKS", "1000"),
            ("FAKE_MINER_BLOCK_INTERVAL_MS", "200"),
        ],
    );
    let id = docker.create(&spec).unwrap();
    docker.start(&id).unwrap();
    docker.start(&id).unwrap(); // already running: Ok

    // vLLM's API answers.
    let models = run::wait_for(Duration::from_secs(10), || {
        http_get(port, "/v1/models").filter(|r| r.starts_with("HTTP/1.1 200"))
    })
    .expect("/v1/models never answered");
    assert!(
        models.contains("pearl-ai/Llama-3.3-70B-Instruct-pearl"),
        "{models}"
    );

    let state = docker.inspect(&id).unwrap().unwrap();
    assert!(state.running, "{state:?}");
    assert_eq!(state.status, "running");
    assert!(
        state.started_at.is_some() && state.finished_at.is_none(),
        "{state:?}"
    );

    // Logs: the gateway lines, raw (with the secret) until redacted.
    let lines = docker.logs(&id, usize::MAX).unwrap();
    let text = lines.join("\n");
    for expected in ["Starting pearl-gateway...", "INFO: Uvicorn running on"] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
    assert!(text.contains(&password), "the fake miner echoes its secret");
    let redacted = Redactor::new([password.as_str()]).redact_owned(&text);
    assert!(!redacted.contains(&password), "{redacted}");
    assert!(redacted.matches(REDACTED).count() >= 3, "{redacted}");
    let tail = docker.logs(&id, 2).unwrap();
    assert_eq!(tail.len(), 2, "{tail:?}");

    // Following shows lines written after it began (tail 0 = only new ones).
    let began = Instant::now();
    let mut seen = Vec::new();
    docker
        .follow_logs(&id, 0, &mut |line| {
            seen.push(line.to_owned());
            !line.contains("Block accepted by node!")
        })
        .unwrap();
    assert!(
        seen.last()
            .is_some_and(|l| l.contains("Block accepted by node!")),
        "{seen:?}"
    );
    assert!(began.elapsed() < Duration::from_secs(5));

    // A follower returns when the container stops.
    std::thread::scope(|scope| {
        let follower = scope.spawn(|| {
            let mut count = 0usize;
            docker
                .follow_logs(&id, 1, &mut |_| {
                    count += 1;
                    true
                })
                .map(|()| count)
        });
        std::thread::sleep(Duration::from_millis(500));
        docker.stop(&id, Duration::from_secs(10)).unwrap();
        let count = follower.join().unwrap().unwrap();
        assert!(count >= 2, "the follower saw {count} lines");
    });

    let state = docker.inspect(&id).unwrap().unwrap();
    assert_eq!(state.status, "exited");
    assert!(!state.running);
    assert_eq!(state.exit_code, Some(0), "SIGTERM exits 0: {state:?}");
    assert!(state.finished_at.is_some());
    docker.stop(&id, Duration::from_secs(10)).unwrap(); // already stopped: Ok

    // Several at once answer as each alone would, in order.
    let gone = "jarvis-test-no-such-container".to_owned();
    let both = docker.inspect_all(&[id.clone(), gone.clone()]).unwrap();
    assert_eq!(both, [docker.inspect(&id).unwrap(), None]);

    docker.remove(&id).unwrap();
    assert_eq!(docker.inspect(&id).unwrap(), None);
    assert_eq!(
        docker.inspect_all(&[gone, id.clone()]).unwrap(),
        [None, None]
    );
    docker.remove(&id).unwrap(); // gone: Ok
    assert!(matches!(
        docker.stop(&id, Duration::from_secs(1)),
        Err(DockerError::NotFound(_))
    ));
    assert!(matches!(
        docker.logs(&id, 10),
        Err(DockerError::NotFound(_))
    ));
}

#[test]
fn a_taken_name_is_a_name_conflict_without_secrets() {
    let cleanup = ContainerCleanup::new("conflict");
    let docker = docker();
    let password = secret(&cleanup);
    let spec = miner_spec(&cleanup, free_port(), &[("PEARLD_RPC_PASSWORD", &password)]);
    docker.create(&spec).unwrap();
    let error = docker.create(&spec).unwrap_err();
    let DockerError::NameConflict(message) = &error else {
        panic!("expected NameConflict, got {error:?}");
    };
    let name = spec.name.as_deref().unwrap();
    assert!(message.contains(name), "{message}");
    assert!(message.contains(&spec.image), "{message}");
    assert!(!message.contains(&password), "{message}");
}

#[test]
fn a_missing_image_or_bad_mount_fails_create_without_secrets() {
    let cleanup = ContainerCleanup::new("badcreate");
    let docker = docker();
    let password = secret(&cleanup);
    let spec = ContainerSpec {
        image: "jarvis-test/does-not-exist:1".into(),
        ..miner_spec(&cleanup, free_port(), &[("PEARLD_RPC_PASSWORD", &password)])
    };
    let error = docker.create(&spec).unwrap_err();
    assert!(
        matches!(&error, DockerError::ImageUnavailable(m) if m.contains("jarvis-test/does-not-exist:1")),
        "{error:?}"
    );
    let spec = ContainerSpec {
        mounts: vec![Mount {
            host_path: Path::new("/nonexistent/jarvis-test").to_path_buf(),
            container_path: "/data".into(),
            read_only: true,
        }],
        ..miner_spec(&cleanup, free_port(), &[("PEARLD_RPC_PASSWORD", &password)])
    };
    let error = docker.create(&spec).unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, DockerError::Failed(_)) && message.contains("/nonexistent/jarvis-test"),
        "{error:?}"
    );
    assert!(!message.contains(&password), "{message}");
}

#[test]
fn a_container_killed_from_outside_exits_137() {
    let cleanup = ContainerCleanup::new("kill");
    let docker = docker();
    let id = docker
        .create(&miner_spec(&cleanup, free_port(), &[]))
        .unwrap();
    docker.start(&id).unwrap();
    wait_for(&docker, &id, Duration::from_secs(10), |s| s.running);
    raw_docker(|client| {
        let id = id.clone();
        async move {
            client
                .kill_container(&id, None::<bollard::query_parameters::KillContainerOptions>)
                .await
                .unwrap()
        }
    });
    let state = wait_for(&docker, &id, Duration::from_secs(10), |s| !s.running);
    assert_eq!(state.status, "exited");
    assert_eq!(state.exit_code, Some(137), "{state:?}");
}

#[test]
fn a_crashing_miner_exits_3() {
    let cleanup = ContainerCleanup::new("crash");
    let docker = docker();
    let id = docker
        .create(&miner_spec(
            &cleanup,
            free_port(),
            &[("FAKE_MINER_EXIT_AFTER_MS", "300")],
        ))
        .unwrap();
    docker.start(&id).unwrap();
    let state = wait_for(&docker, &id, Duration::from_secs(10), |s| {
        s.status == "exited"
    });
    assert_eq!(state.exit_code, Some(3), "{state:?}");
    let logs = docker.logs(&id, 5).unwrap();
    assert!(
        logs.iter().any(|l| l.contains("fatal: simulated crash")),
        "{logs:?}"
    );
}

/// A crash loop shows its last exit code while Docker restarts it, and how
/// often it restarted (`status` reports both).
#[test]
fn a_crash_looping_miner_reports_its_last_exit_code_and_restarts() {
    let cleanup = ContainerCleanup::new("crash-loop");
    let docker = docker();
    let mut spec = miner_spec(&cleanup, free_port(), &[]);
    spec.args.extend([
        "--fake-exit-after-ms".into(),
        "0".into(),
        "--fake-exit-code".into(),
        "101".into(),
    ]);
    spec.restart_policy = RestartPolicy::Always;
    let id = docker.create(&spec).unwrap();
    docker.start(&id).unwrap();
    let state = wait_for(&docker, &id, Duration::from_secs(20), |s| {
        s.status == "restarting" && s.restart_count >= 1
    });
    assert_eq!(state.exit_code, Some(101), "{state:?}");
    assert!(
        state.running,
        "Docker counts a restarting container as running"
    );
}

/// Label filters are ANDed: a session's containers, not the home's.
#[test]
fn list_with_labels_matches_every_pair() {
    let cleanup = ContainerCleanup::new("labels");
    let docker = docker();
    let mut ids = Vec::new();
    for session in ["s-1", "s-2"] {
        let mut spec = miner_spec(&cleanup, free_port(), &[]);
        spec.name = Some(format!("jarvis-test-{}-{session}", cleanup.value()));
        spec.labels
            .insert("jarvis-test.session".into(), session.into());
        ids.push(docker.create(&spec).unwrap());
    }
    let listed = |pairs: &[(&str, &str)]| -> Vec<String> {
        let mut ids: Vec<String> = docker
            .list_with_labels(pairs)
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        ids.sort();
        ids
    };
    let mut both = ids.clone();
    both.sort();
    assert_eq!(listed(&[(TEST_CASE_LABEL, cleanup.value())]), both);
    assert_eq!(
        listed(&[
            (TEST_CASE_LABEL, cleanup.value()),
            ("jarvis-test.session", "s-2")
        ]),
        [ids[1].clone()]
    );
    assert!(
        listed(&[
            (TEST_CASE_LABEL, cleanup.value()),
            ("jarvis-test.session", "s-3")
        ])
        .is_empty()
    );
}

#[test]
fn an_unreachable_daemon_fails_fast() {
    let started = Instant::now();
    let error = Docker::connect_to("unix:///nonexistent.sock").unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let DockerError::Unavailable(message) = &error else {
        panic!("expected Unavailable, got {error:?}");
    };
    assert!(
        message.contains("cannot reach the Docker daemon at unix:///nonexistent.sock"),
        "{message}"
    );
    assert!(
        message.contains("is it running?") && message.contains("DOCKER_HOST"),
        "{message}"
    );

    // A TCP address where nothing listens.
    let port = free_port();
    let error = Docker::connect_to(&format!("tcp://127.0.0.1:{port}")).unwrap_err();
    assert!(
        matches!(&error, DockerError::Unavailable(m) if m.contains("refused")),
        "{error:?}"
    );
}

/// `connect()` honours `DOCKER_HOST`: checked in a child process, so this
/// process's environment is never changed.
#[test]
fn connect_honours_docker_host() {
    const CHILD: &str = "JARVIS_TEST_DOCKER_HOST_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let started = Instant::now();
        let error = Docker::connect().unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(
            matches!(&error, DockerError::Unavailable(m) if m.contains("unix:///nonexistent.sock")),
            "{error:?}"
        );
        return;
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "connect_honours_docker_host", "--nocapture"])
        .env(CHILD, "1")
        .env("DOCKER_HOST", "unix:///nonexistent.sock")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn list_labelled_without_a_value_matches_the_key() {
    let cleanup = ContainerCleanup::new("list");
    let docker = docker();
    let key = format!("jarvis-test.key-{}", cleanup.value());
    let mut labels = cleanup.labels();
    labels.insert(key.clone(), "anything".into());
    let spec = ContainerSpec {
        labels,
        ..miner_spec(&cleanup, free_port(), &[])
    };
    let id = docker.create(&spec).unwrap();
    let listed = docker.list_labelled(&key, None).unwrap();
    assert_eq!(listed.iter().map(|c| &c.id).collect::<Vec<_>>(), [&id]);
    assert_eq!(
        listed[0].labels.get(&key).map(String::as_str),
        Some("anything")
    );
    assert!(
        docker
            .list_labelled(&key, Some("other"))
            .unwrap()
            .is_empty()
    );
}

/// The API version comes from `/_ping`'s `Api-Version` header (one quick
/// request, never `/version`, which makes Docker ask containerd and runc);
/// a daemon whose ping does not say (a proxy in front of it) is asked
/// `/version`; a version newer than bollard's is spoken at bollard's.
#[test]
fn the_api_version_is_the_pings_else_versions() {
    use jarvis_mine::docker::Timeouts;
    use std::io::BufRead;
    use std::os::unix::net::UnixListener;
    use std::sync::{Arc, Mutex};

    let dir = tempfile::tempdir().unwrap();
    let daemon = |name: &str, ping_header: &'static str, version: &'static str| {
        let socket = dir.path().join(name);
        let listener = UnixListener::bind(&socket).unwrap();
        let asked = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = Arc::clone(&asked);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                let _ = reader.read_line(&mut request_line);
                let path = request_line
                    .split(' ')
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                let body = if path.ends_with("/version") {
                    format!(r#"{{"Version":"test","ApiVersion":"{version}"}}"#)
                } else {
                    "OK".to_owned()
                };
                seen.lock().unwrap().push(path);
                let _ = write!(
                    &stream,
                    "HTTP/1.1 200 OK\r\n{ping_header}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (format!("unix://{}", socket.display()), asked)
    };
    let timeouts = Timeouts {
        connect: Duration::from_millis(500),
        ..Timeouts::default()
    };

    let (host, asked) = daemon("ping.sock", "Api-Version: 1.41\r\n", "1.99");
    assert_eq!(
        Docker::connect_with(&host, timeouts).unwrap().api_version(),
        "1.41"
    );
    assert_eq!(*asked.lock().unwrap(), ["/_ping"]);

    let (host, asked) = daemon("proxy.sock", "", "1.40");
    assert_eq!(
        Docker::connect_with(&host, timeouts).unwrap().api_version(),
        "1.40"
    );
    assert_eq!(
        asked.lock().unwrap().len(),
        2,
        "{:?}",
        asked.lock().unwrap()
    );
    assert!(asked.lock().unwrap()[1].ends_with("/version"));

    let (host, _) = daemon("newer.sock", "Api-Version: 9.99\r\n", "9.99");
    let spoken = Docker::connect_with(&host, timeouts).unwrap().api_version();
    assert_eq!(spoken, bollard::API_DEFAULT_VERSION.to_string());
}

/// A "daemon" on a Unix socket that answers the version handshake and then
/// never answers anything else: every call must give up on its own.
#[test]
fn a_hung_daemon_times_out() {
    use jarvis_mine::docker::Timeouts;
    use std::io::BufRead;
    use std::os::unix::net::UnixListener;

    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("hung.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            let _ = reader.read_line(&mut request_line);
            // The API version is asked with `/_ping`, as the docker CLI does.
            if request_line.contains("/_ping") {
                let _ = write!(
                    &stream,
                    "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Length: 2\r\n\r\nOK"
                );
            }
            held.push(stream); // never answered, never closed
        }
    });
    let timeouts = Timeouts {
        connect: Duration::from_millis(500),
        request: Duration::from_millis(300),
        ..Timeouts::default()
    };
    let host = format!("unix://{}", socket.display());
    let docker = Docker::connect_with(&host, timeouts).unwrap();
    assert_eq!(docker.api_version(), "1.41");
    let started = Instant::now();
    let error = docker.inspect("anything").unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(&error, DockerError::Unavailable(m) if m.contains("did not finish inspecting container 'anything' within 0.3 s")),
        "{error:?}"
    );

    // A socket that accepts but never answers the handshake.
    let silent = dir.path().join("silent.sock");
    let _listener = UnixListener::bind(&silent).unwrap();
    let started = Instant::now();
    let error =
        Docker::connect_with(&format!("unix://{}", silent.display()), timeouts).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(&error, DockerError::Unavailable(m) if m.contains("no answer within 0.5 s")),
        "{error:?}"
    );
}

/// `jarvis mine supervise`'s per-look view of a session's containers: one
/// list, and an inspect of whatever changed (exit codes and restart counts
/// come from it), so what it reports is what a fresh inspect says.
#[test]
fn the_supervisors_container_watch_follows_every_change() {
    use jarvis_mine::host::{LABEL_HOME, LABEL_SESSION};
    use jarvis_mine::supervise::containers::ContainerWatch;
    let cleanup = ContainerCleanup::new("watch");
    let docker = docker();
    let (home, session) = (format!("/home-{}", cleanup.value()), "s-watch");
    let create = |name: &str| {
        let mut spec = miner_spec(&cleanup, free_port(), &[]);
        spec.name = Some(format!("jarvis-test-{}-{name}", cleanup.value()));
        spec.labels.insert(LABEL_HOME.into(), home.clone());
        spec.labels.insert(LABEL_SESSION.into(), session.into());
        docker.create(&spec).unwrap()
    };
    let mut ids = vec![create("w0"), create("w1")];
    docker.start(&ids[0]).unwrap();
    wait_for(&docker, &ids[0], Duration::from_secs(10), |s| s.running);
    let mut watch = ContainerWatch::default();
    let mut look = |ids: &[String]| watch.look(&docker, &home, session, ids, false).unwrap();
    let states = look(&ids);
    assert_eq!(
        states
            .iter()
            .map(|s| s.as_ref().map(|s| (s.id.as_str(), s.status.as_str())))
            .collect::<Vec<_>>(),
        [
            Some((ids[0].as_str(), "running")),
            Some((ids[1].as_str(), "created"))
        ]
    );
    // Killed: the next look has Docker's exit code, which only an inspect gives.
    kill_container(&ids[0]);
    wait_for(&docker, &ids[0], Duration::from_secs(10), |s| !s.running);
    let killed = look(&ids)[0].clone().unwrap();
    assert_eq!(
        (killed.status.as_str(), killed.exit_code),
        ("exited", Some(137))
    );
    // Worker 1 replaced by a new container in the same state: the new one is seen.
    docker.remove(&ids[1]).unwrap();
    ids[1] = create("w1-again");
    assert_eq!(
        look(&ids)[1].as_ref().map(|s| s.id.clone()),
        Some(ids[1].clone())
    );
    // Removed: gone.
    docker.remove(&ids[0]).unwrap();
    assert!(look(&ids)[0].is_none());
}
