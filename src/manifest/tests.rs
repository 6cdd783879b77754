use std::path::Path;

use super::*;

const BAD: &str = "tests/fixtures/bad";
const GOOD: &str = "tests/fixtures/good";

fn load_one(path: &str) -> Result<Vec<Loaded>, ManifestError> {
    load(&[path.to_string()], &Limits::default())
}

/// Loading `input` fails with one line containing every part of `want`.
fn fails(input: &str, want: &[&str]) -> ManifestError {
    let err = match load_one(input) {
        Ok(v) => panic!("{input}: expected an error, loaded {} objects", v.len()),
        Err(e) => e,
    };
    let line = err.to_string();
    assert!(
        !line.contains('\n'),
        "{input}: error is not one line: {line:?}"
    );
    for w in want {
        assert!(line.contains(w), "{input}: error {line:?} lacks {w:?}");
    }
    err
}

/// Parsing `text` fails with one line containing every part of `want`.
fn text_fails(text: &str, want: &[&str]) -> ManifestError {
    let err = match parse_str("t.yaml", text, &Limits::default()) {
        Ok(v) => panic!("expected an error, parsed {} objects from\n{text}", v.len()),
        Err(e) => e,
    };
    let line = err.to_string();
    assert!(!line.contains('\n'), "error is not one line: {line:?}");
    for w in want {
        assert!(line.contains(w), "error {line:?} lacks {w:?}\n{text}");
    }
    err
}

const WEB: &str =
    "apiVersion: berth/v1\nkind: Component\nmetadata:\n  name: web\nspec:\n  image: busybox:1.36\n";

#[test]
fn bad_fixtures() {
    // (file, position, field path, cause)
    let cases: &[(&str, &str, &str, &str)] = &[
        ("broken-yaml.yaml", ":9:6:", "document 1", "invalid YAML"),
        ("tab-indented.yaml", ":4:", "document 1", "tabs"),
        (
            "unknown-field.yaml",
            ":6:3:",
            "spec.imagee",
            "unknown field `imagee` (did you mean `image`?), expected one of image, command",
        ),
        (
            "wrong-type.yaml",
            ":8:15:",
            "spec.placement.replicas",
            "invalid type: string \"three\", expected u32",
        ),
        (
            "invalid-duration.yaml",
            ":10:15:",
            "spec.readyChecks[0].interval",
            "invalid duration \"5 seconds\"",
        ),
        (
            "duplicate-port.yaml",
            ":11:16:",
            "spec.ports[1].container",
            "duplicate container port 8080",
        ),
        (
            "unknown-kind.yaml",
            ":2:7:",
            "kind",
            "unknown kind \"Deployment\": expected one of Project, Component, Node",
        ),
        (
            "unknown-api-version.yaml",
            ":1:13:",
            "apiVersion",
            "unknown apiVersion \"apps/v1\": expected \"berth/v1\"",
        ),
        (
            "missing-name.yaml",
            ":3:1:",
            "metadata.name",
            "missing field `name`",
        ),
        ("empty.yaml", ":1:1:", "", "no objects found"),
        (
            "valid-then-invalid.yaml",
            ":16:15:",
            "document 2 (component/web): spec.placement.replicas",
            "expected u32",
        ),
        (
            "duplicate-object.yaml",
            ":8:1:",
            "document 2 (component/web): metadata.name",
            "defined twice: also in document 1",
        ),
        (
            "replicas-and-per-node.yaml",
            ":7:3:",
            "spec.placement",
            "replicas and perNode are both set",
        ),
        (
            "check-port-undeclared.yaml",
            ":9:18:",
            "spec.readyChecks[0].http.port",
            "port 9090 is not a container port of this component (spec.ports: 8080)",
        ),
        (
            "bad-image.yaml",
            ":6:10:",
            "spec.image",
            "must be lowercase",
        ),
    ];
    for (file, pos, path, cause) in cases {
        let input = format!("{BAD}/{file}");
        fails(&input, &[&format!("{input}{pos}"), path, cause]);
    }
    // Every file in the directory is covered above (or is the junk directory).
    let mut listed: Vec<String> = std::fs::read_dir(BAD)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "dir-with-junk")
        .collect();
    listed.sort();
    let mut covered: Vec<String> = cases.iter().map(|c| c.0.to_string()).collect();
    covered.sort();
    assert_eq!(listed, covered, "a fixture in {BAD} has no test case");
}

#[test]
fn directory_with_a_non_manifest_file() {
    let e = fails(
        &format!("{BAD}/dir-with-junk"),
        &[
            "dir-with-junk/notes.txt:1:1:",
            "not a manifest file",
            ".yaml, .yml, .json",
        ],
    );
    assert_eq!(e.document, None);
    // The valid manifest next to it loads on its own.
    assert_eq!(
        load_one(&format!("{BAD}/dir-with-junk/app.yaml")).map(|v| v.len()),
        Ok(1)
    );
}

#[test]
fn good_fixtures() {
    let loaded = match load_one(GOOD) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    };
    let got: Vec<(String, String, usize, usize)> = loaded
        .iter()
        .map(|l| {
            (
                l.object.display_name(),
                l.source.clone(),
                l.document,
                l.line,
            )
        })
        .collect();
    let want = [
        ("component/from-json", "component.json", 1, 1),
        ("component/web", "component.yaml", 1, 2),
        ("project/shop", "multi.yaml", 1, 2),
        ("component/web", "multi.yaml", 2, 7),
        ("component/worker", "multi.yaml", 3, 18),
    ];
    let want: Vec<(String, String, usize, usize)> = want
        .iter()
        .map(|(o, f, d, l)| (o.to_string(), format!("{GOOD}/{f}"), *d, *l))
        .collect();
    assert_eq!(got, want);
    assert_eq!(loaded[3].object.project(), Some("shop"));
    assert_eq!(loaded[1].object.project(), Some("default"));
    assert_eq!(loaded[2].object.project(), None);
}

#[test]
fn examples_validate() {
    let dir = Path::new("manifests/examples");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path().display().to_string();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            text.starts_with("# yaml-language-server: $schema=../../crds/"),
            "{path} must start with a yaml-language-server schema line"
        );
        if let Err(e) = load_one(&path) {
            panic!("example does not validate: {e}");
        }
        n += 1;
    }
    assert!(n >= 2, "expected the examples in {}", dir.display());
}

#[test]
fn documents_and_lines() {
    let text = format!(
        "# leading comment\n---\n{WEB}---\n---\n\n{}",
        WEB.replace("web", "api")
    );
    let loaded = parse_str("t.yaml", &text, &Limits::default()).unwrap_or_default();
    let got: Vec<(String, usize, usize)> = loaded
        .iter()
        .map(|l| (l.object.name().to_string(), l.document, l.line))
        .collect();
    assert_eq!(got, vec![("web".into(), 1, 3), ("api".into(), 2, 12)]);

    // Positions in a later document count lines from the top of the file.
    let bad = format!("{WEB}---\n{WEB}  placement: {{replicas: x}}\n");
    text_fails(&bad, &["t.yaml:14:25: document 2 (component/web): spec.placement.replicas: invalid type: string \"x\""]);

    // CRLF line ends and a byte order mark.
    let crlf = format!(
        "\u{feff}{}",
        format!("{WEB}---\n{WEB}").replace('\n', "\r\n")
    );
    text_fails(&crlf, &["document 2 (component/web): metadata.name: component/web in project default is defined twice"]);

    // `...` ends a document too.
    let dots = format!("{WEB}...\n{}", WEB.replace("web", "api"));
    assert_eq!(
        parse_str("t.yaml", &dots, &Limits::default()).map(|v| v.len()),
        Ok(2)
    );
}

#[test]
fn empty_inputs() {
    for text in [
        "",
        "\n\n",
        "# only a comment\n",
        "---\n",
        "---\n---\n...\n",
        "~\n",
        "--- null\n",
    ] {
        text_fails(text, &["t.yaml:1:1: no objects found"]);
    }
}

#[test]
fn header_errors() {
    text_fails(
        "- a\n- b\n",
        &["t.yaml:1:1: document 1: expected an object"],
    );
    text_fails("just a string\n", &["expected an object"]);
    text_fails(
        "kind: Component\nmetadata: {name: web}\n",
        &["t.yaml:1:1: document 1 (component/web): apiVersion: missing field `apiVersion`"],
    );
    text_fails(
        "apiVersion: berth/v1\nmetadata: {name: web}\n",
        &["t.yaml:1:1: document 1 (web): kind: missing field `kind`"],
    );
    text_fails(
        &WEB.replace("Component", "component"),
        &[
            "kind: unknown kind \"component\"",
            "did you mean Component?",
        ],
    );
    text_fails(
        &WEB.replace("  name: web\n", ""),
        &["t.yaml:3:1: document 1 (component): metadata.name: missing field `name`"],
    );
    text_fails(
        "apiVersion: berth/v1\nkind: Component\nmetadata: [web]\n",
        &[
            "t.yaml:3:11:",
            "metadata: invalid type: a list, expected a mapping",
        ],
    );
    text_fails(
        "apiVersion: berth/v1\nkind: Component\nmetadata: {name: web}\n",
        &["t.yaml:1:1: document 1 (component/web): spec: missing field `spec`"],
    );
}

#[test]
fn type_errors_have_paths() {
    let cases: &[(&str, &[&str])] = &[
        ("  ports: 8080\n", &[":7:10:", "spec.ports: invalid type: integer `8080`, expected a list"]),
        ("  ports:\n  - name: http\n", &[":8:5:", "spec.ports[0].container: missing field `container`"]),
        ("  ports: [{container: 70000}]\n", &[":7:23:", "spec.ports[0].container: invalid value: integer `70000`, expected u16 (0 to 65535)"]),
        ("  ports: [{container: -1}]\n", &["spec.ports[0].container: invalid value: integer `-1`"]),
        ("  ports: [{container: 80, external: 8080, protocol: udp}]\n", &["spec.ports[0].protocol: unknown variant `udp`, expected `tcp` or `http`"]),
        ("  readyChecks: [{http: {path: /}}]\n", &["spec.readyChecks[0].http.port: missing field `port`"]),
        ("  env: {A: [1]}\n", &[":7:12:", "spec.env.A: invalid type: a list, expected a string"]),
        ("  env: {app.name: [1]}\n", &["spec.env[\"app.name\"]: invalid type"]),
        ("  state: runing\n", &["spec.state: unknown variant `runing`, expected one of `running`, `stopped`, `killed`"]),
        ("  image: again\n", &[":7:3:", "spec.image: duplicate key `image`"]),
        ("  termination: {signals: [SIGTERM, SIGFOO]}\n", &["spec.termination.signals[1]: unknown signal \"SIGFOO\""]),
        ("  termination: {gracePeriod: 10}\n", &["spec.termination.gracePeriod: invalid duration \"10\""]),
        ("  rollout: {maxSurge: 150%}\n", &["spec.rollout.maxSurge: invalid percentage"]),
        ("  resources: {memory: 12XB}\n", &["spec.resources.memory: invalid size \"12XB\""]),
        ("  privileged: maybe\n", &["spec.privileged: invalid type: string \"maybe\""]),
        ("  placement:\n    replicas:\n      a: 1\n", &["spec.placement.replicas: invalid type: a mapping, expected u32"]),
        ("  ports: [{container: \"80\"}]\n", &["spec.ports[0].container: invalid type: string \"80\", expected u16"]),
        ("  ports: [{container: 1.5}]\n", &["invalid type: floating point `1.5`, expected u16"]),
        ("  resources: {cpus: lots}\n", &["spec.resources.cpus: invalid type: string \"lots\", expected a number"]),
        ("  env:\n    A:\n", &[":8:6:", "spec.env.A: invalid type: null, expected a string"]),
        ("  command: /bin/sh\n", &["spec.command: invalid type: string \"/bin/sh\", expected a list"]),
        ("  env: &e {A: b}\n  command: [*e]\n", &[":8:13:", "spec.command[0]: invalid type: a mapping, expected a string"]),
        ("  <<: {image: x}\n", &["spec[\"<<\"]: merge keys (<<) are not supported"]),
        ("  bindings: [{host: /a, container: /b, readonly: true}]\n", &["spec.bindings[0].readonly: unknown field `readonly` (did you mean `readOnly`?)"]),
    ];
    for (extra, want) in cases {
        text_fails(&format!("{WEB}{extra}"), want);
    }
    text_fails(
        &format!("{WEB}spex: {{}}\n"),
        &[":7:1:", "spex: unknown field `spex` (did you mean `spec`?)"],
    );
    text_fails(
        "apiVersion: berth/v1\nkind: Project\nmetadata: {name: shop}\nspec: {descripton: x}\n",
        &["spec.descripton: unknown field `descripton` (did you mean `description`?)"],
    );
    text_fails(
        "apiVersion: berth/v1\nkind: Node\nmetadata: {name: n1, uid: 1, labelz: {}}\n",
        &["metadata.labelz: unknown field"],
    );
}

#[test]
fn semantic_errors_are_positioned() {
    text_fails(
        &format!("{WEB}  ports:\n  - container: 0\n"),
        &[":8:16:", "spec.ports[0].container: port 0 is not allowed"],
    );
    text_fails(
        &WEB.replace("name: web", "name: Web"),
        &["t.yaml:4:9: document 1 (component/Web): metadata.name: invalid name \"Web\""],
    );
    text_fails(
        "apiVersion: berth/v1\nkind: Project\nmetadata:\n  name: p\n  labels:\n    app.kubernetes.io/name: \"a b\"\n",
        &[":6:29:", "metadata.labels[\"app.kubernetes.io/name\"]: invalid value \"a b\""],
    );
    // Several problems: the first is positioned, the others are counted.
    let e = text_fails(
        &format!("{WEB}  ports: [{{container: 0}}, {{container: 1, external: 0}}]\n  volumesFrom: [web]\n"),
        &[":7:23:", "spec.ports[0].container", "(and 2 more: spec.ports[1].external, spec.volumesFrom[0])"],
    );
    assert_eq!(e.path.as_deref(), Some("spec.ports[0].container"));
    assert_eq!(e.position, Some((7, 23)));
    assert_eq!(e.document, Some(1));
    assert_eq!(e.object.as_deref(), Some("component/web"));
    // A path absent from the text points at its nearest ancestor.
    text_fails(
        &format!("{WEB}  readyChecks:\n  - interval: 1s\n"),
        &[
            ":8:5:",
            "spec.readyChecks[0]: a check needs exactly one probe",
        ],
    );
}

/// Issue 10's bad input for jobs and roles: each refused with its position
/// and field path (nothing is written: `apply` parses before any request).
#[test]
fn jobs_and_roles_errors_are_positioned() {
    for (extra, want) in [
        (
            "  jobs:\n  - name: dump\n    schedule: '0 0 * * * * * *'\n    exec: [date]\n",
            [":9:15:", "spec.jobs[0].schedule: invalid cron expression"],
        ),
        (
            "  jobs:\n  - name: dump\n    schedule: '0 * * * *'\n    exec: [date]\n    backup:\n      destination: /b\n      keep: {hourly: 0}\n",
            [":13:7:", "spec.jobs[0].backup.keep: hourly, daily, weekly and monthly are all 0"],
        ),
        (
            "  roles:\n    elect: false\n    onLeader: {exec: [date]}\n",
            [":9:5:", "spec.roles.onLeader: a role hook needs `elect: true`"],
        ),
    ] {
        text_fails(&format!("{WEB}{extra}"), &want);
    }
}

#[test]
fn status_and_server_fields_are_accepted() {
    let text = format!(
        "{}{}",
        WEB.replace("  name: web\n", "  name: web\n  uid: abc\n  resourceVersion: \"12\"\n  generation: 3\n"),
        "status: {observedGeneration: 3, replicas: 1, conditions: [{type: Available, status: \"True\"}]}\n"
    );
    assert_eq!(
        parse_str("t.yaml", &text, &Limits::default()).map(|v| v.len()),
        Ok(1)
    );
}

/// Runs `f` on a thread with a small stack: proves the parser does not
/// recurse once per nesting level.
fn small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .map(|h| h.join())
    {
        Ok(Ok(v)) => v,
        _ => panic!("thread failed"),
    }
}

#[test]
fn deep_nesting_is_rejected_by_the_depth_limit() {
    let mut block =
        String::from("apiVersion: berth/v1\nkind: Component\nmetadata:\n  name: web\nspec:\n");
    for i in 1..10_000 {
        block.push_str(&" ".repeat(i));
        block.push_str("a:\n");
    }
    let mut block_seq = String::new();
    for i in 0..10_000 {
        block_seq.push_str(&" ".repeat(i));
        block_seq.push_str("-\n");
    }
    let flow_seq = format!(
        "apiVersion: berth/v1\nkind: Component\nspec: {}",
        "[".repeat(10_000)
    );
    let flow_map = format!("x: {}", "{a: ".repeat(10_000));
    let compact_seq = "- ".repeat(10_000);
    // Deep block nesting needs a lot of indentation: lift the size limits
    // so the depth limit is what rejects it.
    let unbounded = Limits {
        max_bytes: usize::MAX,
        max_document_bytes: usize::MAX,
        ..Limits::default()
    };
    for text in [block, block_seq, flow_seq, flow_map, compact_seq] {
        let limits = unbounded.clone();
        let line = small_stack(move || {
            parse_str("deep.yaml", &text, &limits)
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        let line = line.err().unwrap_or_default();
        assert!(line.starts_with("deep.yaml:"), "{line}");
        assert!(line.contains("nested more than 64 levels deep"), "{line}");
    }
    // 64 levels are fine for the parser (the object is then just the wrong type).
    let ok_depth = format!("{WEB}  env: {{A: {}1{}}}\n", "[".repeat(60), "]".repeat(60));
    text_fails(&ok_depth, &["spec.env.A: invalid type: a list"]);
    let too_deep = format!("{WEB}  env: {{A: {}1{}}}\n", "[".repeat(70), "]".repeat(70));
    text_fails(&too_deep, &["t.yaml:7:", "nested more than 64 levels deep"]);
    // The limit is configurable.
    let limits = Limits {
        max_depth: 3,
        ..Limits::default()
    };
    let err = parse_str("t.yaml", WEB, &limits)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.is_empty(), "{err}");
    let err = parse_str(
        "t.yaml",
        &format!("{WEB}  ports: [{{container: 1}}]\n"),
        &limits,
    )
    .err();
    assert!(err.is_some_and(|e| e.to_string().contains("nested more than 3 levels deep")));
}

#[test]
fn big_documents_are_rejected_by_the_size_limit() {
    // A 5 MB document: one env value of 5,000,000 bytes.
    let big = format!("{WEB}  env:\n    BIG: \"{}\"\n", "x".repeat(5_000_000));
    let e = text_fails(
        &big,
        &[
            "t.yaml:1:1: document 1:",
            "document is 5000",
            "more than the limit of 1 MiB (1048576 bytes)",
        ],
    );
    assert_eq!(e.path, None);
    // The same through a file: under the per-file limit, over the per-document one.
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let path = dir.path().join("big.yaml");
    assert!(std::fs::write(&path, format!("{WEB}---\n{big}")).is_ok());
    let name = path.display().to_string();
    fails(
        &name,
        &[
            &format!("{name}:7:1: document 2:"),
            "more than the limit of 1 MiB",
        ],
    );
    // The per-file limit.
    let small = Limits {
        max_bytes: 1000,
        ..Limits::default()
    };
    let e = load(std::slice::from_ref(&name), &small)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains(&format!(
            "{name}:1:1: input is larger than the limit of 1000 bytes"
        )),
        "{e}"
    );
    let e = parse_str("t.yaml", &big, &small)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("input is larger than the limit"), "{e}");
}

#[test]
fn document_count_limit() {
    let many: String = (0..5)
        .map(|i| WEB.replace("name: web", &format!("name: web{i}")) + "---\n")
        .collect();
    let limits = Limits {
        max_documents: 4,
        ..Limits::default()
    };
    let e = parse_str("t.yaml", &many, &limits)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("document 5") && e.contains("more than 4 documents"),
        "{e}"
    );
    assert_eq!(
        parse_str("t.yaml", &many, &Limits::default()).map(|v| v.len()),
        Ok(5)
    );
}

#[test]
fn files_and_directories() {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let root = dir.path();
    let write = |p: &str, text: &str| {
        let path = root.join(p);
        if let Some(parent) = path.parent() {
            assert!(std::fs::create_dir_all(parent).is_ok());
        }
        assert!(std::fs::write(path, text).is_ok());
    };
    write("b.yaml", &WEB.replace("web", "b"));
    write("a/z.yml", &WEB.replace("web", "az"));
    write(
        "c.JSON",
        r#"{"apiVersion": "berth/v1", "kind": "Project", "metadata": {"name": "c"}}"#,
    );
    write(".git/config", "[core]\n");
    write(".hidden.yaml", "not: loaded\n");
    let d = root.display().to_string();
    let names: Vec<String> = load(std::slice::from_ref(&d), &Limits::default())
        .unwrap_or_default()
        .iter()
        .map(|l| l.object.name().to_string())
        .collect();
    assert_eq!(names, ["az", "b", "c"]);

    // A duplicate across inputs names both places.
    write("other/dup.yaml", &WEB.replace("web", "b"));
    let e = load(
        &[d.clone(), format!("{d}/other/dup.yaml")],
        &Limits::default(),
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(e.contains("dup.yaml:1:1: document 1 (component/b): metadata.name: component/b in project default is defined twice: also in"), "{e}");
    assert!(e.contains("b.yaml:1 (document 1)"), "{e}");

    // A named file is read whatever its extension; a missing one is an error.
    write("manifest.txt", WEB);
    assert_eq!(
        load(&[format!("{d}/manifest.txt")], &Limits::default()).map(|v| v.len()),
        Ok(1)
    );
    let e = load(&[format!("{d}/nope.yaml")], &Limits::default())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("nope.yaml: cannot read:"), "{e}");
    // Non-UTF-8 text.
    assert!(std::fs::write(
        root.join("latin1.yaml"),
        b"apiVersion: berth/v1\nkind: \xe9\n"
    )
    .is_ok());
    let e = load(&[format!("{d}/latin1.yaml")], &Limits::default())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("latin1.yaml:2:7: not UTF-8 text"), "{e}");
    // No input at all.
    assert!(load(&[], &Limits::default()).is_err());
}

/// 1,000 components parse and validate quickly (the bound here is loose
/// because tests run unoptimized; release is about 10x faster).
#[test]
fn thousand_components() {
    let one = |i: usize| {
        format!(
            "apiVersion: berth/v1\nkind: Component\nmetadata:\n  name: web-{i}\n  project: bench\n  labels: {{tier: frontend, idx: \"{i}\"}}\nspec:\n  image: bench/web:2\n  command: [\"/bin/httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n  env: {{GREETING: hello}}\n  ports: [{{name: http, container: 8080}}]\n  placement: {{replicas: 2}}\n  readyChecks: [{{http: {{port: 8080, path: /}}, interval: 1s, timeout: 2s}}]\n  termination: {{signals: [SIGINT], gracePeriod: 5s}}\n  rollout: {{maxUnavailable: 1, maxSurge: 1}}\n---\n"
        )
    };
    let text: String = (0..1000).map(one).collect();
    let start = std::time::Instant::now();
    let loaded = parse_str("bench.yaml", &text, &Limits::default());
    let took = start.elapsed();
    assert_eq!(loaded.map(|v| v.len()), Ok(1000));
    eprintln!("1000 components ({} bytes): {took:?}", text.len());
    assert!(took < std::time::Duration::from_secs(3), "{took:?}");
}

/// Truncated and mangled manifests give errors, never panics.
#[test]
fn mangled_input_never_panics() {
    let text = std::fs::read_to_string("manifests/examples/shop.yaml").unwrap_or_default();
    assert!(text.len() > 1000);
    let limits = Limits::default();
    let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).step_by(13).collect();
    for &i in &boundaries {
        let _ = parse_str("t.yaml", &text[..i], &limits);
        for c in [
            ":", "[", "{", "- ", "\t", "\"", "&a ", "*a ", "!!str ", "|", "<<: ", "é", "---\n",
            "\n",
        ] {
            let mangled = format!("{}{c}{}", &text[..i], &text[i..]);
            if let Err(e) = parse_str("t.yaml", &mangled, &limits) {
                let line = e.to_string();
                assert!(
                    line.starts_with("t.yaml:") && !line.contains('\n'),
                    "{line}"
                );
            }
        }
    }
}

/// `kind: List` (what `berth get -o json` prints) holds objects in `items`;
/// each is an object of its own, and errors point into the item.
#[test]
fn lists_are_expanded() {
    let limits = Limits::default();
    let list = r#"{
  "apiVersion": "berth/v1",
  "kind": "List",
  "items": [
    {"apiVersion": "berth/v1", "kind": "Project", "metadata": {"name": "shop"}},
    {"apiVersion": "berth/v1", "kind": "Component", "metadata": {"name": "web", "project": "shop"},
     "spec": {"image": "web:1"}}
  ]
}"#;
    let loaded = parse_str("all.json", list, &limits).expect("a list of two objects");
    let names: Vec<String> = loaded.iter().map(|l| l.object.display_name()).collect();
    assert_eq!(names, ["project/shop", "component/web"]);
    assert_eq!(loaded[1].line, 6);
    let bad = list.replace(
        "\"image\": \"web:1\"",
        "\"image\": \"web:1\", \"replicas\": 2",
    );
    let e = parse_str("all.json", &bad, &limits).expect_err("unknown field in an item");
    let line = e.to_string();
    assert!(line.starts_with("all.json:7:"), "{line}");
    assert!(
        line.contains("(component/web): spec.replicas: unknown field"),
        "{line}"
    );
    let empty = "apiVersion: berth/v1\nkind: List\nitems: []\n";
    assert!(parse_str("e.yaml", empty, &limits).is_ok_and(|v| v.is_empty()));
}

#[test]
fn config_templates_and_link_aliases() {
    let head = "apiVersion: berth/v1\nkind: Component\nmetadata: {name: lb}\nspec:\n  image: x\n";
    // A template that does not parse: the file's line:column of the field,
    // its path, and the position inside the template.
    text_fails(
        &format!("{head}  configs:\n  - path: /etc/lb.conf\n    template: |\n      ok\n      {{% for e in %}}\n"),
        &["t.yaml:9:7", "spec.configs[0].template", "template line 2:13"],
    );
    // `env` stays accepted as the old name of a link's `alias`.
    let ok = format!("{head}  links: {{require: [{{name: db, env: DB}}]}}\n");
    let parsed = parse_str("t.yaml", &ok, &Limits::default()).unwrap();
    let crate::resource::Object::Component(c) = &parsed[0].object else {
        panic!("not a component")
    };
    let links = c.spec.links.as_ref().unwrap();
    assert_eq!(links.require[0].alias.as_deref(), Some("DB"));
}
