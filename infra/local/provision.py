"""Provision the local stack's queues and tables from infra/template.yaml (one source of truth).

Reads every AWS::SQS::Queue and AWS::DynamoDB::Table of the SAM template, resolves the
parameters' defaults (and the few intrinsic functions the template uses for them), and creates
them in moto's server: dead-letter queues first, then the source queues with the same
RedrivePolicy (maxReceiveCount) and VisibilityTimeout, then the tables with their keys, indexes
and TTL. Writes the resulting URLs and names as an env file the runner, the bridge and the tests
source.

Usage: provision.py --template infra/template.yaml --endpoint http://127.0.0.1:PORT --out FILE
       [--visibility-timeout SECONDS]   (local override, for tests of the redrive only)
Queue names are the logical IDs prefixed by --prefix (default "classroom-"), e.g.
classroom-UplinkQueue; env keys are the logical IDs in UPPER_SNAKE: UPLINK_QUEUE_URL,
UPLINK_DLQ_URL, UPLINK_DLQ_ARN, PRESENCE_TABLE, ...
"""

import argparse
import json
import os
import re
import sys

import boto3
import yaml


class CfnLoader(yaml.SafeLoader):
    """A YAML loader that keeps CloudFormation short-form tags (!Ref, !GetAtt, !Sub...)."""


def _tag(loader, suffix, node):
    name = "Fn::GetAtt" if suffix == "GetAtt" else ("Ref" if suffix == "Ref" else "Fn::" + suffix)
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CfnLoader.add_multi_constructor("!", _tag)


def snake(logical_id):
    """UplinkDLQ -> UPLINK_DLQ, PresenceTable -> PRESENCE_TABLE."""
    s = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", logical_id)
    return s.upper()


class Unresolved(Exception):
    """An intrinsic this local provisioner does not evaluate (e.g. !If on a secret)."""


def resolve(value, params, arns, refs=None):
    """Resolves the intrinsics the queue, table and environment properties use: Ref to a
    parameter (its default) or to a provisioned queue (URL) or table (name), GetAtt X.Arn of a
    queue, Sub with those. Raises Unresolved for anything else."""
    refs = refs or {}
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in (
            "Ref", "Fn::GetAtt", "Fn::Sub", "Fn::If", "Fn::Join", "Fn::Select", "Fn::ImportValue"):
        (k, v), = value.items()
        if k == "Ref":
            if v in params and params[v] is not None:
                return params[v]
            if v in refs:
                return refs[v]
            raise Unresolved(f"!Ref {v}")
        if k == "Fn::GetAtt":
            logical, attr = v
            if attr == "Arn" and logical in arns:
                return arns[logical]
            raise Unresolved(f"!GetAtt {logical}.{attr}")
        if k == "Fn::Sub" and isinstance(v, str):
            def sub(m):
                name = m.group(1)
                if name in params:
                    return str(params[name])
                if name in refs:
                    return str(refs[name])
                raise Unresolved(f"${{{name}}}")
            return re.sub(r"\$\{([^}]+)\}", sub, v)
        raise Unresolved(k)
    if isinstance(value, dict):
        return {k: resolve(v, params, arns, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, params, arns, refs) for v in value]
    return value


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--template", required=True)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--prefix", default="classroom-")
    ap.add_argument("--visibility-timeout", type=int, default=None)
    args = ap.parse_args()

    with open(args.template, encoding="utf-8") as f:
        tpl = yaml.load(f, Loader=CfnLoader)
    params = {k: p.get("Default") for k, p in (tpl.get("Parameters") or {}).items()}
    params.setdefault("AWS::Region", "us-east-1")
    params.setdefault("AWS::StackName", "classroom-local")
    # STACK_PARAMETER_OVERRIDES="ChatRateLimit=0 ..." (as `sam deploy --parameter-overrides`):
    # benches run the stack with a template parameter changed, e.g. the chat rate off.
    for pair in os.environ.get("STACK_PARAMETER_OVERRIDES", "").split():
        name, sep, value = pair.partition("=")
        if not sep or name not in params:
            raise SystemExit(f"provision: STACK_PARAMETER_OVERRIDES: {pair!r} is not <Parameter>=<value> of a template parameter")
        params[name] = value
    resources = tpl.get("Resources") or {}
    queues = {k: r for k, r in resources.items() if r.get("Type") == "AWS::SQS::Queue"}
    tables = {k: r for k, r in resources.items() if r.get("Type") == "AWS::DynamoDB::Table"}
    if not queues or not tables:
        raise SystemExit("provision: the template declares no queues or no tables")

    kw = dict(endpoint_url=args.endpoint, region_name="us-east-1",
              aws_access_key_id="test", aws_secret_access_key="test")
    sqs = boto3.client("sqs", **kw)
    ddb = boto3.client("dynamodb", **kw)
    env = {}
    arns = {}

    # Dead-letter queues (no RedrivePolicy) first, so the source queues can point at them.
    order = sorted(queues, key=lambda k: "RedrivePolicy" in (queues[k].get("Properties") or {}))
    for logical in order:
        props = queues[logical].get("Properties") or {}
        attrs = {}
        for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds",
                    "ReceiveMessageWaitTimeSeconds", "MaximumMessageSize"):
            if key in props:
                attrs[key] = str(resolve(props[key], params, arns))
        if args.visibility_timeout is not None and "RedrivePolicy" in props:
            attrs["VisibilityTimeout"] = str(args.visibility_timeout)
        if "RedrivePolicy" in props:
            rp = resolve(props["RedrivePolicy"], params, arns)
            rp["maxReceiveCount"] = int(rp["maxReceiveCount"])
            attrs["RedrivePolicy"] = json.dumps(rp)
            env["MAX_RECEIVE_COUNT"] = str(rp["maxReceiveCount"])
        name = args.prefix + logical
        if props.get("FifoQueue"):
            name += ".fifo"
            attrs["FifoQueue"] = "true"
        url = sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        arns[logical] = arn
        env[snake(logical) + "_URL"] = url
        env[snake(logical) + "_ARN"] = arn
        print(f"queue  {name:32} {json.dumps(attrs)}", file=sys.stderr)

    existing = set(ddb.list_tables().get("TableNames", []))
    for logical, res in tables.items():
        keep = ("AttributeDefinitions", "KeySchema", "BillingMode", "ProvisionedThroughput",
                "GlobalSecondaryIndexes", "TimeToLiveSpecification")
        props = {k: resolve(v, params, arns) for k, v in (res.get("Properties") or {}).items() if k in keep}
        name = args.prefix + logical
        if name not in existing:
            req = {
                "TableName": name,
                "AttributeDefinitions": props["AttributeDefinitions"],
                "KeySchema": props["KeySchema"],
                "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
            }
            if req["BillingMode"] != "PAY_PER_REQUEST":
                req["ProvisionedThroughput"] = props.get(
                    "ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5})
            gsis = []
            for g in props.get("GlobalSecondaryIndexes") or []:
                gsis.append({k: g[k] for k in ("IndexName", "KeySchema", "Projection") if k in g})
            if gsis:
                req["GlobalSecondaryIndexes"] = gsis
            ddb.create_table(**req)
            ttl = props.get("TimeToLiveSpecification")
            if ttl and ttl.get("Enabled", True):
                ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={
                    "AttributeName": ttl["AttributeName"], "Enabled": True})
        env[snake(logical)] = name
        print(f"table  {name:32} keys={[k['AttributeName'] for k in props['KeySchema']]}", file=sys.stderr)

    # The functions' environment, as the template gives it to them (Globals + each function),
    # with Ref/Sub of queues and tables resolved to the local ones. Every function runs in the
    # one local runner process, so the variables are merged; a variable the functions set to
    # different values (each its own DEAD_LETTER_QUEUE_URL) is written once per function as
    # <LOGICAL_ID>__<VAR> (INFLOW_FUNCTION__DEAD_LETTER_QUEUE_URL), which the runner's
    # `Env::scoped` reads first for that function.
    refs = {k: env[snake(k) + "_URL"] for k in queues}
    refs.update({k: env[snake(k)] for k in tables})
    per_fn = {}
    glob = ((tpl.get("Globals") or {}).get("Function") or {}).get("Environment", {}).get("Variables", {})
    blocks = [("Globals", glob)] + [
        (k, ((r.get("Properties") or {}).get("Environment") or {}).get("Variables") or {})
        for k, r in resources.items() if r.get("Type") == "AWS::Serverless::Function"]
    for owner, variables in blocks:
        for var, raw in variables.items():
            try:
                value = str(resolve(raw, params, arns, refs))
            except Unresolved as e:
                print(f"env    {var:32} left to the local stack ({owner}: {e})", file=sys.stderr)
                continue
            per_fn.setdefault(var, {})[owner] = value
    for var, owners in per_fn.items():
        if len(set(owners.values())) == 1:
            env.setdefault(var, next(iter(owners.values())))
        else:
            for owner, value in owners.items():
                env.setdefault(f"{snake(owner)}__{var}", value)
    # A shorter local visibility timeout shortens the retry backoff's cap with it.
    if args.visibility_timeout is not None:
        env["RETRY_BACKOFF_MAX_SECONDS"] = str(args.visibility_timeout)
    # The event source mapping's settings, for the local runner.
    for var, param in (("FUNCTION_TIMEOUT", "FunctionTimeout"), ("LOCAL_BATCH_SIZE", "BatchSize")):
        if params.get(param) is not None:
            env[var] = str(params[param])

    with open(args.out, "w", encoding="utf-8") as f:
        for k in sorted(env):
            f.write(f"{k}={env[k]}\n")


if __name__ == "__main__":
    main()
