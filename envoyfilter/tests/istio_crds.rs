//! Every Istio manifest `meshstats render` prints, every checked-in example and every
//! manifest in docs/deploying.md is valid against Istio's CRD schemas ([`common::crds`]),
//! and those schemas really reject what a cluster would reject or drop.

mod common;

use common::crds::{assert_valid, problems, schemas};
use common::{example, render_ok, s, scratch_dir, write, yaml_docs};
use meshstats_testkit::workspace_root;
use serde_json::{json, Value};
use std::path::Path;

/// Every target, every example configuration, the main option combinations.
#[test]
fn rendered_manifests_match_the_crds() {
    let schemas = schemas();
    let dir = scratch_dir("istio-crds");
    let wasm = write(&dir, "m.wasm", "\0asm\u{1}\0\0\0");
    let sha = "a".repeat(64);
    for name in [
        "default.json",
        "customized.json",
        "new-log.json",
        "istio-access-log.json",
        "double-request-count.json",
    ] {
        let config = example(name);
        let c = s(&config);
        let cases: Vec<Vec<&str>> = vec![
            vec![
                "wasmplugin",
                "--config",
                c,
                "--url",
                "oci://registry.example.com/meshstats:1",
            ],
            vec![
                "wasmplugin",
                "--config",
                c,
                "--url",
                "oci://registry.example.com/meshstats:1",
                "--wasm",
                s(&wasm),
                "--selector",
                "app=ratings",
                "--selector",
                "version=v1",
                "--namespace",
                "bookinfo",
                "--name",
                "m",
                "--image-pull-secret",
                "regcred",
            ],
            vec![
                "wasmplugin",
                "--config",
                c,
                "--url",
                "https://files.example.com/meshstats.wasm",
                "--sha256",
                &sha,
                "--target-ref",
                "Gateway/bookinfo-gateway",
                "--no-tcp",
            ],
            vec![
                "wasmplugin",
                "--config",
                c,
                "--url",
                "file:///var/lib/meshstats/meshstats.wasm",
                "--target-ref",
                "Service/ratings",
            ],
            vec![
                "envoyfilter",
                "--config",
                c,
                "--wasm-path",
                "/var/lib/meshstats/meshstats.wasm",
            ],
            vec![
                "envoyfilter",
                "--config",
                c,
                "--wasm-path",
                "/m.wasm",
                "--selector",
                "app=ratings",
                "--no-tcp",
            ],
            vec![
                "envoyfilter",
                "--config",
                c,
                "--url",
                "https://files.example.com/meshstats.wasm",
                "--wasm",
                s(&wasm),
                "--target-ref",
                "Gateway/gw",
            ],
        ];
        for args in cases {
            let mut full = vec!["render"];
            full.extend(&args);
            let docs = yaml_docs(&render_ok(&full));
            assert_valid(&schemas, &format!("{name} {args:?}"), &docs);
            // JSON is the same documents.
            full.extend(["--format", "json"]);
            let json: Value = serde_json::from_str(&render_ok(&full)).unwrap();
            let json_docs = if json["kind"] == "List" {
                json["items"].as_array().unwrap().clone()
            } else {
                vec![json]
            };
            assert_eq!(json_docs, docs);
        }
    }
    for name in ["new-log.json", "istio-access-log.json"] {
        let config = example(name);
        for extra in [
            &[][..],
            &[
                "--selector",
                "app=ratings",
                "--provider",
                "p",
                "--namespace",
                "bookinfo",
            ][..],
            &["--target-ref", "Gateway/gw"][..],
        ] {
            let mut args = vec!["render", "telemetry", "--config", s(&config)];
            args.extend(extra);
            assert_valid(
                &schemas,
                &format!("{name} {args:?}"),
                &yaml_docs(&render_ok(&args)),
            );
        }
    }
}

/// The schemas really reject what a cluster would reject or drop.
#[test]
fn the_validation_is_not_vacuous() {
    let schemas = schemas();
    let good = yaml_docs(&render_ok(&[
        "render",
        "wasmplugin",
        "--url",
        "oci://r/m:1",
        "--no-tcp",
    ]))
    .remove(0);
    assert_eq!(problems(&schemas, &good), Vec::<String>::new());
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut doc = good.clone();
        f(&mut doc);
        problems(&schemas, &doc)
    };
    assert!(
        !broken(&|d| d["spec"]["failStrategyy"] = json!("FAIL_OPEN")).is_empty(),
        "unknown field"
    );
    assert!(
        !broken(&|d| d["metadata"]["nmae"] = json!("x")).is_empty(),
        "unknown metadata field"
    );
    assert!(
        !broken(&|d| d["spec"]["failStrategy"] = json!("FAIL_SOFT")).is_empty(),
        "enum"
    );
    assert!(
        !broken(&|d| d["spec"]["type"] = json!("TCP")).is_empty(),
        "enum"
    );
    assert!(
        !broken(&|d| {
            d["spec"].as_object_mut().unwrap().remove("url");
        })
        .is_empty(),
        "required"
    );
    assert!(
        !broken(&|d| d["spec"]["sha256"] = json!("abc")).is_empty(),
        "pattern"
    );
    assert!(
        !broken(&|d| d["spec"]["url"] = json!("ftp://x/y")).is_empty(),
        "CEL url rule"
    );
    assert!(
        !broken(&|d| {
            d["spec"]["selector"] = json!({"matchLabels": {"a": "b"}});
            d["spec"]["targetRefs"] = json!([{"kind": "Gateway", "name": "g"}]);
        })
        .is_empty(),
        "CEL one-of rule"
    );
    assert!(
        !broken(&|d| d["spec"]["pluginConfig"] = json!("{}")).is_empty(),
        "type"
    );
    // Fields under x-kubernetes-preserve-unknown-fields stay free.
    assert!(broken(&|d| d["spec"]["pluginConfig"]["anything"] = json!({"x": 1})).is_empty());

    let ef = yaml_docs(&render_ok(&[
        "render",
        "envoyfilter",
        "--wasm-path",
        "/m.wasm",
    ]))
    .remove(0);
    assert_eq!(problems(&schemas, &ef), Vec::<String>::new());
    let mut bad = ef.clone();
    bad["spec"]["configPatches"][0]["match"]["listener"]["filterChain"]["filter"]["subfilter"] =
        json!({});
    assert!(!problems(&schemas, &bad).is_empty(), "misspelt match field");
    let mut bad = ef.clone();
    bad["spec"]["configPatches"][0]["match"]["context"] = json!("SIDECAR");
    assert!(!problems(&schemas, &bad).is_empty());

    let tel = yaml_docs(&render_ok(&[
        "render",
        "telemetry",
        "--config",
        s(&example("new-log.json")),
    ]))
    .remove(0);
    assert_eq!(problems(&schemas, &tel), Vec::<String>::new());
    let mut bad = tel.clone();
    bad["spec"]["accessLogging"][0]["filter"]["expr"] = json!("true");
    assert!(!problems(&schemas, &bad).is_empty());
    let mut bad = tel;
    bad["apiVersion"] = json!("telemetry.istio.io/v2");
    assert!(!problems(&schemas, &bad).is_empty());
}

/// The checked-in examples (`make manifests`) are valid too.
#[test]
fn checked_in_examples_match_the_crds() {
    let schemas = schemas();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/istio");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        for doc in yaml_docs(&std::fs::read_to_string(&path).unwrap()) {
            let api = doc["apiVersion"].as_str().unwrap_or_default();
            if api.contains("istio.io") {
                let p = problems(&schemas, &doc);
                assert!(p.is_empty(), "{}: {}", path.display(), p.join("\n"));
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 4,
        "only {checked} Istio resources in {}",
        dir.display()
    );
}

/// The hand-written manifests in docs/deploying.md are valid too.
#[test]
fn manifests_in_the_deploying_doc_match_the_crds() {
    let schemas = schemas();
    let doc = std::fs::read_to_string(workspace_root().join("docs/deploying.md")).unwrap();
    let mut checked = 0;
    for block in doc.split("```yaml\n").skip(1) {
        let block = block.split("```").next().unwrap();
        for manifest in yaml_docs(block) {
            let p = problems(&schemas, &manifest);
            assert!(p.is_empty(), "docs/deploying.md: {}", p.join("\n"));
            checked += 1;
        }
    }
    assert!(checked >= 1);
}
