//! One source of authorization and rule parity (issue 11 §4, §5): `infra/template.yaml`, which
//! AWS deploys, against the local broker (Mosquitto 2.0.11 with this plugin and
//! `infra/mosquitto/acl`, on a TLS listener where the client certificate's CN is the username,
//! as IoT Core binds an identity to a certificate).
//!
//! # Authorization (§4)
//! [`derive_cases`] reads every `AWS::IoT::Policy` of the template, resolves its `!Sub`
//! resources with the parameters' defaults, and expands each resource into concrete names: the
//! wildcard filled with sample levels (allowed) and near misses around its literal prefix (the
//! parent alone, a longer parent, another case, the other parents, the `$` topics of the
//! plugin), each with the verdict the policy gives it (IoT policy semantics: `*` is any run of
//! characters, `/` included; a `Deny` wins). Every case is then tried on a real broker as that
//! identity (a client certificate with CN = identity): a publish must be acknowledged exactly
//! when the policy allows it (MQTT 5 PUBACK reason code), a connection may act exactly under the
//! client IDs the policy's `iot:Connect` allows. A certificate identity no policy is attached to
//! must get nothing. The grants the local backend has beyond any policy, because it also plays
//! IoT's rules engine, are listed once in [`LOCAL_ONLY_READS`] with the reason, and checked on
//! deliveries in the rule-parity broker test.
//!
//! A mutated template (a wider or narrower `BackendPolicy` resource, an added action) and a
//! mutated ACL (a wider or narrower backend line) are fed through the same derivation and
//! broker check, and must produce mismatches.
//!
//! # Rules (§5)
//! [`rule_parity`] compares the template's IoT rules with what the plugin produces: the uplink
//! record's fields = the aliases the uplink rule selects (plus the local-only fields of
//! [`LOCAL_RECORD_EXTRAS`]); the rule's `FROM` filter = `<parent>/#` for exactly the plugin's
//! uplink parents (`plugin_opt_uplink_parents` as `infra/local/stack.sh` sets it); every lifecycle
//! topic the plugin publishes on matches the presence rule's `FROM`. It runs on the plugin's
//! pure builders with mutated template copies, and on the real broker's output.
//!
//! The template is decoded by the same code as the template invariant tests
//! (`infra/tests/template_invariants.py`, cfn-lint's decoder: short-form tags in long form), run
//! with the project venv's Python (`make deps`), so there is one YAML reader in the project.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failure should panic

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use classroom_broker_plugin::records;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason, Publish};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::Value;
use testkit::Mosquitto;
use testkit::certs::{BACKEND_IDENTITY, Ca};
use tokio::sync::mpsc;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);
const STUDENT: &str = "GID_student@@@001";

/// Which local certificate identity each IoT policy of the template is attached to. A policy
/// missing here fails [`derive_cases`]: say which identity carries it locally.
const POLICY_IDENTITIES: [(&str, &str); 1] = [("BackendPolicy", BACKEND_IDENTITY)];

/// A certificate identity no IoT policy is attached to: it must get nothing locally.
const UNKNOWN_IDENTITY: &str = "intruder";

/// What the local backend identity may read that no IoT policy grants, and why. The backend
/// policy has no `iot:Subscribe`/`iot:Receive`: in AWS the inflow only publishes, and the rules
/// engine reads the uplink publishes and lifecycle events without any policy.
const LOCAL_ONLY_READS: [(&str, &str); 3] = [
    (
        "$classroom/#",
        "the plugin's uplink records: the local rules bridge reads them as IoT's rules engine",
    ),
    (
        "$aws/events/presence/#",
        "the lifecycle events: the local rules bridge reads them as IoT's rules engine",
    ),
    (
        "room/#",
        "tests and tools watch the downlink as the backend (AWS: a test subscriber's own policy)",
    ),
];

/// Fields of the local uplink record that the IoT rule SQL cannot select, and why they are
/// harmless: `mapping::outflow::UplinkRecord::qos` is optional, so the AWS record parses too.
const LOCAL_RECORD_EXTRAS: [&str; 1] = ["qos"];

/// (identity, action) pairs where the local broker is known to be wider than the policy, each
/// asserted to still differ (so a fix has to delete its entry). The one today: on a
/// `use_identity_as_username` listener Mosquitto 2.0.11 never calls a plugin's basic-auth
/// callback and the plugin's ACL check defers the backend to `acl_file`, which cannot name a
/// client ID, so `iot:Connect`'s `client/backend-*` is not enforced locally: the backend
/// certificate may act under any client ID. (The inflow's own prefix is held to `backend-` by
/// the template's MqttClientIdPrefix AllowedPattern.)
const KNOWN_LOCAL_GAPS: [(&str, Action); 1] = [(BACKEND_IDENTITY, Action::Connect)];

// ------------------------------------------------------------------ the template

fn repo_root() -> PathBuf {
    testkit::repo_root()
}

/// The template as JSON, decoded by `infra/tests/template_invariants.py`'s `load`.
fn load_template(path: &Path) -> Template {
    let python = repo_root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make deps` (the project venv; its cfn-lint decodes the template)",
        python.display()
    );
    let out = Command::new(&python)
        .current_dir(repo_root())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .arg("-c")
        .arg(
            "import json, sys; from pathlib import Path; sys.path.insert(0, 'infra/tests'); \
             from template_invariants import load; json.dump(load(Path(sys.argv[1])), sys.stdout)",
        )
        .arg(path)
        .output()
        .expect("the venv's python runs");
    assert!(
        out.status.success(),
        "decoding {} failed:\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Template::new(serde_json::from_slice(&out.stdout).expect("the decoder prints JSON"))
}

fn real_template() -> &'static Template {
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(|| load_template(&repo_root().join("infra/template.yaml")))
}

/// A copy of the real template with `from` replaced by `to` (once), decoded.
fn mutated_template(from: &str, to: &str) -> Template {
    let text = std::fs::read_to_string(repo_root().join("infra/template.yaml")).unwrap();
    assert!(
        text.contains(from),
        "the mutation no longer applies: infra/template.yaml has no {from:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("template.yaml");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    load_template(&path)
}

/// A decoded template and its parameters' defaults (plus pseudo parameters).
struct Template {
    json: Value,
    params: BTreeMap<String, String>,
}

impl Template {
    fn new(json: Value) -> Self {
        let mut params: BTreeMap<String, String> = [
            ("AWS::Partition", "aws"),
            ("AWS::Region", "us-east-1"),
            ("AWS::AccountId", "123456789012"),
            ("AWS::StackName", "classroom"),
            ("AWS::URLSuffix", "amazonaws.com"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        if let Some(ps) = json["Parameters"].as_object() {
            for (name, p) in ps {
                match &p["Default"] {
                    Value::String(s) => params.insert(name.clone(), s.clone()),
                    Value::Number(n) => params.insert(name.clone(), n.to_string()),
                    _ => None,
                };
            }
        }
        Self { json, params }
    }

    fn resources(&self, kind: &str) -> Vec<(&str, &Value)> {
        self.json["Resources"]
            .as_object()
            .map(|r| {
                r.iter()
                    .filter(|(_, v)| v["Type"] == kind)
                    .map(|(k, v)| (k.as_str(), v))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn param(&self, name: &str) -> Result<&str, String> {
        self.params
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| format!("parameter {name} has no default"))
    }

    /// A string value: literal, `Ref` to a parameter, or `Fn::Sub` of parameters.
    fn resolve(&self, v: &Value) -> Result<String, String> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Object(o) if o.contains_key("Ref") => self
                .param(o["Ref"].as_str().unwrap_or_default())
                .map(str::to_owned),
            Value::Object(o) if o.contains_key("Fn::Sub") => match &o["Fn::Sub"] {
                Value::String(s) => self.sub(s, &serde_json::Map::new()),
                Value::Array(a) if a.len() == 2 => {
                    let vars = a[1].as_object().cloned().unwrap_or_default();
                    self.sub(a[0].as_str().unwrap_or_default(), &vars)
                }
                other => Err(format!("unexpected Fn::Sub {other}")),
            },
            other => Err(format!("cannot resolve {other}")),
        }
    }

    fn sub(&self, s: &str, vars: &serde_json::Map<String, Value>) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = s;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..]
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {s:?}"))?;
            let name = &rest[start + 2..start + end];
            match vars.get(name) {
                Some(v) => out.push_str(&self.resolve(v)?),
                None => out.push_str(self.param(name)?),
            }
            rest = &rest[start + end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

fn as_list(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        Value::Null => vec![],
        other => vec![other],
    }
}

// ------------------------------------------------------------------ IoT policies (§4)

/// The IoT actions the derivation knows; any other action in a policy stops it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    /// `iot:Connect` on `client/<clientId>`.
    Connect,
    /// `iot:Publish` on `topic/<topic>`.
    Publish,
    /// `iot:Subscribe` on `topicfilter/<filter>`.
    Subscribe,
    /// `iot:Receive` on `topic/<topic>`.
    Receive,
}

impl Action {
    const ALL: [Self; 4] = [Self::Connect, Self::Publish, Self::Subscribe, Self::Receive];

    fn parse(s: &str) -> Result<Vec<Self>, String> {
        Ok(match s {
            "iot:*" => Self::ALL.to_vec(),
            "iot:Connect" => vec![Self::Connect],
            "iot:Publish" => vec![Self::Publish],
            "iot:Subscribe" => vec![Self::Subscribe],
            "iot:Receive" => vec![Self::Receive],
            other => return Err(format!("the parity derivation does not know {other}")),
        })
    }

    /// The ARN resource type the action is checked against.
    fn kind(self) -> &'static str {
        match self {
            Self::Connect => "client",
            Self::Publish | Self::Receive => "topic",
            Self::Subscribe => "topicfilter",
        }
    }
}

/// One statement: allow or deny, its actions, its resources as (type, pattern).
#[derive(Debug, Clone)]
struct Statement {
    allow: bool,
    actions: Vec<Action>,
    resources: Vec<(String, String)>,
}

fn statements(t: &Template, policy: &Value) -> Result<Vec<Statement>, String> {
    let prefix = format!(
        "arn:{}:iot:{}:{}:",
        t.param("AWS::Partition")?,
        t.param("AWS::Region")?,
        t.param("AWS::AccountId")?
    );
    let mut out = Vec::new();
    for s in as_list(&policy["Properties"]["PolicyDocument"]["Statement"]) {
        let mut actions = Vec::new();
        for a in as_list(&s["Action"]) {
            actions.extend(Action::parse(a.as_str().unwrap_or_default())?);
        }
        let mut resources = Vec::new();
        for r in as_list(&s["Resource"]) {
            let arn = t.resolve(r)?;
            if arn == "*" {
                resources.push(("*".to_owned(), "*".to_owned()));
                continue;
            }
            let rest = arn
                .strip_prefix(&prefix)
                .ok_or_else(|| format!("{arn} is not an IoT resource of this account"))?;
            let (kind, name) = rest
                .split_once('/')
                .ok_or_else(|| format!("{arn} has no resource type"))?;
            resources.push((kind.to_owned(), name.to_owned()));
        }
        out.push(Statement {
            allow: s["Effect"] == "Allow",
            actions,
            resources,
        });
    }
    Ok(out)
}

/// IoT policy resource matching: `*` any run of characters (`/` included), `?` one character.
fn iot_matches(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some((&'*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some((&'?', rest)) => !n.is_empty() && go(rest, &n[1..]),
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

/// The policy's verdict: some Allow statement covers it and no Deny statement does.
fn policy_allows(stmts: &[Statement], action: Action, name: &str) -> bool {
    let covers = |s: &Statement| {
        s.actions.contains(&action)
            && s.resources
                .iter()
                .any(|(k, p)| (k == "*" || k == action.kind()) && iot_matches(p, name))
    };
    stmts.iter().any(|s| s.allow && covers(s)) && !stmts.iter().any(|s| !s.allow && covers(s))
}

/// One (identity, action, name) case and the verdict the template's policy gives it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Case {
    identity: String,
    action: Action,
    name: String,
    allowed: bool,
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:?} {:?} (policy: {})",
            self.identity,
            self.action,
            self.name,
            if self.allowed { "allow" } else { "deny" }
        )
    }
}

/// Concrete names inside a resource pattern.
fn samples(pattern: &str, fills: &[&str]) -> Vec<String> {
    fills
        .iter()
        .map(|f| pattern.replace('*', f).replace('?', "x"))
        .collect()
}

/// Names just outside a resource pattern: around its literal prefix (up to the first wildcard).
fn near_misses(pattern: &str, tail: &str) -> Vec<String> {
    let literal = &pattern[..pattern.find(['*', '?']).unwrap_or(pattern.len())];
    let sep = literal.chars().last().filter(|c| matches!(c, '/' | '-'));
    let base = sep.map_or(literal, |c| &literal[..literal.len() - c.len_utf8()]);
    if base.is_empty() {
        return vec![];
    }
    let sep = sep.map_or("/".to_owned(), String::from);
    let mut first = base.chars();
    let other_case: String = first
        .next()
        .map(|c| {
            let flipped: String = if c.is_uppercase() {
                c.to_lowercase().collect()
            } else {
                c.to_uppercase().collect()
            };
            flipped + first.as_str()
        })
        .unwrap_or_default();
    let mut shorter = base.to_owned();
    shorter.pop();
    vec![
        base.to_owned(),
        format!("{base}X{sep}{tail}"),
        format!("{other_case}{sep}{tail}"),
        format!("{shorter}{sep}{tail}"),
        format!("{tail}{sep}{base}"),
    ]
}

fn is_topic(s: &str) -> bool {
    !s.is_empty() && !s.contains(['+', '#', '\0'])
}

/// The cases of every IoT policy of `t`, plus [`UNKNOWN_IDENTITY`] (no policy: everything denied).
fn derive_cases(t: &Template) -> Result<Vec<Case>, String> {
    let mut policies: Vec<(String, Vec<Statement>)> = Vec::new();
    for (logical, policy) in t.resources("AWS::IoT::Policy") {
        let identity = POLICY_IDENTITIES
            .iter()
            .find(|(p, _)| *p == logical)
            .map(|(_, i)| (*i).to_owned())
            .ok_or_else(|| {
                format!("IoT policy {logical} has no local identity: add it to POLICY_IDENTITIES")
            })?;
        policies.push((identity, statements(t, policy)?));
    }
    // The names every identity is tried on: from every policy's resources, plus the parents
    // and the plugin's `$` topics.
    let mut topics: BTreeSet<String> = BTreeSet::new();
    let mut clients: BTreeSet<String> = BTreeSet::new();
    for (_, stmts) in &policies {
        for s in stmts {
            for (kind, p) in &s.resources {
                match kind.as_str() {
                    "topic" | "topicfilter" | "*" => {
                        topics.extend(samples(
                            p,
                            &["", "message/r1", "p2p/GID_student@@@001", "system"],
                        ));
                        topics.extend(near_misses(p, "message/r1"));
                    }
                    _ => {}
                }
                if matches!(kind.as_str(), "client" | "*") {
                    clients.extend(samples(p, &["inflow-1", "parity"]));
                    clients.extend(near_misses(p, "inflow-1"));
                }
            }
        }
    }
    // The topics of the contract (§4.3, §4.5) under both parents, whatever the policies say.
    for parent in ["UplinkParent", "DownlinkParent"] {
        let p = t.param(parent)?;
        topics.extend([
            format!("{p}/message/r1"),
            format!("{p}/status/r1"),
            format!("{p}/p2p/{STUDENT}"),
            format!("{p}/system"),
            format!("{p}/command"),
            p.to_owned(),
        ]);
    }
    topics.extend([
        "$classroom/uplink".to_owned(),
        format!("$aws/events/presence/connected/{STUDENT}"),
        "elsewhere/message/r1".to_owned(),
    ]);
    clients.insert(format!("{}0", t.param("MqttClientIdPrefix")?));
    topics.retain(|s| is_topic(s));
    clients.retain(|s| is_topic(s));

    let mut cases = Vec::new();
    let nobody = (UNKNOWN_IDENTITY.to_owned(), Vec::new());
    for (identity, stmts) in policies.iter().chain([&nobody]) {
        for (action, names) in [
            (Action::Publish, &topics),
            (Action::Receive, &topics),
            (Action::Connect, &clients),
        ] {
            for name in names {
                cases.push(Case {
                    identity: identity.clone(),
                    action,
                    name: name.clone(),
                    allowed: policy_allows(stmts, action, name),
                });
            }
        }
    }
    Ok(cases)
}

// ------------------------------------------------------------------ the real broker

/// The plugin cargo built for this test (see `tests/broker.rs`).
fn plugin_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let so = exe.with_file_name("libclassroom_broker_plugin.so");
    assert!(
        so.exists(),
        "{} is missing: run `cargo test -p broker-plugin`",
        so.display()
    );
    so
}

/// The `plugin_opt_*` lines `infra/local/stack.sh` writes (their literal values).
fn stack_plugin_options() -> BTreeMap<String, String> {
    let script = std::fs::read_to_string(repo_root().join("infra/local/stack.sh")).unwrap();
    script
        .lines()
        .filter_map(|l| l.trim().strip_prefix("plugin_opt_"))
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

/// Whether stack.sh passes the template's parents (`$UPLINK_PARENTS`) rather than a literal.
fn stack_parents_from_template() -> bool {
    stack_plugin_options()
        .get("uplink_parents")
        .is_some_and(|v| v.contains('$'))
}

/// The local stack's uplink parents: `plugin_opt_uplink_parents` of stack.sh; a `$UPLINK_PARENTS`
/// there is the template's value (provision.py writes the functions' environment to stack.env).
fn stack_uplink_parents(t: &Template) -> Vec<String> {
    let opts = stack_plugin_options();
    let raw = opts.get("uplink_parents").cloned().unwrap_or_else(|| {
        panic!("infra/local/stack.sh sets no plugin_opt_uplink_parents: the plugin would use its default")
    });
    let value = match raw.trim_matches(['"', '{', '}']).strip_prefix('$') {
        Some(var) => t
            .resolve(
                &t.json["Globals"]["Function"]["Environment"]["Variables"]
                    [var.trim_matches(['{', '}'])],
            )
            .unwrap_or_else(|e| panic!("stack.sh's {raw}: {e}")),
        None => raw.clone(),
    };
    value
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

struct LocalBroker {
    broker: Mosquitto,
    ca: Ca,
    keys: signin::KeySet,
    _dir: tempfile::TempDir,
}

/// A TLS broker as the local stack runs it: the plugin with stack.sh's options, `acl` as the
/// ACL file (the project's by default), a token listener for classroom clients.
fn start_broker(acl: Option<String>) -> LocalBroker {
    let ca = Ca::new("parity CA");
    let dir = tempfile::tempdir().unwrap();
    let keys = signin::KeySet::new("k1", vec![7; 32]).unwrap();
    let keys_file = dir.path().join("keys.json");
    std::fs::write(&keys_file, keys.to_json()).unwrap();
    let keys_file = keys_file.display().to_string();
    let mut opts: Vec<(String, String)> = stack_plugin_options()
        .into_iter()
        .filter(|(k, v)| {
            !matches!(k.as_str(), "keys_file" | "revocations_file")
                && (k == "uplink_parents" || !v.contains('$'))
        })
        .map(|(k, v)| {
            let v = if k == "uplink_parents" {
                stack_uplink_parents(real_template()).join(",")
            } else {
                v
            };
            (k, v)
        })
        .collect();
    opts.push(("keys_file".into(), keys_file));
    let opt_refs: Vec<(&str, &str)> = opts.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut b = Mosquitto::tls(&ca)
        .plugin(plugin_path(), &opt_refs)
        .token_listener();
    if let Some(acl) = acl {
        b = b.acl(acl);
    }
    LocalBroker {
        broker: b.start(),
        ca,
        keys,
        _dir: dir,
    }
}

fn project_acl() -> String {
    std::fs::read_to_string(repo_root().join("infra/mosquitto/acl")).unwrap()
}

/// One MQTT 5 connection whose event loop runs in a task; it never reconnects.
struct Conn {
    client: AsyncClient,
    publishes: mpsc::UnboundedReceiver<Publish>,
    pubacks: mpsc::UnboundedReceiver<PubAckReason>,
    subacks: mpsc::UnboundedReceiver<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LocalBroker {
    /// Connects with a client certificate for `identity` (cert listener) or with a token
    /// (token listener); `Err` with the refusal.
    async fn connect(&self, client_id: &str, auth: Auth<'_>) -> Result<Conn, String> {
        let mut opts = match auth {
            Auth::Certificate(identity) => {
                let mut o = MqttOptions::new(client_id, "127.0.0.1", self.broker.port);
                o.set_transport(self.broker.tls_transport(Some(&self.ca.client(identity))));
                o
            }
            Auth::Token(token) => {
                let port = self.broker.token_port.expect("token listener");
                let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
                o.set_transport(self.broker.tls_transport(None));
                o.set_credentials(client_id, token);
                o
            }
        };
        opts.set_keep_alive(Duration::from_secs(5));
        let (client, mut eventloop) = AsyncClient::new(opts, 100);
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, eventloop.poll()).await {
                Err(_) => return Err("timeout waiting for CONNACK".into()),
                Ok(Err(e)) => return Err(e.to_string()),
                Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => break,
                Ok(Ok(_)) => {}
            }
        }
        let (ptx, publishes) = mpsc::unbounded_channel();
        let (atx, pubacks) = mpsc::unbounded_channel();
        let (stx, subacks) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok(event) = eventloop.poll().await {
                match event {
                    Event::Incoming(Packet::Publish(p)) => {
                        let _ = ptx.send(p);
                    }
                    Event::Incoming(Packet::PubAck(a)) => {
                        let _ = atx.send(a.reason);
                    }
                    Event::Incoming(Packet::SubAck(_)) => {
                        let _ = stx.send(());
                    }
                    _ => {}
                }
            }
        });
        Ok(Conn {
            client,
            publishes,
            pubacks,
            subacks,
            task,
        })
    }

    fn token(&self, client: &str, write: &[String]) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let req = signin::TokenRequest {
            client_id: client.into(),
            read: vec![],
            write: write.to_vec(),
            lifetime_secs: 600,
        };
        let bounds = signin::LifetimeBounds {
            min_secs: 1,
            max_secs: 3600,
        };
        signin::issue(&req, &self.keys, bounds, now, "parity")
            .unwrap()
            .token
    }
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    Certificate(&'a str),
    Token(&'a str),
}

impl Conn {
    /// Publishes at QoS 1: whether the broker accepted it (the PUBACK's reason code).
    async fn publish(&mut self, topic: &str, payload: &[u8]) -> Result<bool, String> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.to_vec())
            .await
            .map_err(|e| e.to_string())?;
        match timeout(WAIT, self.pubacks.recv()).await {
            Ok(Some(PubAckReason::Success | PubAckReason::NoMatchingSubscribers)) => Ok(true),
            Ok(Some(PubAckReason::NotAuthorized)) => Ok(false),
            Ok(Some(other)) => Err(format!("PUBACK {other:?}")),
            Ok(None) => Err("connection closed".into()),
            Err(_) => Err("no PUBACK in time".into()),
        }
    }

    async fn subscribe(&mut self, filters: &[&str]) {
        for f in filters {
            self.client.subscribe(*f, QoS::AtLeastOnce).await.unwrap();
            timeout(WAIT, self.subacks.recv())
                .await
                .expect("SUBACK in time")
                .expect("connection alive");
        }
    }

    /// Every message up to and including the first whose topic starts with `prefix`.
    async fn until(&mut self, prefix: &str) -> Vec<Publish> {
        let mut out = Vec::new();
        loop {
            let p = timeout(WAIT, self.publishes.recv())
                .await
                .unwrap_or_else(|_| panic!("no message on {prefix}... in time"))
                .expect("connection alive");
            let done = p.topic.starts_with(prefix.as_bytes());
            out.push(p);
            if done {
                return out;
            }
        }
    }
}

/// Tries every publish and connect case on the broker; one sentence per disagreement.
async fn broker_mismatches(b: &LocalBroker, cases: &[Case]) -> Vec<String> {
    let mut out = Vec::new();
    let identities: BTreeSet<&str> = cases.iter().map(|c| c.identity.as_str()).collect();
    // What "acting" means for a connect case: publishing a topic some policy allows.
    let probe = cases
        .iter()
        .find(|c| c.action == Action::Publish && c.allowed)
        .map_or("room/message/r1", |c| c.name.as_str());
    for identity in identities {
        let mine = || cases.iter().filter(move |c| c.identity == identity);
        // A client ID the policy lets this identity connect with (any, if none is).
        let client_id = mine()
            .find(|c| c.action == Action::Connect && c.allowed)
            .map_or_else(|| format!("{identity}-parity"), |c| c.name.clone());
        // Publish: one connection, every topic.
        match b.connect(&client_id, Auth::Certificate(identity)).await {
            Err(e) => out.push(format!(
                "{identity} could not connect as {client_id:?}: {e}"
            )),
            Ok(mut conn) => {
                for c in mine().filter(|c| c.action == Action::Publish) {
                    match conn.publish(&c.name, b"parity").await {
                        Ok(local) if local == c.allowed => {}
                        Ok(local) => out.push(format!("{c}: local broker says {}", verdict(local))),
                        Err(e) => out.push(format!("{c}: {e}")),
                    }
                }
            }
        }
        // Connect: can a connection under this client ID act, i.e. publish what the policy
        // lets some identity publish?
        let gap = KNOWN_LOCAL_GAPS
            .iter()
            .any(|(i, a)| *i == identity && *a == Action::Connect);
        let mut gap_seen = false;
        for c in mine().filter(|c| c.action == Action::Connect) {
            let local = match b.connect(&c.name, Auth::Certificate(identity)).await {
                Err(_) => false,
                Ok(mut conn) => conn.publish(probe, b"parity").await.unwrap_or(false),
            };
            match (local == c.allowed, gap) {
                (true, _) => {}
                (false, false) => out.push(format!("{c}: local broker says {}", verdict(local))),
                (false, true) => gap_seen = true,
            }
        }
        if gap && !gap_seen {
            out.push(format!(
                "{identity} Connect: the local broker agrees with the policy now: remove it from \
                 KNOWN_LOCAL_GAPS"
            ));
        }
    }
    out
}

fn verdict(allowed: bool) -> &'static str {
    if allowed { "allow" } else { "deny" }
}

// ------------------------------------------------------------------ IoT rules (§5)

/// A rule's SQL: the select items as (expression, alias) and the FROM filter.
#[derive(Debug, PartialEq, Eq)]
struct RuleSql {
    select: Vec<(String, String)>,
    from: String,
}

fn parse_sql(sql: &str) -> Result<RuleSql, String> {
    let body = sql
        .trim()
        .strip_prefix("SELECT ")
        .ok_or_else(|| format!("{sql:?} does not start with SELECT"))?;
    let at = body
        .find(" FROM '")
        .ok_or_else(|| format!("{sql:?} has no FROM '<filter>'"))?;
    let (list, from) = (&body[..at], &body[at + " FROM '".len()..]);
    let from = from[..from.find('\'').ok_or("unclosed FROM filter")?].to_owned();
    // Split the select list at top-level commas (not inside parentheses or quotes).
    let mut items = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0);
    for (i, ch) in list.char_indices() {
        match ch {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                items.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&list[start..]);
    let select = items
        .into_iter()
        .map(|item| {
            let item = item.trim();
            match item.rsplit_once(" AS ") {
                Some((expr, alias)) => (expr.trim().to_owned(), alias.trim().to_owned()),
                None => (item.to_owned(), item.to_owned()),
            }
        })
        .collect();
    Ok(RuleSql { select, from })
}

/// The SQL of the topic rule whose SQS action sends to `queue` (a logical ID).
fn rule_sql(t: &Template, queue: &str) -> Result<RuleSql, String> {
    let rules: Vec<_> = t
        .resources("AWS::IoT::TopicRule")
        .into_iter()
        .filter(|(_, r)| {
            as_list(&r["Properties"]["TopicRulePayload"]["Actions"])
                .iter()
                .any(|a| a["Sqs"]["QueueUrl"]["Ref"] == queue)
        })
        .collect();
    match rules.as_slice() {
        [(_, r)] => parse_sql(&t.resolve(&r["Properties"]["TopicRulePayload"]["Sql"])?),
        other => Err(format!(
            "{} topic rules send to {queue}, expected exactly one",
            other.len()
        )),
    }
}

/// MQTT filter matching, with the rule that wildcards at the first level skip `$` topics.
fn mqtt_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// What the plugin produced, to compare with the rules.
struct PluginOutput {
    /// One uplink record body.
    record: Value,
    /// The plugin's uplink parents.
    uplink_parents: Vec<String>,
    /// Topics the plugin published lifecycle events on.
    lifecycle_topics: Vec<String>,
}

/// Disagreements between the template's rules and the plugin, one sentence each.
fn rule_parity(t: &Template, out: &PluginOutput) -> Vec<String> {
    let mut v = Vec::new();
    match rule_sql(t, "UplinkQueue") {
        Err(e) => v.push(e),
        Ok(sql) => {
            let aliases: BTreeSet<&str> = sql.select.iter().map(|(_, a)| a.as_str()).collect();
            let fields: BTreeSet<&str> = out
                .record
                .as_object()
                .map(|o| o.keys().map(String::as_str).collect())
                .unwrap_or_default();
            let expected: BTreeSet<&str> =
                aliases.iter().copied().chain(LOCAL_RECORD_EXTRAS).collect();
            if fields != expected {
                v.push(format!(
                    "the uplink record's fields {fields:?} are not the rule's aliases {aliases:?} + \
                     the local-only {LOCAL_RECORD_EXTRAS:?}"
                ));
            }
            let froms: BTreeSet<String> = out
                .uplink_parents
                .iter()
                .map(|p| format!("{p}/#"))
                .collect();
            if froms != BTreeSet::from([sql.from.clone()]) {
                v.push(format!(
                    "the uplink rule reads FROM {:?}, the plugin records under {:?}",
                    sql.from, out.uplink_parents
                ));
            }
        }
    }
    match rule_sql(t, "PresenceQueue") {
        Err(e) => v.push(e),
        Ok(sql) => {
            for topic in &out.lifecycle_topics {
                if !mqtt_matches(&sql.from, topic) {
                    v.push(format!(
                        "the plugin publishes a lifecycle event on {topic:?}, which the presence \
                         rule's FROM {:?} does not match",
                        sql.from
                    ));
                }
            }
            if out.lifecycle_topics.is_empty() {
                v.push("no lifecycle topic to compare".into());
            }
        }
    }
    v
}

/// The plugin's pure builders' output (no broker).
fn builders_output(t: &Template) -> PluginOutput {
    let session = records::Session {
        client_id: STUDENT.into(),
        session_id: "s".into(),
        ip_address: None,
        username: Some(STUDENT.into()),
    };
    let record = records::uplink_record("roomSend/message", STUDENT, 1, b"{}", 1);
    PluginOutput {
        record: serde_json::from_str(&record).unwrap(),
        uplink_parents: stack_uplink_parents(t),
        lifecycle_topics: vec![
            records::connected_event(&session, 1, 1).0,
            records::disconnected_event(&session, 2, 2, records::DisconnectCause::Unknown).0,
        ],
    }
}

// ------------------------------------------------------------------ tests: derivation

fn case<'c>(cases: &'c [Case], identity: &str, action: Action, name: &str) -> &'c Case {
    cases
        .iter()
        .find(|c| c.identity == identity && c.action == action && c.name == name)
        .unwrap_or_else(|| panic!("no case {identity} {action:?} {name:?}"))
}

#[test]
fn the_backend_policy_expands_into_allowed_topics_and_near_misses() {
    let cases = derive_cases(real_template()).unwrap();
    let allowed = |a: Action, n: &str| case(&cases, BACKEND_IDENTITY, a, n).allowed;
    // Inside PublishDownlink's topic/room/*.
    assert!(allowed(Action::Publish, "room/message/r1"));
    assert!(allowed(Action::Publish, "room/p2p/GID_student@@@001"));
    assert!(allowed(Action::Publish, "room/"));
    // Near misses: the parent alone, a longer parent, another case, the uplink parent, `$`.
    for name in [
        "room",
        "roomX/message/r1",
        "Room/message/r1",
        "roomSend/message/r1",
        "$classroom/uplink",
        "elsewhere/message/r1",
    ] {
        assert!(!allowed(Action::Publish, name), "{name}");
    }
    // ConnectAsBackend's client/backend-*, and nothing received under any policy.
    assert!(allowed(Action::Connect, "backend-inflow-0"));
    assert!(!allowed(Action::Connect, "backend"));
    assert!(!allowed(Action::Connect, "Backend-inflow-1"));
    assert!(!allowed(Action::Receive, "room/message/r1"));
    // An identity with no policy gets nothing.
    assert!(
        cases
            .iter()
            .filter(|c| c.identity == UNKNOWN_IDENTITY)
            .all(|c| !c.allowed)
    );
}

#[test]
fn iot_policy_wildcards_cross_levels_and_a_deny_wins() {
    assert!(iot_matches("room/*", "room/message/r1"));
    assert!(iot_matches("room/*", "room/"));
    assert!(!iot_matches("room/*", "room"));
    assert!(iot_matches("backend-?", "backend-1"));
    assert!(!iot_matches("backend-?", "backend-12"));
    let stmts = vec![
        Statement {
            allow: true,
            actions: vec![Action::Publish],
            resources: vec![("topic".into(), "room/*".into())],
        },
        Statement {
            allow: false,
            actions: vec![Action::Publish],
            resources: vec![("topic".into(), "room/system".into())],
        },
    ];
    assert!(policy_allows(&stmts, Action::Publish, "room/message/r1"));
    assert!(!policy_allows(&stmts, Action::Publish, "room/system"));
    assert!(!policy_allows(&stmts, Action::Receive, "room/message/r1"));
}

#[test]
fn a_mutated_backend_policy_changes_the_derived_verdicts() {
    let real = derive_cases(real_template()).unwrap();
    for (from, to, changed) in [
        // Narrower: only chat.
        (
            "topic/${DownlinkParent}/*",
            "topic/${DownlinkParent}/message/*",
            (Action::Publish, "room/p2p/GID_student@@@001"),
        ),
        // Wider: the parent without its slash.
        (
            "topic/${DownlinkParent}/*",
            "topic/${DownlinkParent}*",
            (Action::Publish, "room"),
        ),
        // An added action.
        (
            "Action: iot:Publish",
            "Action: [iot:Publish, iot:Receive]",
            (Action::Receive, "room/message/r1"),
        ),
    ] {
        let mutated = derive_cases(&mutated_template(from, to)).unwrap();
        let (action, name) = changed;
        assert_ne!(
            case(&real, BACKEND_IDENTITY, action, name).allowed,
            case(&mutated, BACKEND_IDENTITY, action, name).allowed,
            "{from} -> {to}"
        );
    }
    // A policy without a local identity stops the derivation.
    let extra = mutated_template(
        "  BackendPolicy:\n",
        "  DevicePolicy:\n    Type: AWS::IoT::Policy\n    Properties:\n      PolicyDocument:\n        \
         Version: '2012-10-17'\n        Statement:\n          - Effect: Allow\n            \
         Action: iot:Connect\n            Resource: '*'\n  BackendPolicy:\n",
    );
    let err = derive_cases(&extra).unwrap_err();
    assert!(err.contains("DevicePolicy"), "{err}");
}

#[test]
fn the_rules_match_the_plugins_builders_and_mutated_rules_do_not() {
    let t = real_template();
    assert_eq!(rule_parity(t, &builders_output(t)), Vec::<String>::new());
    for (from, to, says) in [
        (
            "clientid() AS clientId",
            "clientid() AS client_id",
            "fields",
        ),
        (", timestamp() AS timestamp", "", "fields"),
        (
            "FROM '${UplinkParent}/#'",
            "FROM '${UplinkParent}/+'",
            "FROM",
        ),
        (
            "FROM '$aws/events/presence/+/+'",
            "FROM '$aws/events/presence/connected/+'",
            "disconnected",
        ),
        (
            "FROM '$aws/events/presence/+/+'",
            "FROM '$aws/events/+/+'",
            "lifecycle",
        ),
    ] {
        let m = mutated_template(from, to);
        let v = rule_parity(&m, &builders_output(&m));
        assert!(
            v.iter().any(|s| s.contains(says)),
            "{from} -> {to} went unnoticed: {v:?}"
        );
    }
    // Another uplink parent in the template: the stack's literal plugin option no longer
    // matches (when stack.sh passes $UPLINK_PARENTS it follows the template by construction).
    let m = mutated_template("Default: roomSend", "Default: roomUp");
    let v = rule_parity(&m, &builders_output(&m));
    if stack_parents_from_template() {
        assert_eq!(v, Vec::<String>::new());
    } else {
        assert!(v.iter().any(|s| s.contains("FROM")), "{v:?}");
    }
}

#[test]
fn sql_and_filters_parse_as_iot_and_mqtt_read_them() {
    let sql = parse_sql(
        "SELECT encode(*, 'base64') AS payload, topic() AS topic FROM 'roomSend/#' WHERE 1 = 1",
    )
    .unwrap();
    assert_eq!(sql.from, "roomSend/#");
    assert_eq!(
        sql.select,
        vec![
            ("encode(*, 'base64')".to_owned(), "payload".to_owned()),
            ("topic()".to_owned(), "topic".to_owned())
        ]
    );
    assert!(mqtt_matches("roomSend/#", "roomSend"));
    assert!(mqtt_matches(
        "$aws/events/presence/+/+",
        "$aws/events/presence/connected/a"
    ));
    assert!(!mqtt_matches(
        "$aws/events/presence/+/+",
        "$aws/events/presence/connected"
    ));
    assert!(!mqtt_matches("#", "$classroom/uplink"));
}

// ------------------------------------------------------------------ tests: the real broker

#[tokio::test]
async fn every_policy_case_holds_on_the_local_broker() {
    let cases = derive_cases(real_template()).unwrap();
    let b = start_broker(None);
    let v = broker_mismatches(&b, &cases).await;
    assert!(
        v.is_empty(),
        "the template's IoT policies and the local broker disagree:\n{}\n{}",
        v.join("\n"),
        b.broker.log()
    );
}

#[tokio::test]
async fn a_mutated_policy_or_acl_fails_on_the_local_broker() {
    let b = start_broker(None);
    let narrower = derive_cases(&mutated_template(
        "topic/${DownlinkParent}/*",
        "topic/${DownlinkParent}/message/*",
    ))
    .unwrap();
    let v = broker_mismatches(&b, &narrower).await;
    assert!(
        v.iter().any(|s| s.contains("room/p2p/GID_student@@@001")),
        "{v:?}"
    );
    drop(b);

    let real = derive_cases(real_template()).unwrap();
    let acl = project_acl();
    for (from, to, says) in [
        // Narrower: chat only.
        (
            "topic write room/+/#",
            "topic write room/message/#",
            "room/system",
        ),
        // Wider: `room/#` also lets the backend publish on `room` itself.
        (
            "topic write room/+/#",
            "topic write room/#",
            "Publish \"room\" ",
        ),
        (
            "user backend\n",
            "user backend\ntopic write roomSend/#\n",
            "roomSend/",
        ),
        (
            "user backend\n",
            "user backend\ntopic write #\n",
            "elsewhere",
        ),
    ] {
        // Mutate the first line of the backend's block that starts with `from`.
        let at = acl
            .find(from)
            .unwrap_or_else(|| panic!("the ACL has no {from:?}"));
        let mutated = format!("{}{to}{}", &acl[..at], &acl[at + from.len()..]);
        let b = start_broker(Some(mutated));
        let v = broker_mismatches(&b, &real).await;
        assert!(v.iter().any(|s| s.contains(says)), "{from} -> {to}: {v:?}");
    }
}

#[tokio::test]
async fn the_plugins_records_and_events_are_what_the_rules_read() {
    let t = real_template();
    let b = start_broker(None);
    let uplink = rule_sql(t, "UplinkQueue").unwrap();
    let parent = uplink.from.trim_end_matches("/#").to_owned();
    // Topics the student may publish: inside the uplink rule's FROM and just outside it.
    let inside = [format!("{parent}/message"), format!("{parent}/command/x")];
    let outside = [format!("{parent}X/message"), "elsewhere/message".to_owned()];
    let all: Vec<String> = inside.iter().chain(&outside).cloned().collect();

    let mut backend = b
        .connect("backend-parity-watch", Auth::Certificate(BACKEND_IDENTITY))
        .await
        .unwrap();
    backend
        .subscribe(&["#", "$classroom/#", "$aws/events/presence/#"])
        .await;
    let token = b.token(STUDENT, &all);
    let mut student = b.connect(STUDENT, Auth::Token(&token)).await.unwrap();
    for topic in &all {
        assert_eq!(
            student.publish(topic, b"{\"msg\":1}").await,
            Ok(true),
            "{topic}"
        );
    }
    student.client.disconnect().await.unwrap();
    drop(student);
    // Everything up to the disconnected event, then a sentinel published after it: one
    // subscriber gets its messages in order, so nothing else is on its way after the sentinel.
    let mut got = backend.until("$aws/events/presence/disconnected/").await;
    let sentinel = "room/message/parity-sentinel";
    let mut sender = b
        .connect("backend-parity-send", Auth::Certificate(BACKEND_IDENTITY))
        .await
        .unwrap();
    assert_eq!(sender.publish(sentinel, b"").await, Ok(true));
    got.extend(backend.until(sentinel).await);
    let topics: Vec<String> = got
        .iter()
        .map(|p| String::from_utf8_lossy(&p.topic).into_owned())
        .collect();

    // §5: the records, their fields and which publishes became one.
    let uplink_topic = stack_plugin_options()
        .get("uplink_topic")
        .cloned()
        .unwrap_or_else(|| "$classroom/uplink".into());
    let recs: Vec<Value> = got
        .iter()
        .filter(|p| p.topic == uplink_topic.as_bytes())
        .map(|p| serde_json::from_slice(&p.payload).unwrap())
        .collect();
    let recorded: BTreeSet<&str> = recs.iter().filter_map(|r| r["topic"].as_str()).collect();
    let under_from: BTreeSet<&str> = all
        .iter()
        .filter(|s| mqtt_matches(&uplink.from, s))
        .map(String::as_str)
        .collect();
    assert_eq!(recorded, under_from, "records: {recs:?}");
    for r in &recs {
        assert_eq!(r["clientId"], STUDENT);
    }
    let output = PluginOutput {
        record: recs[0].clone(),
        uplink_parents: stack_uplink_parents(t),
        lifecycle_topics: topics
            .iter()
            .filter(|s| s.starts_with("$aws/"))
            .cloned()
            .collect(),
    };
    assert!(output.lifecycle_topics.len() >= 2, "{topics:?}");
    assert_eq!(rule_parity(t, &output), Vec::<String>::new());

    // §4, deliveries: the backend receives exactly what a policy or LOCAL_ONLY_READS grants.
    let cases = derive_cases(t).unwrap();
    let stmts_allow = |topic: &str| {
        cases.iter().any(|c| {
            c.identity == BACKEND_IDENTITY
                && c.action == Action::Receive
                && c.name == topic
                && c.allowed
        })
    };
    let local_only = |topic: &str| LOCAL_ONLY_READS.iter().any(|(f, _)| mqtt_matches(f, topic));
    let published: BTreeSet<String> = all
        .iter()
        .cloned()
        .chain(topics.iter().cloned())
        .chain([sentinel.to_owned()])
        .collect();
    for topic in &published {
        let expected = stmts_allow(topic) || local_only(topic);
        let received = topics.contains(topic);
        assert_eq!(
            received,
            expected,
            "backend delivery of {topic:?}: expected {} (policy or LOCAL_ONLY_READS)",
            verdict(expected)
        );
    }
}
