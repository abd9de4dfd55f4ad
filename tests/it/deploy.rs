//! The deployment files, checked without Docker or kubectl (issue 9): systemd accepts the
//! unit; the Kubernetes manifests parse and agree with each other and with what Mesa serves
//! (probes on `/healthz` and `/readyz` at the port the config listens on, the config file
//! where `--config.file` points, every `password_env` filled from the Secret, the CA where
//! the config reads it), and the ConfigMap's config passes Mesa's own validation with them; the Dockerfile
//! has the shape promised (multi-stage, non-root, the metrics port).

use std::path::{Path, PathBuf};

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file)
}

fn manifest(file: &str) -> serde_json::Value {
    let path = deploy(&format!("kubernetes/{file}"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn systemd_accepts_the_unit() {
    let Ok(version) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        panic!("systemd-analyze is missing (Debian: apt-get install systemd)");
    };
    assert!(version.status.success());
    // The unit names /usr/local/bin/mesa; verify checks that it exists, so point it at the
    // binary cargo built.
    let unit = std::fs::read_to_string(deploy("systemd/mesa.service"))
        .expect("mesa.service")
        .replace("/usr/local/bin/mesa", env!("CARGO_BIN_EXE_mesa"));
    let dir = std::env::temp_dir().join(format!("mesa-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("mesa.service");
    std::fs::write(&path, unit).expect("unit");
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze runs");
    let _ = std::fs::remove_dir_all(&dir);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    let about_the_unit: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("mesa.service"))
        .collect();
    assert!(about_the_unit.is_empty(), "{said}");
}

#[test]
fn the_kubernetes_manifests_agree_with_each_other_and_with_mesa() {
    let deployment = manifest("deployment.yaml");
    let service = manifest("service.yaml");
    let monitor = manifest("servicemonitor.yaml");
    let configmap = manifest("configmap.yaml");
    let secret = manifest("secret.example.yaml");
    let kustomization = manifest("kustomization.yaml");
    assert_eq!(deployment["kind"], "Deployment");
    assert_eq!(service["kind"], "Service");
    assert_eq!(monitor["kind"], "ServiceMonitor");
    assert_eq!(configmap["kind"], "ConfigMap");
    assert_eq!(secret["kind"], "Secret");
    for file in [
        "configmap.yaml",
        "deployment.yaml",
        "service.yaml",
        "servicemonitor.yaml",
    ] {
        assert!(
            kustomization["resources"]
                .as_array()
                .expect("resources")
                .iter()
                .any(|r| r == file),
            "{file} is not in kustomization.yaml"
        );
    }

    let pod = &deployment["spec"]["template"]["spec"];
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    assert_eq!(deployment["spec"]["selector"]["matchLabels"], *labels);
    assert_eq!(service["spec"]["selector"], *labels);
    let container = &pod["containers"][0];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );

    // The config file where --config.file points, from the ConfigMap.
    let config_arg = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str())
        .find_map(|a| a.strip_prefix("--config.file="))
        .expect("--config.file");
    let config_path = Path::new(config_arg);
    let mounts = container["volumeMounts"].as_array().expect("mounts");
    let volumes = pod["volumes"].as_array().expect("volumes");
    let volume_at = |dir: &Path| -> &serde_json::Value {
        let mount = mounts
            .iter()
            .find(|m| Path::new(m["mountPath"].as_str().expect("mountPath")) == dir)
            .unwrap_or_else(|| panic!("nothing is mounted at {}", dir.display()));
        volumes
            .iter()
            .find(|v| v["name"] == mount["name"])
            .expect("the mount's volume")
    };
    let config_volume = volume_at(config_path.parent().expect("folder"));
    assert_eq!(
        config_volume["configMap"]["name"],
        configmap["metadata"]["name"]
    );
    let file_name = config_path
        .file_name()
        .expect("file")
        .to_str()
        .expect("utf-8");
    let yaml = configmap["data"][file_name]
        .as_str()
        .unwrap_or_else(|| panic!("the ConfigMap has no {file_name}"));

    // Probes on /healthz and /readyz, at the named port, which is the config's listen port.
    let config: serde_json::Value = serde_saphyr::from_str(yaml).expect("mesa.yaml");
    let listen: std::net::SocketAddr = config["web"]["listen_address"]
        .as_str()
        .expect("web.listen_address")
        .parse()
        .expect("address");
    let port = &container["ports"][0];
    assert_eq!(port["containerPort"], i64::from(listen.port()));
    let port_name = port["name"].as_str().expect("port name");
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        assert_eq!(container[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(container[probe]["httpGet"]["port"], port_name, "{probe}");
    }
    assert_eq!(service["spec"]["ports"][0]["targetPort"], port_name);
    let service_port = service["spec"]["ports"][0]["name"].clone();
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], service_port);
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    assert_eq!(monitor["spec"]["selector"]["matchLabels"], *labels);

    // The Secret, where the config's password files and CA are.
    let secret_volume = volumes
        .iter()
        .find(|v| v["secret"]["secretName"] == secret["metadata"]["name"])
        .expect("the Secret is a volume");
    let secret_mount = mounts
        .iter()
        .find(|m| m["name"] == secret_volume["name"])
        .expect("the Secret is mounted");
    let secret_dir = secret_mount["mountPath"].as_str().expect("mountPath");
    let secret_data = secret["stringData"].as_object().expect("stringData");
    for item in secret_volume["secret"]["items"].as_array().expect("items") {
        let key = item["key"].as_str().expect("key");
        assert!(secret_data.contains_key(key), "the Secret has no {key}");
    }

    // Each password_env of the config is filled from a key the Secret has.
    let env: Vec<(String, String)> = container["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| {
            let key = e["valueFrom"]["secretKeyRef"]["key"]
                .as_str()
                .expect("secretKeyRef");
            assert_eq!(
                e["valueFrom"]["secretKeyRef"]["name"],
                secret["metadata"]["name"]
            );
            assert!(secret_data.contains_key(key), "the Secret has no {key}");
            (
                e["name"].as_str().expect("name").to_owned(),
                secret_data[key].as_str().expect("string").to_owned(),
            )
        })
        .collect();
    for target in config["targets"].as_array().expect("targets") {
        let wanted = target["password_env"].as_str().expect("password_env");
        assert!(
            env.iter().any(|(name, _)| name == wanted),
            "{wanted} is not set by the Deployment"
        );
    }

    // Mesa's own validation of that config, with the Secret's CA in place (the example's
    // placeholder replaced by a real certificate) and its passwords in the environment.
    let root = std::env::temp_dir().join(format!("mesa-k8s-{}", std::process::id()));
    let secrets = root.join("secrets");
    std::fs::create_dir_all(&secrets).expect("dir");
    std::fs::copy(crate::support::cluster().ca_cert(), secrets.join("ca.crt")).expect("a real CA");
    let local = yaml.replace(secret_dir, &secrets.to_string_lossy());
    assert_ne!(local, yaml, "the config reads its CA from {secret_dir}");
    let lookup = |name: &str| {
        env.iter()
            .find(|(n, _)| n == name)
            .map(|(_, value)| value.clone())
    };
    let parsed = mesa::config::parse_str(&local, &root, &lookup);
    let _ = std::fs::remove_dir_all(&root);
    let parsed = parsed.unwrap_or_else(|problems| {
        panic!(
            "the ConfigMap's config is invalid:\n{}",
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    assert_eq!(parsed.targets.len(), 1);
}

#[test]
fn the_dockerfile_builds_a_multi_stage_non_root_image() {
    let text = std::fs::read_to_string(deploy("Dockerfile")).expect("Dockerfile");
    let instructions: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let froms: Vec<&&str> = instructions
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    assert!(
        instructions.iter().any(|l| l.starts_with("COPY --from=")),
        "the runtime stage copies the binary from the build stage"
    );
    let last_from = instructions
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .expect("FROM");
    let runtime = &instructions[last_from..];
    let user = runtime
        .iter()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the runtime stage sets USER");
    assert!(
        !user.starts_with("root") && !user.starts_with("0"),
        "{user}"
    );
    assert!(runtime.contains(&"EXPOSE 9930"), "{runtime:?}");
    assert!(
        runtime
            .iter()
            .any(|l| l.starts_with("ENTRYPOINT [\"/usr/local/bin/mesa\"]")),
        "{runtime:?}"
    );
    assert!(text.contains("cargo build --release --locked"));
}

#[test]
fn the_sharded_statefulset_derives_its_index_from_the_pod_ordinal() {
    let set = manifest("statefulset-sharded.yaml");
    let single = manifest("deployment.yaml");
    assert_eq!(set["kind"], "StatefulSet");
    let replicas = set["spec"]["replicas"].as_i64().expect("replicas");
    let container = &set["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert!(
        args.contains(&format!("--shard.count={replicas}").as_str()),
        "--shard.count must equal replicas: {args:?}"
    );
    assert!(args.contains(&"--shard.index=$(SHARD_INDEX)"), "{args:?}");
    let index = container["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == "SHARD_INDEX")
        .expect("SHARD_INDEX");
    assert_eq!(
        index["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.labels['apps.kubernetes.io/pod-index']"
    );
    // Otherwise the same pod as the single replica's: probes, ports, mounts, passwords.
    let one = &single["spec"]["template"]["spec"]["containers"][0];
    for key in [
        "ports",
        "readinessProbe",
        "livenessProbe",
        "volumeMounts",
        "securityContext",
    ] {
        assert_eq!(container[key], one[key], "{key}");
    }
    assert!(
        one["env"]
            .as_array()
            .expect("env")
            .iter()
            .all(|e| container["env"].as_array().expect("env").contains(e)),
        "every password variable of the Deployment"
    );
    assert_eq!(
        set["spec"]["template"]["metadata"]["labels"],
        single["spec"]["template"]["metadata"]["labels"],
        "the Service and ServiceMonitor select both"
    );
}

#[test]
fn every_python_tool_is_installed_from_a_hash_pinned_lock() {
    // Issue 17, item 7: `cargo xtask test` installs requirements.lock with --require-hashes;
    // every package the two requirement files name must be pinned there with a hash.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let lock = std::fs::read_to_string(root.join("requirements.lock")).expect("lock");
    let mut pinned = std::collections::HashMap::new();
    let mut current: Option<String> = None;
    for line in lock.lines() {
        let line = line.trim();
        if let Some((name, version)) = line.split_once("==") {
            let name = name.trim().to_lowercase().replace('_', "-");
            let version = version.trim_end_matches(" \\").to_owned();
            pinned.insert(name.clone(), (version, 0usize));
            current = Some(name);
        } else if line.starts_with("--hash=sha256:")
            && let Some(entry) = current.as_ref().and_then(|n| pinned.get_mut(n))
        {
            entry.1 += 1;
        }
    }
    assert!(pinned.len() >= 10, "{pinned:?}");
    for (name, (version, hashes)) in &pinned {
        assert!(*hashes >= 1, "{name}=={version} has no hash");
        assert!(!version.is_empty(), "{name} is not pinned");
    }
    for file in ["requirements-dev.txt", "grafana/requirements.txt"] {
        let text = std::fs::read_to_string(root.join(file)).expect("requirements");
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let name: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                .collect::<String>()
                .to_lowercase()
                .replace('_', "-");
            assert!(
                pinned.contains_key(&name),
                "{file}: {name} is not in requirements.lock"
            );
        }
    }
    let xtask = std::fs::read_to_string(root.join("xtask/src/python.rs")).expect("xtask");
    assert!(
        xtask.contains("\"--require-hashes\""),
        "xtask installs without hashes"
    );
    assert!(
        xtask.contains("\"requirements.lock\""),
        "xtask installs something else"
    );
    // The other tools CI installs: cargo-fuzz at a pinned version, and the image's build
    // stage on a Rust release rather than a moving major tag.
    let fuzz = std::fs::read_to_string(root.join(".ci/fuzz")).expect(".ci/fuzz");
    let install = fuzz
        .lines()
        .find(|l| l.contains("cargo install cargo-fuzz"))
        .expect("cargo-fuzz is installed");
    assert!(
        install.contains("--version 0.") && install.contains("--locked"),
        "{install}"
    );
    let dockerfile = std::fs::read_to_string(root.join("deploy/Dockerfile")).expect("Dockerfile");
    let build = dockerfile
        .lines()
        .find(|l| l.starts_with("FROM rust:"))
        .expect("a Rust build stage");
    let version = build
        .trim_start_matches("FROM rust:")
        .split(['-', '@', ' '])
        .next()
        .unwrap_or("");
    assert!(version.contains('.'), "the build image floats: {build}");
}
