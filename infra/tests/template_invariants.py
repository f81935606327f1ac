"""Invariants of infra/template.yaml that cfn-lint does not check.

Each ``check_*`` function takes the parsed template (plain dicts and lists, intrinsic
functions in their long form: ``{"Ref": ...}``, ``{"Fn::GetAtt": [...]}``, ``{"Fn::Sub": ...}``)
and returns a list of violations, one readable sentence each; an empty list means the rule
holds. ``violations`` runs them all. ``check_binaries_are_crates`` also needs the repository
root, so it is kept apart.

Parameters are judged at their worst allowed value, not only their default: a timeout
parameter counts with its ``MaxValue``, a ``maxReceiveCount`` parameter with its ``MinValue``.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any, Callable, Iterator

import cfnlint.decode

INFRA = Path(__file__).resolve().parents[1]
TEMPLATE = INFRA / "template.yaml"
REPO = INFRA.parent

FUNCTION = "AWS::Serverless::Function"
QUEUE = "AWS::SQS::Queue"
TABLE = "AWS::DynamoDB::Table"
TOPIC_RULE = "AWS::IoT::TopicRule"

MIN_RECEIVE_COUNT = 5
DLQ_RETENTION_SECONDS = 14 * 24 * 3600
VISIBILITY_FACTOR = 6
SQS_DEFAULT_VISIBILITY = 30
SAM_DEFAULT_TIMEOUT = 3

# §4.1, with the uplink parent in place of roomSend.
UPLINK_SQL = (
    "SELECT encode(*, 'base64') AS payload, topic() AS topic, clientid() AS clientId, "
    "timestamp() AS timestamp FROM '{parent}/#'"
)
PRESENCE_SQL = "SELECT * FROM '$aws/events/presence/+/+'"

# The environment contract the Rust functions read at cold start.
COMMON_ENV = {"RUST_LOG", "UPLINK_PARENTS", "DOWNLINK_PARENTS", "TOPIC_MAX_CHARS", "PAYLOAD_MAX_BYTES"}
# What every SQS-triggered function reads to dead-letter and back off by itself.
DEAD_LETTER_ENV = {"DEAD_LETTER_QUEUE_URL", "RETRY_BACKOFF_MAX_SECONDS", "MAX_RECEIVE_COUNT"}
FUNCTION_ENV = {
    "outflow": {"OUTFLOW_ROUTES", *DEAD_LETTER_ENV},
    "inflow": {"MQTT_URL", "MQTT_CLIENT_ID_PREFIX", "MQTT_SECRET_ID", "MQTT_PUBLISH_TIMEOUT_MS", *DEAD_LETTER_ENV},
    "presence": {"PRESENCE_TABLE", "ATTENDANCE_TABLE", "DOWNLINK_QUEUE_URL", *DEAD_LETTER_ENV},
    "moderation": {
        *DEAD_LETTER_ENV,
        "MUTE_TABLE",
        "MEMBERSHIP_TABLE",
        "PRESENCE_TABLE",
        "ENROLLMENT_TABLE",
        "CHAT_RATE_TABLE",
        "CHAT_RATE_LIMIT",
        "CHAT_RATE_WINDOW_SECS",
        "MAX_ROOMS_PER_CLIENT",
        "DOWNLINK_QUEUE_URL",
        "BANNED_WORDS",
        "MODERATION_MODE",
        "MAX_MESSAGE_CHARS",
        "TEACHER_GROUPS",
        "STUDENT_GROUPS",
    },
    "presence-query": {"PRESENCE_TABLE"},
    "presence-sweep": {"PRESENCE_TABLE", "ATTENDANCE_TABLE", "DOWNLINK_QUEUE_URL"},
    "token": {
        "TOKEN_TABLE",
        "ENROLLMENT_TABLE",
        "SIGNING_KEYS_SECRET_ID",
        "IOT_ARN_PREFIX",
        "TEACHER_GROUPS",
        "STUDENT_GROUPS",
    },
    "authorizer": {"SIGNING_KEYS_SECRET_ID", "TOKEN_TABLE", "IOT_ARN_PREFIX"},
}

# The key schemas the Rust store adapters rely on: (hash, range), and GSIs by name.
TABLE_KEYS = {
    "PresenceTable": (("clientId", "channelId"), {}),
    "AttendanceTable": (("clientId", "sessionId"), {}),
    "MembershipTable": (("roomId", "clientId"), {"byClient": ("clientId", "roomId")}),
    "MuteTable": (("roomId", "clientId"), {}),
    # Sign-in (design: token#<jti> and client#<clientId> items under one string key).
    "TokenTable": (("id", None), {}),
    "EnrollmentTable": (("clientId", "roomId"), {}),
    # Moderation's chat counters: one item per sender and rate window (shared/stores attrs).
    "ChatRateTable": (("clientId", "windowStart"), {}),
}
TABLE_TTL = {
    "MuteTable": "expiresAt",
    "PresenceTable": "expiresAt",
    "TokenTable": "expiresAt",
    "EnrollmentTable": "expiresAt",
    "ChatRateTable": "expiresAt",
}

# Actions AWS only grants on Resource "*" (none is used today; listed so that adding one is a
# deliberate act).
STAR_RESOURCE_ACTIONS = {"iot:DescribeEndpoint", "xray:PutTraceSegments", "xray:PutTelemetryRecords"}
# Parameters that name a resource the stack does not create but is meant to use.
EXTERNAL_RESOURCE_PARAMETERS = {"MqttSecretArn"}
# SAM policy templates that are scoped to the resource passed to them.
SCOPED_SAM_POLICY_TEMPLATES = {
    "SQSSendMessagePolicy",
    "SQSPollerPolicy",
    "DynamoDBCrudPolicy",
    "DynamoDBReadPolicy",
    "DynamoDBWritePolicy",
    "AWSSecretsManagerGetSecretValuePolicy",
}
IOT_RESOURCE = re.compile(
    r"^arn:\$\{AWS::Partition\}:iot:\$\{AWS::Region\}:\$\{AWS::AccountId\}:"
    r"(client|topic|topicfilter|thing)/(?P<rest>.+)$"
)

Template = dict[str, Any]
Check = Callable[[Template], list[str]]


# ------------------------------------------------------------------ loading and resolving


def load(path: Path = TEMPLATE) -> Template:
    """Parses a template with cfn-lint's own decoder, as plain dicts and lists."""
    template, matches = cfnlint.decode.decode(str(path))
    if matches or template is None:
        raise ValueError(f"{path} does not parse: {[str(m) for m in matches]}")
    return json.loads(json.dumps(template))


def resources(t: Template, kind: str | None = None) -> dict[str, dict]:
    """Logical ID -> resource, optionally only those of one type."""
    res = t.get("Resources", {})
    return {k: v for k, v in res.items() if kind is None or v.get("Type") == kind}


def props(resource: dict) -> dict:
    return resource.get("Properties") or {}


def target(value: Any) -> str | None:
    """The logical ID a ``Ref`` or ``Fn::GetAtt`` points to, else None."""
    if isinstance(value, dict):
        if "Ref" in value and isinstance(value["Ref"], str):
            return value["Ref"]
        if "Fn::GetAtt" in value:
            att = value["Fn::GetAtt"]
            if isinstance(att, list) and att:
                return att[0]
            if isinstance(att, str):
                return att.split(".", 1)[0]
    return None


def parameter(t: Template, name: str) -> dict | None:
    return t.get("Parameters", {}).get(name)


def number(t: Template, value: Any, worst: str) -> int | None:
    """A numeric property, literal or ``Ref`` to a parameter.

    ``worst`` is ``"max"`` or ``"min"``: a parameter counts with its MaxValue / MinValue when
    it has one (the worst value a deployment may choose), else with its Default.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)
    name = target(value)
    p = parameter(t, name) if name else None
    if p is None:
        return None
    bound = p.get("MaxValue" if worst == "max" else "MinValue")
    if bound is not None:
        return int(bound)
    allowed = p.get("AllowedValues")
    if allowed:
        values = [int(v) for v in allowed]
        return max(values) if worst == "max" else min(values)
    return number(t, p.get("Default"), worst) if "Default" in p else None


def default(t: Template, name: str) -> Any:
    p = parameter(t, name) or {}
    return p.get("Default")


def sub_with_defaults(t: Template, value: Any) -> str | None:
    """Resolves a string or ``Fn::Sub`` with parameter defaults; other names stay ``${X}``."""
    if isinstance(value, str):
        return value
    if not (isinstance(value, dict) and "Fn::Sub" in value):
        return None
    body = value["Fn::Sub"]
    extra: dict[str, Any] = {}
    if isinstance(body, list):
        body, extra = body[0], body[1] if len(body) > 1 else {}

    def repl(m: re.Match) -> str:
        name = m.group(1)
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        if name in extra and isinstance(extra[name], str):
            return extra[name]
        d = default(t, name)
        return str(d) if d is not None else m.group(0)

    return re.sub(r"\$\{([^}]+)\}", repl, body)


def sub_names(value: Any) -> set[str]:
    """Names referenced by a ``Fn::Sub`` (``${X}`` or ``${X.Attr}``), without pseudo-parameters."""
    if not (isinstance(value, dict) and "Fn::Sub" in value):
        return set()
    body = value["Fn::Sub"]
    if isinstance(body, list):
        body = body[0]
    names = {m.split(".", 1)[0] for m in re.findall(r"\$\{([^}!][^}]*)\}", body)}
    return {n for n in names if not n.startswith("AWS::")}


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for k, v in over.items():
            merged[k] = _merge(base[k], v) if k in base else v
        return merged
    return over


def function_properties(t: Template, resource: dict) -> dict:
    """A function's properties with ``Globals.Function`` merged in, as SAM does for maps."""
    glob = t.get("Globals", {}).get("Function", {})
    return _merge(glob, props(resource))


def sqs_events(t: Template) -> Iterator[tuple[str, str, dict, dict]]:
    """(function ID, event name, event properties, merged function properties) of every SQS event."""
    for fid, fn in resources(t, FUNCTION).items():
        fprops = function_properties(t, fn)
        for name, event in (fprops.get("Events") or {}).items():
            if event.get("Type") == "SQS":
                yield fid, name, event.get("Properties") or {}, fprops


def binary(fn: dict) -> str | None:
    return ((fn.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary")


def dead_letter_targets(t: Template) -> dict[str, str]:
    """Source queue ID -> the logical ID its RedrivePolicy points to."""
    out = {}
    for qid, q in resources(t, QUEUE).items():
        redrive = props(q).get("RedrivePolicy")
        if isinstance(redrive, dict):
            out[qid] = target(redrive.get("deadLetterTargetArn")) or "?"
    return out


# ------------------------------------------------------------------ checks


def check_queues_have_dlqs(t: Template) -> list[str]:
    """Every source queue has its own DLQ with maxReceiveCount >= 5; DLQs keep 14 days (§6)."""
    out = []
    queues = resources(t, QUEUE)
    redrives = dead_letter_targets(t)
    dlqs = set(redrives.values())
    # Terminal queues like the DLQs: nothing consumes them, so nothing redelivers from them.
    error_queues = rule_error_queues(t) - dlqs
    for qid, q in queues.items():
        if qid in dlqs or qid in error_queues:
            continue
        redrive = props(q).get("RedrivePolicy")
        if not isinstance(redrive, dict):
            out.append(f"queue {qid} has no dead-letter queue (RedrivePolicy)")
            continue
        dlq = redrives[qid]
        if dlq not in queues:
            out.append(f"queue {qid}: dead-letter target {dlq} is not a queue of this template")
        elif dlq == qid:
            out.append(f"queue {qid} is its own dead-letter queue")
        count = number(t, redrive.get("maxReceiveCount"), "min")
        if count is None or count < MIN_RECEIVE_COUNT:
            out.append(
                f"queue {qid}: maxReceiveCount can be {count}, below {MIN_RECEIVE_COUNT} "
                "(a literal or a parameter whose MinValue/Default is too low)"
            )
    seen: dict[str, str] = {}
    for qid, dlq in sorted(redrives.items()):
        if dlq in seen:
            out.append(f"queues {seen[dlq]} and {qid} share the dead-letter queue {dlq}; each needs its own")
        seen.setdefault(dlq, qid)
    for dlq in sorted((dlqs | error_queues) & set(queues)):
        retention = number(t, props(queues[dlq]).get("MessageRetentionPeriod"), "min")
        if retention != DLQ_RETENTION_SECONDS:
            out.append(f"dead-letter queue {dlq} keeps messages {retention} s, not 14 days ({DLQ_RETENTION_SECONDS})")
    return out


def rule_error_queues(t: Template) -> set[str]:
    """The queues the IoT topic rules' error actions write to."""
    return {
        target(((props(r).get("TopicRulePayload") or {}).get("ErrorAction") or {}).get("Sqs", {}).get("QueueUrl"))
        for r in resources(t, TOPIC_RULE).values()
    } - {None}


def check_queue_encryption(t: Template) -> list[str]:
    """Every queue is encrypted at rest."""
    return [
        f"queue {qid} is not encrypted (SqsManagedSseEnabled: true or KmsMasterKeyId)"
        for qid, q in resources(t, QUEUE).items()
        if props(q).get("SqsManagedSseEnabled") is not True and "KmsMasterKeyId" not in props(q)
    ]


def check_visibility_timeouts(t: Template) -> list[str]:
    """Source visibility timeout >= 6 x the consumer's timeout + its batching window (§6)."""
    out = []
    queues = resources(t, QUEUE)
    for fid, name, ev, fprops in sqs_events(t):
        qid = target(ev.get("Queue"))
        if qid not in queues:
            out.append(f"{fid}.{name}: event source {ev.get('Queue')!r} is not a queue of this template")
            continue
        timeout = number(t, fprops.get("Timeout", SAM_DEFAULT_TIMEOUT), "max")
        window = number(t, ev.get("MaximumBatchingWindowInSeconds", 0), "max")
        visibility = number(t, props(queues[qid]).get("VisibilityTimeout", SQS_DEFAULT_VISIBILITY), "min")
        if timeout is None or window is None or visibility is None:
            out.append(f"{fid}.{name}: cannot resolve timeout {timeout}, window {window} or visibility {visibility}")
            continue
        needed = VISIBILITY_FACTOR * timeout + window
        if visibility < needed:
            out.append(
                f"queue {qid}: visibility timeout {visibility} s is under {VISIBILITY_FACTOR} x "
                f"{fid} timeout {timeout} s + batching window {window} s = {needed} s"
            )
    return out


def check_sqs_event_sources(t: Template) -> list[str]:
    """Every SQS event source reports partial batch failures and takes its batch from parameters."""
    out = []
    for fid, name, ev, _ in sqs_events(t):
        if "ReportBatchItemFailures" not in (ev.get("FunctionResponseTypes") or []):
            out.append(f"{fid}.{name}: SQS event source lacks FunctionResponseTypes: [ReportBatchItemFailures]")
        for key in ("BatchSize", "MaximumBatchingWindowInSeconds"):
            if key not in ev:
                out.append(f"{fid}.{name}: SQS event source does not set {key}")
    for mid, m in resources(t, "AWS::Lambda::EventSourceMapping").items():
        if "ReportBatchItemFailures" not in (props(m).get("FunctionResponseTypes") or []):
            out.append(f"event source mapping {mid} lacks ReportBatchItemFailures")
    return out


def check_functions_build(t: Template) -> list[str]:
    """Every function is a cargo-lambda Rust binary on provided.al2023 (§7, STYLE layout)."""
    out = []
    arch = parameter(t, "Architecture") or {}
    if sorted(arch.get("AllowedValues") or []) != ["arm64", "x86_64"]:
        out.append("parameter Architecture must allow exactly arm64 and x86_64")
    for fid, fn in resources(t, FUNCTION).items():
        p = function_properties(t, fn)
        meta = fn.get("Metadata") or {}
        if p.get("Runtime") != "provided.al2023":
            out.append(f"{fid}: Runtime is {p.get('Runtime')!r}, not provided.al2023")
        if p.get("Handler") != "bootstrap":
            out.append(f"{fid}: Handler is {p.get('Handler')!r}, not bootstrap")
        if p.get("Architectures") != [{"Ref": "Architecture"}]:
            out.append(f"{fid}: Architectures is not [!Ref Architecture]")
        if meta.get("BuildMethod") != "rust-cargolambda":
            out.append(f"{fid}: Metadata.BuildMethod is {meta.get('BuildMethod')!r}, not rust-cargolambda")
        if not binary(fn):
            out.append(f"{fid}: Metadata.BuildProperties.Binary is missing")
        if (p.get("LoggingConfig") or {}).get("LogFormat") != "JSON":
            out.append(f"{fid}: LoggingConfig.LogFormat is not JSON")
    names = [binary(fn) for fn in resources(t, FUNCTION).values() if binary(fn)]
    for b in sorted({n for n in names if names.count(n) > 1}):
        out.append(f"binary {b} is built by more than one function")
    return out


def check_environment(t: Template) -> list[str]:
    """Every function gets the environment its binary reads, and every reference resolves."""
    out = []
    known = set(t.get("Resources", {})) | set(t.get("Parameters", {}))
    for fid, fn in resources(t, FUNCTION).items():
        env = (function_properties(t, fn).get("Environment") or {}).get("Variables") or {}
        wanted = COMMON_ENV | FUNCTION_ENV.get(binary(fn) or "", set())
        for name in sorted(wanted - set(env)):
            out.append(f"{fid}: environment variable {name} is missing")
        for name, value in env.items():
            for ref in _references(value):
                if ref not in known and not ref.startswith("AWS::"):
                    out.append(f"{fid}: {name} refers to {ref}, which the template does not declare")
    return out


def _references(value: Any) -> Iterator[str]:
    """Every logical ID or parameter a value refers to (Ref, GetAtt, Sub), in any nesting."""
    if isinstance(value, dict):
        ref = target(value)
        if ref:
            yield ref
        yield from sub_names(value)
        for v in value.values():
            yield from _references(v)
    elif isinstance(value, list):
        for v in value:
            yield from _references(v)


def check_parents_differ(t: Template) -> list[str]:
    """Uplink and downlink parents differ by default and the Rules section refuses equality (§2)."""
    out = []
    up, down = default(t, "UplinkParent"), default(t, "DownlinkParent")
    if up is None or down is None:
        out.append("parameters UplinkParent and DownlinkParent must both have defaults")
    elif up == down:
        out.append(f"UplinkParent and DownlinkParent both default to {up!r}: the backend would consume its own output")
    guard = {"Fn::Not": [{"Fn::Equals": [{"Ref": "UplinkParent"}, {"Ref": "DownlinkParent"}]}]}
    guard_rev = {"Fn::Not": [{"Fn::Equals": [{"Ref": "DownlinkParent"}, {"Ref": "UplinkParent"}]}]}
    asserts = [a.get("Assert") for r in (t.get("Rules") or {}).values() for a in r.get("Assertions", [])]
    if guard not in asserts and guard_rev not in asserts:
        out.append("no Rules assertion refuses UplinkParent == DownlinkParent at deployment")
    return out


def check_iot_rules(t: Template) -> list[str]:
    """The uplink rule has exactly the SQL of §4.1, the presence rule the lifecycle SQL; both
    write to a consumed queue, with an error action into a queue that nothing consumes and that
    is no function's DLQ (IoT's failure reports are neither records nor events: in a DLQ they
    would be replayed into a function that cannot read them)."""
    out = []
    rules = resources(t, TOPIC_RULE)
    consumed = {target(ev.get("Queue")) for _, _, ev, _ in sqs_events(t)}
    redrives = dead_letter_targets(t)
    wanted = {
        UPLINK_SQL.format(parent=default(t, "UplinkParent")): "uplink",
        PRESENCE_SQL: "presence",
    }
    found = set()
    for rid, rule in rules.items():
        payload = props(rule).get("TopicRulePayload") or {}
        sql = sub_with_defaults(t, payload.get("Sql"))
        if sql in wanted:
            found.add(wanted[sql])
        else:
            out.append(f"topic rule {rid}: SQL {sql!r} is neither the uplink rule of §4.1 nor the presence rule")
        if payload.get("AwsIotSqlVersion") != "2016-03-23":
            out.append(f"topic rule {rid}: AwsIotSqlVersion is not '2016-03-23'")
        actions = payload.get("Actions") or []
        queues = []
        for action in actions:
            sqs = action.get("Sqs")
            if not sqs:
                out.append(f"topic rule {rid}: an action other than Sqs")
                continue
            if sqs.get("UseBase64") is not False:
                out.append(f"topic rule {rid}: Sqs action must set UseBase64: false (the body is JSON)")
            queues.append(target(sqs.get("QueueUrl")))
        if not queues:
            out.append(f"topic rule {rid}: no Sqs action")
        for q in queues:
            if q not in consumed:
                out.append(f"topic rule {rid}: writes to {q}, which no function consumes")
        err = (payload.get("ErrorAction") or {}).get("Sqs")
        if not err:
            out.append(f"topic rule {rid}: no Sqs ErrorAction")
        else:
            eq = target(err.get("QueueUrl"))
            if eq not in resources(t, QUEUE):
                out.append(f"topic rule {rid}: ErrorAction writes to {eq}, not a queue of this template")
            elif eq in consumed or eq in queues:
                out.append(f"topic rule {rid}: ErrorAction writes to {eq}, which a function consumes")
            elif eq in set(redrives.values()):
                out.append(f"topic rule {rid}: ErrorAction writes to the DLQ {eq}; failure reports need their own queue")
    for name in sorted({"uplink", "presence"} - found):
        out.append(f"no {name} topic rule")
    return out


def check_tables(t: Template) -> list[str]:
    """The tables the Rust adapters use exist with their keys, on-demand, encrypted, with PITR."""
    out = []
    tables = resources(t, TABLE)
    for tid, ((hash_key, range_key), gsis) in TABLE_KEYS.items():
        if tid not in tables:
            out.append(f"table {tid} is missing")
            continue
        p = props(tables[tid])
        if _keys(p.get("KeySchema")) != (hash_key, range_key):
            wanted = f"HASH {hash_key}" + (f" RANGE {range_key}" if range_key else " (no RANGE)")
            out.append(f"table {tid}: key schema is not {wanted}")
        types = {d.get("AttributeName"): d.get("AttributeType") for d in p.get("AttributeDefinitions") or []}
        for key in (hash_key, range_key):
            if key and types.get(key) != "S":
                out.append(f"table {tid}: key attribute {key} is not a string (AttributeType S)")
        have = {g.get("IndexName"): g for g in p.get("GlobalSecondaryIndexes") or []}
        for name, keys in gsis.items():
            g = have.get(name)
            if g is None:
                out.append(f"table {tid}: GSI {name} is missing")
            elif _keys(g.get("KeySchema")) != keys or (g.get("Projection") or {}).get("ProjectionType") != "ALL":
                out.append(f"table {tid}: GSI {name} is not HASH {keys[0]} RANGE {keys[1]} projecting ALL")
        ttl = TABLE_TTL.get(tid)
        spec = p.get("TimeToLiveSpecification") or {}
        if ttl and (spec.get("AttributeName") != ttl or spec.get("Enabled") is not True):
            out.append(f"table {tid}: TTL on {ttl} is not enabled")
    for tid, table in tables.items():
        p = props(table)
        if p.get("BillingMode") != "PAY_PER_REQUEST":
            out.append(f"table {tid} is not on-demand (BillingMode: PAY_PER_REQUEST)")
        if (p.get("SSESpecification") or {}).get("SSEEnabled") is not True:
            out.append(f"table {tid}: SSESpecification.SSEEnabled is not true")
        if (p.get("PointInTimeRecoverySpecification") or {}).get("PointInTimeRecoveryEnabled") is not True:
            out.append(f"table {tid}: point-in-time recovery is off")
    return out


def _keys(schema: Any) -> tuple[str | None, str | None]:
    by_type = {k.get("KeyType"): k.get("AttributeName") for k in schema or []}
    return by_type.get("HASH"), by_type.get("RANGE")


def check_outputs(t: Template) -> list[str]:
    """Every queue, table, secret and IoT authorizer is an output, and so are the HTTP APIs'
    URLs and the browsers' WSS URL."""
    outputs = t.get("Outputs") or {}
    exported = {r for o in outputs.values() for r in _references(o.get("Value"))}
    out = [
        f"{kind} {rid} has no output"
        for kind, rtype in (("queue", QUEUE), ("table", TABLE))
        for rid in resources(t, rtype)
        if rid not in exported
    ]
    for api in resources(t, "AWS::Serverless::HttpApi"):
        if api not in exported:
            out.append(f"HTTP API {api} has no output with its URL")
    for kind, rtype in (("secret", "AWS::SecretsManager::Secret"), ("IoT authorizer", "AWS::IoT::Authorizer")):
        for rid in resources(t, rtype):
            if rid not in exported:
                out.append(f"{kind} {rid} has no output")
    wss = [
        o for o in outputs.values()
        if "wss://" in json.dumps(o.get("Value")) and "x-amz-customauthorizer-name" in json.dumps(o.get("Value"))
    ]
    if resources(t, "AWS::IoT::Authorizer") and not wss:
        out.append("no output gives browsers the WSS URL wss://<endpoint>/mqtt?x-amz-customauthorizer-name=<name>")
    return out


# ------------------------------------------------------------------ least privilege


def _statements(doc: Any) -> list[dict]:
    if not isinstance(doc, dict):
        return []
    st = doc.get("Statement", [])
    return st if isinstance(st, list) else [st]


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def policy_documents(t: Template) -> Iterator[tuple[str, str, dict]]:
    """(where, kind 'iam'|'iot'|'resource', document) of every policy document in the template."""
    for rid, r in resources(t).items():
        kind, p = r.get("Type"), props(r)
        if kind == "AWS::IAM::Role":
            for i, pol in enumerate(p.get("Policies") or []):
                yield f"{rid}.Policies[{i}]", "iam", pol.get("PolicyDocument")
        elif kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            yield rid, "iam", p.get("PolicyDocument")
        elif kind in ("AWS::SQS::QueuePolicy", "AWS::SecretsManager::ResourcePolicy"):
            yield rid, "resource", p.get("PolicyDocument")
        elif kind == "AWS::IoT::Policy":
            yield rid, "iot", p.get("PolicyDocument")
        elif kind == FUNCTION:
            for i, pol in enumerate(_as_list(p.get("Policies") or [])):
                if isinstance(pol, dict) and "Statement" in pol:
                    yield f"{rid}.Policies[{i}]", "iam", pol


def check_least_privilege(t: Template) -> list[str]:
    """No ``*`` actions, no ``*`` resources (bar the few AWS requires), no resource beyond
    what the stack owns, no managed policies, no implicit SAM grants."""
    out = []
    owned = set(t.get("Resources", {}))
    for where, kind, doc in policy_documents(t):
        for i, st in enumerate(_statements(doc)):
            if st.get("Effect") != "Allow":
                continue
            here = f"{where} statement {st.get('Sid') or i}"
            for key in ("NotAction", "NotResource"):
                if key in st:
                    out.append(f"{here}: {key} grants everything else")
            actions = [a for a in _as_list(st.get("Action", [])) if isinstance(a, str)]
            for a in actions:
                if "*" in a:
                    out.append(f"{here}: Action {a!r} is a wildcard")
            principal = st.get("Principal")
            if principal == "*" or (isinstance(principal, dict) and "*" in _as_list(principal.get("AWS"))):
                out.append(f"{here}: Principal '*' allows anyone")
            for res in _as_list(st.get("Resource", [])):
                out.extend(f"{here}: {v}" for v in _resource_violations(t, kind, res, actions, owned))
    for rid, r in resources(t).items():
        if r.get("Type") == "AWS::IAM::Role" and props(r).get("ManagedPolicyArns"):
            out.append(f"{rid}: managed policies are not scoped to this stack's resources")
    for fid, fn in resources(t, FUNCTION).items():
        p = props(fn)
        for pol in _as_list(p.get("Policies") or []):
            if isinstance(pol, str) or (isinstance(pol, dict) and target(pol)):
                out.append(f"{fid}: managed policy {pol!r} is not scoped to this stack's resources")
            elif isinstance(pol, dict) and "Statement" not in pol:
                for name, args in pol.items():
                    if name not in SCOPED_SAM_POLICY_TEMPLATES:
                        out.append(f"{fid}: SAM policy template {name} is not known to be resource-scoped")
                    for arg in (args or {}).values() if isinstance(args, dict) else []:
                        refs = set(_references(arg))
                        if not refs or not refs <= owned | EXTERNAL_RESOURCE_PARAMETERS:
                            out.append(f"{fid}: {name} is scoped to {arg!r}, not to a resource of this stack")
        if "Role" not in p and any(ev.get("Type") == "SQS" for ev in (p.get("Events") or {}).values()):
            out.append(
                f"{fid}: SQS event without an explicit Role: SAM then attaches "
                "AWSLambdaSQSQueueExecutionRole, which may read every queue of the account"
            )
    return out


def _resource_violations(t: Template, kind: str, res: Any, actions: list[str], owned: set[str]) -> list[str]:
    if isinstance(res, dict) and "Fn::If" in res:
        branches = res["Fn::If"][1:]
        return [v for b in branches for v in _resource_violations(t, kind, b, actions, owned)]
    if res == "*":
        if actions and set(actions) <= STAR_RESOURCE_ACTIONS:
            return []
        return [f"Resource '*' for {actions}"]
    if kind == "iot":
        text = res.get("Fn::Sub") if isinstance(res, dict) else res
        m = IOT_RESOURCE.match(text) if isinstance(text, str) else None
        if not m:
            return [f"IoT resource {res!r} is not an ARN of this account and region"]
        if m.group("rest").startswith("*"):
            return [f"IoT resource {text!r} covers every client or topic"]
        return []
    ref = target(res)
    if ref:
        if ref in owned or ref in EXTERNAL_RESOURCE_PARAMETERS:
            return []
        return [f"Resource {res!r} is not a resource of this stack"]
    names = sub_names(res)
    if names & owned:
        return []
    return [f"Resource {res!r} is not a resource of this stack"]


# ------------------------------------------------------------------ sign-in (§8)

AUTHORIZER = "AWS::IoT::Authorizer"
PERMISSION = "AWS::Lambda::Permission"
SECRET = "AWS::SecretsManager::Secret"
IOT_POLICY = "AWS::IoT::Policy"
HTTP_API = "AWS::Serverless::HttpApi"
# IoT Core waits at most 5 s for a custom authorizer's answer.
AUTHORIZER_TIMEOUT_MAX = 5
# The issuer's routes (design doc), each IAM-authorized.
TOKEN_ROUTES = {
    ("POST", "/tokens"),
    ("POST", "/tokens/classroom"),
    ("GET", "/tokens/{tokenId}"),
    ("POST", "/tokens/query"),
    ("POST", "/tokens/{tokenId}/revoke"),
    ("POST", "/clients/{clientId}/revoke"),
}
# Exactly what the sign-in roles may do: (action, resource) with the resource as the logical
# ID it points to. Anything more, or less, is a violation.
ROLE_GRANTS = {
    "AuthorizerRole": {
        ("logs:CreateLogStream", "AuthorizerLogGroup"),
        ("logs:PutLogEvents", "AuthorizerLogGroup"),
        ("secretsmanager:GetSecretValue", "SigningKeysSecret"),
        ("dynamodb:BatchGetItem", "TokenTable"),
    },
    "TokenRole": {
        ("logs:CreateLogStream", "TokenLogGroup"),
        ("logs:PutLogEvents", "TokenLogGroup"),
        ("secretsmanager:GetSecretValue", "SigningKeysSecret"),
        ("dynamodb:GetItem", "TokenTable"),
        ("dynamodb:BatchGetItem", "TokenTable"),
        ("dynamodb:PutItem", "TokenTable"),
        ("dynamodb:UpdateItem", "TokenTable"),
        ("dynamodb:Query", "EnrollmentTable"),
        ("dynamodb:BatchWriteItem", "EnrollmentTable"),
    },
}
# Who may touch the sign-in resources at all (any action), and what the others may do.
RESOURCE_USERS = {
    "SigningKeysSecret": {"AuthorizerRole", "TokenRole"},
    "TokenTable": {"AuthorizerRole", "TokenRole"},
    "EnrollmentTable": {"TokenRole", "ModerationRole"},
}
# Moderation reads enrollments (with the mute item, one BatchGetItem per chat); never writes.
READ_ONLY_GRANTS = {("ModerationRole", "EnrollmentTable"): {"dynamodb:GetItem", "dynamodb:BatchGetItem"}}


def role_grants(t: Template, rid: str) -> set[tuple[str, str]]:
    """(action, resource) of every Allow in a role's inline policies; the resource is the
    logical ID a Ref/GetAtt points to, ``X/rest`` for ``!Sub '${X.Arn}/rest'``, else the text."""
    out = set()
    role = resources(t).get(rid) or {}
    for pol in props(role).get("Policies") or []:
        for st in _statements(pol.get("PolicyDocument")):
            if st.get("Effect") != "Allow":
                continue
            for action in _as_list(st.get("Action", [])):
                for res in _as_list(st.get("Resource", [])):
                    out.add((action, _resource_key(res)))
    return out


def _resource_key(res: Any) -> str:
    ref = target(res)
    if ref:
        return ref
    if isinstance(res, dict) and "Fn::Sub" in res and isinstance(res["Fn::Sub"], str):
        return re.sub(r"\$\{([^}.!]+)(\.[^}]+)?\}", r"\1", res["Fn::Sub"])
    return json.dumps(res) if not isinstance(res, str) else res


def _function_by_binary(t: Template, name: str) -> tuple[str | None, dict]:
    for fid, fn in resources(t, FUNCTION).items():
        if binary(fn) == name:
            return fid, fn
    return None, {}


def check_authorizer(t: Template) -> list[str]:
    """The IoT custom authorizer verifies our token itself (signing disabled), is active, calls
    the `authorizer` binary within IoT's 5 s, and only IoT, for this authorizer in this
    account, may invoke that function."""
    out = []
    authorizers = resources(t, AUTHORIZER)
    fid, fn = _function_by_binary(t, "authorizer")
    if not authorizers:
        out.append("no AWS::IoT::Authorizer: classroom clients could not sign in with a token")
    if fid is None:
        out.append("no function builds the authorizer binary")
    for aid, a in authorizers.items():
        p = props(a)
        if p.get("SigningDisabled") is not True:
            out.append(f"authorizer {aid}: SigningDisabled is not true (the MQTT password carries no IoT token signature)")
        if p.get("Status") != "ACTIVE":
            out.append(f"authorizer {aid}: Status is {p.get('Status')!r}, not ACTIVE")
        if p.get("EnableCachingForHttp") not in (None, False):
            out.append(f"authorizer {aid}: EnableCachingForHttp would reuse a verdict past a revocation")
        arn = p.get("AuthorizerFunctionArn")
        if not (isinstance(arn, dict) and "Fn::GetAtt" in arn and target(arn) == fid and fid is not None):
            out.append(f"authorizer {aid}: AuthorizerFunctionArn {arn!r} is not !GetAtt {fid}.Arn")
    if fid is not None:
        timeout = number(t, function_properties(t, fn).get("Timeout", SAM_DEFAULT_TIMEOUT), "max")
        if timeout is None or timeout > AUTHORIZER_TIMEOUT_MAX:
            out.append(f"{fid}: timeout {timeout} s is over IoT's {AUTHORIZER_TIMEOUT_MAX} s authorizer limit")
        if (function_properties(t, fn).get("Events") or {}):
            out.append(f"{fid}: has event sources; only IoT Core may invoke the authorizer")
    permissions = {
        pid: props(p)
        for pid, p in resources(t, PERMISSION).items()
        if target(props(p).get("FunctionName")) == fid and fid is not None
    }
    for aid in authorizers:
        good = [
            pid
            for pid, p in permissions.items()
            if p.get("Action") == "lambda:InvokeFunction"
            and p.get("Principal") == "iot.amazonaws.com"
            and isinstance(p.get("SourceArn"), dict)
            and "Fn::GetAtt" in p["SourceArn"]
            and target(p["SourceArn"]) == aid
            and p.get("SourceAccount") == {"Ref": "AWS::AccountId"}
        ]
        if not good:
            out.append(
                f"authorizer {aid}: no AWS::Lambda::Permission lets iot.amazonaws.com invoke {fid} "
                f"with SourceArn !GetAtt {aid}.Arn and SourceAccount !Ref AWS::AccountId"
            )
    for pid, p in permissions.items():
        if p.get("Principal") != "iot.amazonaws.com" or target(p.get("SourceArn")) not in authorizers:
            out.append(f"permission {pid}: lets {p.get('Principal')!r} invoke {fid} beyond the IoT authorizer")
    return out


def check_http_routes(t: Template) -> list[str]:
    """Every HTTP route is IAM-authorized, on an API of this template; the issuer serves
    exactly the token routes."""
    out = []
    apis = resources(t, HTTP_API)
    for aid, api in apis.items():
        auth = props(api).get("Auth") or {}
        if auth.get("DefaultAuthorizer") != "AWS_IAM" or auth.get("EnableIamAuthorizer") is not True:
            out.append(f"HTTP API {aid}: routes are not AWS_IAM-authorized by default")
    routes: dict[str, set[tuple[str, str]]] = {}
    for fid, fn in resources(t, FUNCTION).items():
        for name, ev in (function_properties(t, fn).get("Events") or {}).items():
            if ev.get("Type") != "HttpApi":
                continue
            ep = ev.get("Properties") or {}
            api = target(ep.get("ApiId"))
            if api not in apis:
                out.append(f"{fid}.{name}: route is not on an HTTP API of this template (SAM would create an open one)")
            authorizer = (ep.get("Auth") or {}).get("Authorizer")
            if authorizer not in (None, "AWS_IAM"):
                out.append(f"{fid}.{name}: route overrides the IAM authorization with {authorizer!r}")
            routes.setdefault(binary(fn) or fid, set()).add((str(ep.get("Method", "")).upper(), ep.get("Path")))
    token = routes.get("token", set())
    for method, path in sorted(TOKEN_ROUTES - token):
        out.append(f"the issuer lacks the route {method} {path}")
    for method, path in sorted(token - TOKEN_ROUTES):
        out.append(f"the issuer serves {method} {path}, which the design does not have")
    return out


def check_sign_in_grants(t: Template) -> list[str]:
    """The sign-in roles hold exactly their grants; the key secret and the sign-in tables are
    reachable only by the roles that need them, and moderation only reads enrollments."""
    out = []
    for rid, wanted in ROLE_GRANTS.items():
        if rid not in resources(t):
            out.append(f"role {rid} is missing")
            continue
        have = role_grants(t, rid)
        for action, res in sorted(have - wanted):
            out.append(f"role {rid}: {action} on {res} is more than it needs")
        for action, res in sorted(wanted - have):
            out.append(f"role {rid}: lacks {action} on {res}")
    for rid in resources(t, "AWS::IAM::Role"):
        have = role_grants(t, rid)
        for res, users in RESOURCE_USERS.items():
            actions = {a for a, r in have if r == res}
            if actions and rid not in users:
                out.append(f"role {rid}: may {sorted(actions)} on {res}, which only {sorted(users)} may use")
            allowed = READ_ONLY_GRANTS.get((rid, res))
            if allowed is not None:
                for a in sorted(actions - allowed):
                    out.append(f"role {rid}: {a} on {res}; it may only read it ({sorted(allowed)})")
                for a in sorted(allowed - actions):
                    out.append(f"role {rid}: lacks {a} on {res}")
    for fid, fn in resources(t, FUNCTION).items():
        env = (function_properties(t, fn).get("Environment") or {}).get("Variables") or {}
        secret = env.get("SIGNING_KEYS_SECRET_ID")
        if secret is not None and target(secret) != "SigningKeysSecret":
            out.append(f"{fid}: SIGNING_KEYS_SECRET_ID is {secret!r}, not !Ref SigningKeysSecret")
        prefix = env.get("IOT_ARN_PREFIX")
        if prefix is not None and prefix != {"Fn::Sub": "arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}"}:
            out.append(f"{fid}: IOT_ARN_PREFIX is {prefix!r}, not this account's and region's IoT ARN prefix")
    return out


# Moderation's flood control: the chat counters are moderation's alone, and it only
# increments them (one UpdateItem ADD per chat; nothing read, put or deleted).
MODERATION_TABLE_GRANTS = {("ModerationRole", "ChatRateTable"): {"dynamodb:UpdateItem"}}


def check_moderation_grants(t: Template) -> list[str]:
    """The chat-rate counters are reachable by the moderation role alone, with exactly the
    one action it needs, and the moderation function is told that table."""
    out = []
    for (owner, table), wanted in MODERATION_TABLE_GRANTS.items():
        for rid in resources(t, "AWS::IAM::Role"):
            actions = {a for a, r in role_grants(t, rid) if r == table}
            if rid != owner:
                if actions:
                    out.append(f"role {rid}: may {sorted(actions)} on {table}, which only {owner} may use")
                continue
            for a in sorted(actions - wanted):
                out.append(f"role {rid}: {a} on {table} is more than it needs ({sorted(wanted)})")
            for a in sorted(wanted - actions):
                out.append(f"role {rid}: lacks {a} on {table}")
    fid, fn = _function_by_binary(t, "moderation")
    if fid is not None:
        env = (function_properties(t, fn).get("Environment") or {}).get("Variables") or {}
        if "CHAT_RATE_TABLE" in env and target(env["CHAT_RATE_TABLE"]) != "ChatRateTable":
            out.append(f"{fid}: CHAT_RATE_TABLE is {env['CHAT_RATE_TABLE']!r}, not !Ref ChatRateTable")
    return out


def check_secrets_hold_no_keys(t: Template) -> list[str]:
    """No secret value in the template is a usable key set or credential: a key in this file
    would sign tokens for anyone who can read it. Placeholders are written after deployment."""
    out = []
    for sid, sec in resources(t, SECRET).items():
        p = props(sec)
        if "GenerateSecretString" in p:
            out.append(f"secret {sid}: GenerateSecretString cannot make a key set; write it after deployment")
        text = p.get("SecretString")
        if text is None:
            continue
        try:
            value = json.loads(text) if isinstance(text, str) else None
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, dict):
            out.append(f"secret {sid}: SecretString is not a JSON placeholder object")
            continue
        secret_keys = {"keys", "current", "password", "keyPem"} & set(value)
        if secret_keys:
            out.append(f"secret {sid}: SecretString holds {sorted(secret_keys)}: key material in the template")
    return out


def _iot_statements(t: Template) -> Iterator[tuple[str, dict, list[str], list[str]]]:
    """(policy ID, statement, actions, resources after ``...:<account>:``) of every IoT
    policy statement that allows something."""
    for pid, pol in resources(t, IOT_POLICY).items():
        for st in _statements(props(pol).get("PolicyDocument")):
            if st.get("Effect") != "Allow":
                continue
            actions = [a for a in _as_list(st.get("Action", [])) if isinstance(a, str)]
            res = []
            for r in _as_list(st.get("Resource", [])):
                text = sub_with_defaults(t, r) or ""
                res.append(text.split("${AWS::AccountId}:", 1)[-1])
            yield pid, st, actions, res


def check_no_classroom_certificate_policy(t: Template) -> list[str]:
    """Certificate policies are for the backend only: a classroom client's policy comes from the
    authorizer, from its token, naming its rooms. No IoT policy may let a client connect
    outside the backend's ``backend-`` client IDs, nor read every room (a ``*`` where a token
    names a room), which is what a certificate policy would have to grant."""
    out = []
    down = default(t, "DownlinkParent")
    prefix = default(t, "MqttClientIdPrefix") or ""
    if not str(prefix).startswith("backend-") or "backend-" not in str(
        (parameter(t, "MqttClientIdPrefix") or {}).get("AllowedPattern", "")
    ):
        out.append("parameter MqttClientIdPrefix must be held to backend-... by its AllowedPattern")
    room_wide = re.compile(rf"^(topic|topicfilter)/({re.escape(str(down))}/(message|status)/|{re.escape(str(down))}/|)\*")
    for pid, st, actions, res in _iot_statements(t):
        for a in actions:
            for r in res:
                if a == "iot:Connect" and not r.startswith("client/backend-"):
                    out.append(f"IoT policy {pid}: iot:Connect on {r!r}, not only the backend's client/backend-*")
                if a in ("iot:Subscribe", "iot:Receive") and (room_wide.match(r) or r.startswith("topic/*") or r.startswith("topicfilter/*")):
                    out.append(f"IoT policy {pid}: {a} on {r!r} reads every room, wider than any token")
    return out


# ------------------------------------------------------------------ dead-lettering by the functions

# The only action a consumer's role may have on its own DLQ: it sends a permanent failure
# there at once (with its classroom.failure attribute); reading, redriving and purging are
# the operator's (the classroom CLI), not the function's.
DEAD_LETTER_ACTIONS = {"sqs:SendMessage"}
# The retry backoff shortens a record's visibility; this also authorizes
# ChangeMessageVisibilityBatch, for which IAM has no action of its own.
BACKOFF_ACTION = "sqs:ChangeMessageVisibility"


def failure_queues(t: Template) -> set[str]:
    """The queues that hold failures: every redrive target and every IoT rule error queue."""
    return set(dead_letter_targets(t).values()) | rule_error_queues(t)


def _same_number(t: Template, a: Any, b: Any) -> bool:
    """Whether two numeric properties are the same number at every deployment: the same
    parameter, or equal literals (a literal and a parameter can be told apart by an override)."""
    ta, tb = target(a), target(b)
    if ta or tb:
        return ta == tb and ta is not None and parameter(t, ta) is not None
    na, nb = number(t, a, "min"), number(t, b, "min")
    return na is not None and na == nb


def check_dead_lettering(t: Template) -> list[str]:
    """Each SQS-triggered function dead-letters by itself into its source queue's DLQ (the
    redrive target, derived from the template): DEAD_LETTER_QUEUE_URL is !Ref that DLQ, its
    role may sqs:SendMessage there and nothing else, and on no other failure queue;
    RETRY_BACKOFF_MAX_SECONDS is the source queue's visibility timeout (the cap of the
    backoff), and the role may change visibility on the source queue."""
    out = []
    queues = resources(t, QUEUE)
    redrives = dead_letter_targets(t)
    failures = failure_queues(t)
    # Who may touch which failure queue: a consumer its own DLQ, the IoT rules' role the rule
    # error queues its error actions write to.
    allowed: dict[str, set[str]] = {q: set() for q in failures}
    for rule in resources(t, TOPIC_RULE).values():
        err = ((props(rule).get("TopicRulePayload") or {}).get("ErrorAction") or {}).get("Sqs") or {}
        eq, role = target(err.get("QueueUrl")), target(err.get("RoleArn"))
        if eq in allowed and role:
            allowed[eq].add(role)
    events: dict[str, list[str]] = {}
    for fid, name, ev, fprops in sqs_events(t):
        events.setdefault(fid, []).append(name)
        qid = target(ev.get("Queue"))
        if qid not in queues:
            continue  # check_visibility_timeouts reports it
        dlq = redrives.get(qid)
        if dlq not in queues:
            out.append(f"{fid}.{name}: source queue {qid} has no dead-letter queue to send permanent failures to")
            continue
        env = (fprops.get("Environment") or {}).get("Variables") or {}
        url = env.get("DEAD_LETTER_QUEUE_URL")
        if url is None:
            out.append(f"{fid}: lacks DEAD_LETTER_QUEUE_URL (!Ref {dlq}, the DLQ of its source queue {qid})")
        elif url != {"Ref": dlq}:
            out.append(f"{fid}: DEAD_LETTER_QUEUE_URL is {url!r}, not !Ref {dlq} (the DLQ of its source queue {qid})")
        cap = env.get("RETRY_BACKOFF_MAX_SECONDS")
        visibility = props(queues[qid]).get("VisibilityTimeout", SQS_DEFAULT_VISIBILITY)
        if cap is None:
            out.append(f"{fid}: lacks RETRY_BACKOFF_MAX_SECONDS (the VisibilityTimeout of {qid})")
        elif not _same_number(t, cap, visibility):
            out.append(
                f"{fid}: RETRY_BACKOFF_MAX_SECONDS is {cap!r}, not the VisibilityTimeout of {qid} ({visibility!r}); "
                "use the same parameter or the same literal for both"
            )
        receives = env.get("MAX_RECEIVE_COUNT")
        policy_max = (props(queues[qid]).get("RedrivePolicy") or {}).get("maxReceiveCount")
        if receives is None:
            out.append(f"{fid}: lacks MAX_RECEIVE_COUNT (the maxReceiveCount of {qid})")
        elif not _same_number(t, receives, policy_max):
            out.append(
                f"{fid}: MAX_RECEIVE_COUNT is {receives!r}, not the maxReceiveCount of {qid} ({policy_max!r}); "
                "use the same parameter or the same literal for both"
            )
        rid = target(fprops.get("Role"))
        if rid not in resources(t, "AWS::IAM::Role"):
            out.append(f"{fid}: no explicit role of this template to check its dead-letter grants")
            continue
        grants = role_grants(t, rid)
        on_dlq = {a for a, r in grants if r == dlq}
        for a in sorted(DEAD_LETTER_ACTIONS - on_dlq):
            out.append(f"role {rid}: lacks {a} on {dlq}, the DLQ {fid} sends permanent failures to")
        for a in sorted(on_dlq - DEAD_LETTER_ACTIONS):
            out.append(f"role {rid}: {a} on {dlq}; {fid} may only {sorted(DEAD_LETTER_ACTIONS)} there")
        if (BACKOFF_ACTION, qid) not in grants:
            out.append(f"role {rid}: lacks {BACKOFF_ACTION} on {qid}, which the retry backoff of {fid} needs")
        allowed[dlq].add(rid)
    for fid, names in sorted(events.items()):
        if len(names) > 1:
            out.append(f"{fid}: {len(names)} SQS event sources ({', '.join(names)}) but one DEAD_LETTER_QUEUE_URL")
    for rid in resources(t, "AWS::IAM::Role"):
        grants = role_grants(t, rid)
        for q in sorted(failures):
            actions = {a for a, r in grants if r == q}
            if actions and rid not in allowed[q]:
                out.append(
                    f"role {rid}: may {sorted(actions)} on {q}, a failure queue only {sorted(allowed[q]) or 'nobody'} may write to"
                )
    return out


# ------------------------------------------------------------------ alarms

ALARM = "AWS::CloudWatch::Alarm"
QUEUE_DEPTH_METRIC = "ApproximateNumberOfMessagesVisible"
FUNCTION_METRICS = ("Errors", "Throttles")
# Every alarm fires on the first occurrence (> 0 in one 60 s period); no data is OK.
ALARM_SHAPE = {"Period": 60, "EvaluationPeriods": 1, "Threshold": 0}
ALARM_TOPIC_PARAMETER = "AlarmTopicArn"
ALARM_TOPIC_CONDITION = "HasAlarmTopic"
ALARM_ACTIONS = {
    "Fn::If": [ALARM_TOPIC_CONDITION, [{"Ref": ALARM_TOPIC_PARAMETER}], {"Ref": "AWS::NoValue"}]
}


def _dimension(p: dict, name: str) -> list[Any]:
    """The values of an alarm's dimensions called ``name``."""
    return [d.get("Value") for d in p.get("Dimensions") or [] if isinstance(d, dict) and d.get("Name") == name]


def _alarm_shape(t: Template, aid: str, p: dict, statistic: str) -> list[str]:
    out = []
    if p.get("Statistic") != statistic:
        out.append(f"alarm {aid}: Statistic is {p.get('Statistic')!r}, not {statistic}")
    for key, wanted in ALARM_SHAPE.items():
        value = p.get(key)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if number(t, value, "min") != wanted:
            out.append(f"alarm {aid}: {key} is {value!r}, not {wanted}")
    if p.get("ComparisonOperator") != "GreaterThanThreshold":
        out.append(f"alarm {aid}: ComparisonOperator is {p.get('ComparisonOperator')!r}, not GreaterThanThreshold")
    if p.get("TreatMissingData") != "notBreaching":
        out.append(f"alarm {aid}: TreatMissingData is {p.get('TreatMissingData')!r}, not notBreaching")
    if len(p.get("Dimensions") or []) != 1:
        out.append(f"alarm {aid}: has {len(p.get('Dimensions') or [])} dimensions, not 1")
    return out


def dlq_cli_name(qid: str) -> str:
    """The name the classroom CLI gives a DLQ: ``DownlinkDLQ`` -> ``downlink``."""
    return (qid[: -len("DLQ")] if qid.endswith("DLQ") else qid).lower()


def check_queue_alarms(t: Template) -> list[str]:
    """Every failure queue (each DLQ and the IoT rules' error queue) has exactly one alarm on
    its depth: ApproximateNumberOfMessagesVisible (QueueName = !GetAtt X.QueueName), Maximum
    over 60 s > 0. A DLQ's alarm says which `classroom dlq` commands to run; the rule error
    queue's names the rules whose error action it covers."""
    out = []
    queues = resources(t, QUEUE)
    redrives = set(dead_letter_targets(t).values())
    depth: dict[str, list[str]] = {}
    for aid, alarm in resources(t, ALARM).items():
        p = props(alarm)
        if p.get("Namespace") != "AWS/SQS":
            continue
        if p.get("MetricName") != QUEUE_DEPTH_METRIC:
            out.append(f"alarm {aid}: AWS/SQS metric {p.get('MetricName')!r}, not {QUEUE_DEPTH_METRIC}")
            continue
        values = _dimension(p, "QueueName")
        value = values[0] if len(values) == 1 else None
        qid = target(value)
        if not (isinstance(value, dict) and value.get("Fn::GetAtt") == [qid, "QueueName"] and qid in queues):
            out.append(f"alarm {aid}: dimension QueueName is {values!r}, not !GetAtt <queue>.QueueName of this template")
            continue
        depth.setdefault(qid, []).append(aid)
        out.extend(_alarm_shape(t, aid, p, "Maximum"))
    for qid in sorted(failure_queues(t) & set(queues)):
        alarms = depth.get(qid, [])
        if not alarms:
            out.append(f"queue {qid} has no depth alarm ({QUEUE_DEPTH_METRIC} > 0)")
        elif len(alarms) > 1:
            out.append(f"queue {qid} has {len(alarms)} depth alarms ({', '.join(sorted(alarms))}), not exactly one")
    for qid, alarms in sorted(depth.items()):
        for aid in alarms:
            text = " ".join(str(props(resources(t)[aid]).get("AlarmDescription") or "").split())
            if qid in redrives:
                name = dlq_cli_name(qid)
                for cmd in (f"classroom dlq show {name}", f"classroom dlq redrive {name}"):
                    if cmd not in text:
                        out.append(f"alarm {aid}: AlarmDescription does not say to run `{cmd}`")
            if qid in rule_error_queues(t):
                for rid, rule in sorted(resources(t, TOPIC_RULE).items()):
                    err = ((props(rule).get("TopicRulePayload") or {}).get("ErrorAction") or {}).get("Sqs") or {}
                    if target(err.get("QueueUrl")) == qid and rid not in text:
                        out.append(f"alarm {aid}: AlarmDescription does not name {rid}, whose error action writes to {qid}")
    return out


def check_function_alarms(t: Template) -> list[str]:
    """Every function has exactly one Errors and one Throttles alarm (AWS/Lambda, FunctionName
    = !Ref the function, Sum over 60 s > 0)."""
    out = []
    functions = resources(t, FUNCTION)
    seen: dict[tuple[str, str], list[str]] = {}
    for aid, alarm in resources(t, ALARM).items():
        p = props(alarm)
        if p.get("Namespace") != "AWS/Lambda":
            continue
        metric = p.get("MetricName")
        if metric not in FUNCTION_METRICS:
            out.append(f"alarm {aid}: AWS/Lambda metric {metric!r}, not one of {list(FUNCTION_METRICS)}")
            continue
        values = _dimension(p, "FunctionName")
        value = values[0] if len(values) == 1 else None
        fid = target(value)
        if not (isinstance(value, dict) and value == {"Ref": fid} and fid in functions):
            out.append(f"alarm {aid}: dimension FunctionName is {values!r}, not !Ref <function> of this template")
            continue
        seen.setdefault((fid, metric), []).append(aid)
        out.extend(_alarm_shape(t, aid, p, "Sum"))
    for fid in sorted(functions):
        for metric in FUNCTION_METRICS:
            alarms = seen.get((fid, metric), [])
            if not alarms:
                out.append(f"function {fid} has no {metric} alarm")
            elif len(alarms) > 1:
                out.append(f"function {fid} has {len(alarms)} {metric} alarms ({', '.join(sorted(alarms))}), not exactly one")
    return out


def check_alarm_actions(t: Template) -> list[str]:
    """Every alarm exists whether or not a topic is given, says what it means, and notifies
    AlarmTopicArn on ALARM and OK only under HasAlarmTopic (optional parameter, default empty)."""
    out = []
    param = parameter(t, ALARM_TOPIC_PARAMETER)
    if param is None:
        out.append(f"no parameter {ALARM_TOPIC_PARAMETER} for the alarms' SNS topic")
    elif param.get("Type") != "String" or param.get("Default") != "":
        out.append(f"parameter {ALARM_TOPIC_PARAMETER} must be an optional String (Default '')")
    cond = (t.get("Conditions") or {}).get(ALARM_TOPIC_CONDITION)
    wanted = [
        {"Fn::Not": [{"Fn::Equals": [{"Ref": ALARM_TOPIC_PARAMETER}, ""]}]},
        {"Fn::Not": [{"Fn::Equals": ["", {"Ref": ALARM_TOPIC_PARAMETER}]}]},
    ]
    if cond not in wanted:
        out.append(f"condition {ALARM_TOPIC_CONDITION} is {cond!r}, not !Not [!Equals [!Ref {ALARM_TOPIC_PARAMETER}, '']]")
    for aid, alarm in sorted(resources(t, ALARM).items()):
        p = props(alarm)
        if "Condition" in alarm:
            out.append(f"alarm {aid}: has Condition {alarm['Condition']!r}; alarms exist with or without a topic")
        for key in ("AlarmActions", "OKActions"):
            if p.get(key) != ALARM_ACTIONS:
                out.append(
                    f"alarm {aid}: {key} is {p.get(key)!r}, not "
                    f"!If [{ALARM_TOPIC_CONDITION}, [!Ref {ALARM_TOPIC_PARAMETER}], !Ref AWS::NoValue]"
                )
        description = p.get("AlarmDescription")
        if not isinstance(description, str) or len(description.split()) < 5:
            out.append(f"alarm {aid}: no AlarmDescription saying what it means and what to do")
        elif len(description) > 1024:
            out.append(f"alarm {aid}: AlarmDescription is {len(description)} characters, over CloudWatch's 1024")
    return out


# ------------------------------------------------------------------ crates


def check_binaries_are_crates(t: Template, repo: Path = REPO) -> list[str]:
    """Every binary the template builds is a crate ``functions/<binary>`` with that package name."""
    out = []
    for fid, fn in sorted(resources(t, FUNCTION).items()):
        b = binary(fn)
        if not b:
            continue
        manifest = repo / "functions" / b / "Cargo.toml"
        if not manifest.is_file():
            out.append(f"{fid}: binary {b} has no crate functions/{b}/Cargo.toml")
            continue
        name = (tomllib.loads(manifest.read_text()).get("package") or {}).get("name")
        if name != b:
            out.append(f"{fid}: functions/{b} is the package {name!r}, not {b!r}")
    return out


CHECKS: list[Check] = [
    check_queues_have_dlqs,
    check_queue_encryption,
    check_visibility_timeouts,
    check_sqs_event_sources,
    check_functions_build,
    check_environment,
    check_parents_differ,
    check_iot_rules,
    check_tables,
    check_outputs,
    check_least_privilege,
    check_authorizer,
    check_http_routes,
    check_sign_in_grants,
    check_moderation_grants,
    check_secrets_hold_no_keys,
    check_no_classroom_certificate_policy,
    check_dead_lettering,
    check_queue_alarms,
    check_function_alarms,
    check_alarm_actions,
]


def violations(t: Template) -> list[str]:
    """Every violation of every check but the crate check (which reads the file system)."""
    return [v for check in CHECKS for v in check(t)]
