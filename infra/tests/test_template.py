"""The template keeps its invariants, and each check fails on a template that breaks it.

The real template must have no violation. Each mutation below breaks one invariant in a deep
copy of it and asserts that the matching check reports it: that is the evidence the checks can
fail at all.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

import pytest

import template_invariants as inv

Template = inv.Template


@pytest.fixture(scope="module")
def template() -> Template:
    return inv.load()


def test_real_template_has_no_violation(template: Template) -> None:
    assert inv.violations(template) == []


def test_every_binary_is_a_crate_in_functions(template: Template) -> None:
    assert inv.check_binaries_are_crates(template) == []


def test_the_template_declares_the_eight_functions(template: Template) -> None:
    binaries = {inv.binary(fn) for fn in inv.resources(template, inv.FUNCTION).values()}
    assert binaries == set(inv.FUNCTION_ENV)


def test_outflow_routes_the_uplink_parent_to_the_backend_queue(template: Template) -> None:
    fn = inv.resources(template, inv.FUNCTION)["OutflowFunction"]
    routes = inv.function_properties(template, fn)["Environment"]["Variables"]["OUTFLOW_ROUTES"]
    assert inv.sub_with_defaults(template, routes) == "roomSend=${BackendQueue}"


def test_uplink_rule_sql_is_exactly_the_one_of_spec_4_1(template: Template) -> None:
    sql = inv.props(template["Resources"]["UplinkRule"])["TopicRulePayload"]["Sql"]
    assert inv.sub_with_defaults(template, sql) == (
        "SELECT encode(*, 'base64') AS payload, topic() AS topic, clientid() AS clientId, "
        "timestamp() AS timestamp FROM 'roomSend/#'"
    )


def test_classroom_clients_sign_in_through_the_authorizer_not_a_certificate_policy(template: Template) -> None:
    # The only IoT policy left is the backend's; classroom policies come from tokens.
    assert set(inv.resources(template, inv.IOT_POLICY)) == {"BackendPolicy"}
    authorizer = inv.props(template["Resources"]["ClassroomAuthorizer"])
    assert authorizer["AuthorizerFunctionArn"] == {"Fn::GetAtt": ["AuthorizerFunction", "Arn"]}
    assert authorizer["SigningDisabled"] is True


def test_browsers_get_the_wss_url_with_the_authorizer_name(template: Template) -> None:
    value = template["Outputs"]["ClassroomWssUrl"]["Value"]["Fn::Sub"]
    assert value[0] == "wss://${Host}/mqtt?x-amz-customauthorizer-name=${ClassroomAuthorizer}"
    # The host is MqttEndpoint's (mqtts://<host>:8883): the same IoT data endpoint.
    host = value[1]["Host"]
    assert host == {
        "Fn::Select": [0, {"Fn::Split": [":", {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "MqttEndpoint"}]}]}]}]
    }
    endpoint = "mqtts://abc123-ats.iot.us-east-1.amazonaws.com:8883"
    assert endpoint.split("/")[2].split(":")[0] == "abc123-ats.iot.us-east-1.amazonaws.com"


def test_the_authorizer_may_only_read_keys_and_revocations(template: Template) -> None:
    assert inv.role_grants(template, "AuthorizerRole") == inv.ROLE_GRANTS["AuthorizerRole"]


def test_only_the_backend_may_publish_downlink(template: Template) -> None:
    doc = inv.props(template["Resources"]["BackendPolicy"])["PolicyDocument"]
    publish = [
        inv.sub_with_defaults(template, r).split("${AWS::AccountId}:", 1)[1]
        for st in doc["Statement"]
        if st["Action"] == "iot:Publish"
        for r in inv._as_list(st["Resource"])
    ]
    assert publish == ["topic/room/*"]


# ------------------------------------------------------------------ mutations


def _uplink_policy(t: Template) -> list[dict]:
    return t["Resources"]["OutflowRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]


def drop_a_dlq(t: Template) -> None:
    del t["Resources"]["UplinkQueue"]["Properties"]["RedrivePolicy"]


def delete_a_dlq_resource(t: Template) -> None:
    del t["Resources"]["BackendDLQ"]


def share_a_dlq(t: Template) -> None:
    t["Resources"]["BackendQueue"]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"] = {
        "Fn::GetAtt": ["UplinkDLQ", "Arn"]
    }


def literal_max_receive_count_3(t: Template) -> None:
    t["Resources"]["PresenceQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"] = 3


def parameter_max_receive_count_3(t: Template) -> None:
    t["Parameters"]["MaxReceiveCount"]["MinValue"] = 3


def short_dlq_retention(t: Template) -> None:
    t["Resources"]["DownlinkDLQ"]["Properties"]["MessageRetentionPeriod"] = 345600


def unencrypted_queue(t: Template) -> None:
    del t["Resources"]["DownlinkQueue"]["Properties"]["SqsManagedSseEnabled"]


def shrink_a_visibility_timeout(t: Template) -> None:
    t["Resources"]["DownlinkQueue"]["Properties"]["VisibilityTimeout"] = 60


def raise_the_timeout_bound(t: Template) -> None:
    t["Parameters"]["FunctionTimeout"]["MaxValue"] = 900


def function_timeout_over_the_queue(t: Template) -> None:
    t["Resources"]["InflowFunction"]["Properties"]["Timeout"] = 60


def drop_report_batch_item_failures(t: Template) -> None:
    ev = t["Resources"]["ModerationFunction"]["Properties"]["Events"]["Backend"]["Properties"]
    del ev["FunctionResponseTypes"]


def add_star_action(t: Template) -> None:
    _uplink_policy(t).append({"Effect": "Allow", "Action": "*", "Resource": {"Fn::GetAtt": ["UplinkQueue", "Arn"]}})


def add_service_wildcard_action(t: Template) -> None:
    _uplink_policy(t).append({"Effect": "Allow", "Action": "sqs:*", "Resource": {"Fn::GetAtt": ["UplinkQueue", "Arn"]}})


def add_star_resource(t: Template) -> None:
    _uplink_policy(t).append({"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"})


def add_foreign_resource(t: Template) -> None:
    _uplink_policy(t).append(
        {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "arn:aws:dynamodb:us-east-1:123456789012:table/other"}
    )


def add_managed_policy(t: Template) -> None:
    t["Resources"]["InflowRole"]["Properties"]["ManagedPolicyArns"] = ["arn:aws:iam::aws:policy/AmazonSQSFullAccess"]


def sam_generated_role_for_sqs(t: Template) -> None:
    p = t["Resources"]["OutflowFunction"]["Properties"]
    del p["Role"]
    p["Policies"] = [{"SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": ["BackendQueue", "QueueName"]}}}]


def iot_publish_anywhere(t: Template) -> None:
    st = t["Resources"]["BackendPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    st.append({"Effect": "Allow", "Action": "iot:Publish", "Resource": {"Fn::Sub": "arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:topic/*"}})


def downlink_parent_default_roomsend(t: Template) -> None:
    t["Parameters"]["DownlinkParent"]["Default"] = "roomSend"


def drop_the_parents_rule(t: Template) -> None:
    del t["Rules"]


def wrong_runtime(t: Template) -> None:
    t["Globals"]["Function"]["Runtime"] = "provided.al2"


def function_runtime_override(t: Template) -> None:
    t["Resources"]["PresenceFunction"]["Properties"]["Runtime"] = "python3.12"


def drop_build_method(t: Template) -> None:
    del t["Resources"]["PresenceFunction"]["Metadata"]["BuildMethod"]


def drop_binary(t: Template) -> None:
    del t["Resources"]["InflowFunction"]["Metadata"]["BuildProperties"]["Binary"]


def drop_an_env_var(t: Template) -> None:
    del t["Resources"]["ModerationFunction"]["Properties"]["Environment"]["Variables"]["MUTE_TABLE"]


def env_refers_to_nothing(t: Template) -> None:
    t["Resources"]["PresenceFunction"]["Properties"]["Environment"]["Variables"]["PRESENCE_TABLE"] = {"Ref": "PresenceTabel"}


def change_the_uplink_sql(t: Template) -> None:
    t["Resources"]["UplinkRule"]["Properties"]["TopicRulePayload"]["Sql"] = {
        "Fn::Sub": "SELECT * FROM '${UplinkParent}/#'"
    }


def drop_a_rule_error_action(t: Template) -> None:
    del t["Resources"]["PresenceRule"]["Properties"]["TopicRulePayload"]["ErrorAction"]


def rule_errors_into_a_dlq(t: Template) -> None:
    t["Resources"]["UplinkRule"]["Properties"]["TopicRulePayload"]["ErrorAction"]["Sqs"]["QueueUrl"] = {"Ref": "UplinkDLQ"}


def rule_errors_into_a_source_queue(t: Template) -> None:
    t["Resources"]["PresenceRule"]["Properties"]["TopicRulePayload"]["ErrorAction"]["Sqs"]["QueueUrl"] = {"Ref": "PresenceQueue"}


def short_rule_error_retention(t: Template) -> None:
    t["Resources"]["RuleErrorQueue"]["Properties"]["MessageRetentionPeriod"] = 86400


def drop_the_gsi(t: Template) -> None:
    del t["Resources"]["MembershipTable"]["Properties"]["GlobalSecondaryIndexes"]


def drop_the_ttl(t: Template) -> None:
    del t["Resources"]["MuteTable"]["Properties"]["TimeToLiveSpecification"]


def provisioned_table(t: Template) -> None:
    t["Resources"]["AttendanceTable"]["Properties"]["BillingMode"] = "PROVISIONED"


def drop_an_output(t: Template) -> None:
    del t["Outputs"]["PresenceDLQUrl"]


# ------------------------------------------------------------------ mutations: sign-in (§8)


def _authorizer(t: Template) -> dict:
    return t["Resources"]["ClassroomAuthorizer"]["Properties"]


def _permission(t: Template) -> dict:
    return t["Resources"]["AuthorizerInvokePermission"]["Properties"]


def _role_statements(t: Template, role: str) -> list[dict]:
    return t["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]


def _token_events(t: Template) -> dict:
    return t["Resources"]["TokenFunction"]["Properties"]["Events"]


def authorizer_signing_enabled(t: Template) -> None:
    _authorizer(t)["SigningDisabled"] = False


def authorizer_inactive(t: Template) -> None:
    _authorizer(t)["Status"] = "INACTIVE"


def authorizer_caches_http(t: Template) -> None:
    _authorizer(t)["EnableCachingForHttp"] = True


def authorizer_calls_the_issuer(t: Template) -> None:
    _authorizer(t)["AuthorizerFunctionArn"] = {"Fn::GetAtt": ["TokenFunction", "Arn"]}


def authorizer_timeout_6(t: Template) -> None:
    t["Resources"]["AuthorizerFunction"]["Properties"]["Timeout"] = 6


def authorizer_timeout_from_globals(t: Template) -> None:
    del t["Resources"]["AuthorizerFunction"]["Properties"]["Timeout"]


def drop_the_authorizer(t: Template) -> None:
    del t["Resources"]["ClassroomAuthorizer"]
    del t["Resources"]["AuthorizerInvokePermission"]


def permission_for_anyone(t: Template) -> None:
    _permission(t)["Principal"] = "*"


def permission_without_source_arn(t: Template) -> None:
    del _permission(t)["SourceArn"]


def permission_without_source_account(t: Template) -> None:
    del _permission(t)["SourceAccount"]


def open_token_route(t: Template) -> None:
    _token_events(t)["IssueClassroom"]["Properties"]["Auth"] = {"Authorizer": "NONE"}


def token_api_without_iam(t: Template) -> None:
    del t["Resources"]["TokenApi"]["Properties"]["Auth"]["DefaultAuthorizer"]


def drop_a_token_route(t: Template) -> None:
    del _token_events(t)["RevokeClient"]


def token_route_on_an_implicit_api(t: Template) -> None:
    del _token_events(t)["Query"]["Properties"]["ApiId"]


def authorizer_may_write_tokens(t: Template) -> None:
    _role_statements(t, "AuthorizerRole").append(
        {"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": {"Fn::GetAtt": ["TokenTable", "Arn"]}}
    )


def authorizer_reads_the_mqtt_secret(t: Template) -> None:
    for st in _role_statements(t, "AuthorizerRole"):
        if st.get("Sid") == "ReadSigningKeys":
            st["Resource"] = {"Ref": "MqttSecret"}


def presence_reads_the_signing_keys(t: Template) -> None:
    _role_statements(t, "PresenceRole").append(
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": {"Ref": "SigningKeysSecret"}}
    )


def moderation_writes_enrollment(t: Template) -> None:
    _role_statements(t, "ModerationRole").append(
        {"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": {"Fn::GetAtt": ["EnrollmentTable", "Arn"]}}
    )


def moderation_cannot_read_enrollment(t: Template) -> None:
    st = _role_statements(t, "ModerationRole")
    st[:] = [s for s in st if s.get("Sid") != "ReadEnrollment"]


def hard_coded_iot_arn_prefix(t: Template) -> None:
    env = t["Resources"]["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
    env["IOT_ARN_PREFIX"] = "arn:aws:iot:us-east-1:123456789012"


def token_table_keyed_by_token_id(t: Template) -> None:
    p = t["Resources"]["TokenTable"]["Properties"]
    p["KeySchema"] = [{"AttributeName": "tokenId", "KeyType": "HASH"}]
    p["AttributeDefinitions"] = [{"AttributeName": "tokenId", "AttributeType": "S"}]


def token_table_numeric_key(t: Template) -> None:
    t["Resources"]["TokenTable"]["Properties"]["AttributeDefinitions"][0]["AttributeType"] = "N"


def enrollment_without_ttl(t: Template) -> None:
    del t["Resources"]["EnrollmentTable"]["Properties"]["TimeToLiveSpecification"]


def token_ttl_on_another_attribute(t: Template) -> None:
    t["Resources"]["TokenTable"]["Properties"]["TimeToLiveSpecification"]["AttributeName"] = "exp"


def key_set_in_the_template(t: Template) -> None:
    t["Resources"]["SigningKeysSecret"]["Properties"]["SecretString"] = (
        '{"current":"k1","keys":{"k1":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MDA"}}'
    )


def generated_key_set(t: Template) -> None:
    p = t["Resources"]["SigningKeysSecret"]["Properties"]
    del p["SecretString"]
    p["GenerateSecretString"] = {"SecretStringTemplate": '{"current":"k1"}', "GenerateStringKey": "k1"}


def classroom_certificate_policy_is_back(t: Template) -> None:
    arn = "arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:"
    t["Resources"]["ClassroomClientPolicy"] = {
        "Type": "AWS::IoT::Policy",
        "Properties": {
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "iot:Connect",
                     "Resource": {"Fn::Sub": arn + "client/${!iot:Certificate.Subject.CommonName}"}},
                    {"Effect": "Allow", "Action": "iot:Receive",
                     "Resource": {"Fn::Sub": arn + "topic/${DownlinkParent}/message/*"}},
                ],
            }
        },
    }


def drop_the_wss_output(t: Template) -> None:
    del t["Outputs"]["ClassroomWssUrl"]


def drop_the_authorizer_outputs(t: Template) -> None:
    del t["Outputs"]["AuthorizerName"]
    del t["Outputs"]["ClassroomWssUrl"]


def drop_moderations_enrollment_table(t: Template) -> None:
    del t["Resources"]["ModerationFunction"]["Properties"]["Environment"]["Variables"]["ENROLLMENT_TABLE"]


def chat_rate_without_ttl(t: Template) -> None:
    del t["Resources"]["ChatRateTable"]["Properties"]["TimeToLiveSpecification"]


def moderation_reads_chat_rate(t: Template) -> None:
    _role_statements(t, "ModerationRole").append(
        {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": {"Fn::GetAtt": ["ChatRateTable", "Arn"]}}
    )


def moderation_cannot_count_chats(t: Template) -> None:
    st = _role_statements(t, "ModerationRole")
    st[:] = [s for s in st if s.get("Sid") != "ChatRateCounter"]


def presence_writes_chat_rate(t: Template) -> None:
    _role_statements(t, "PresenceRole").append(
        {"Effect": "Allow", "Action": "dynamodb:UpdateItem", "Resource": {"Fn::GetAtt": ["ChatRateTable", "Arn"]}}
    )


def chat_rate_table_is_the_mute_table(t: Template) -> None:
    env = t["Resources"]["ModerationFunction"]["Properties"]["Environment"]["Variables"]
    env["CHAT_RATE_TABLE"] = {"Ref": "MuteTable"}


def drop_the_rooms_cap(t: Template) -> None:
    del t["Resources"]["ModerationFunction"]["Properties"]["Environment"]["Variables"]["MAX_ROOMS_PER_CLIENT"]


# ------------------------------------------------------------------ dead-lettering and alarms


def test_each_queue_consumer_dead_letters_into_its_own_source_queues_dlq(template: Template) -> None:
    # Derived from the template (event source -> queue -> redrive target), then pinned: the
    # four pairs of the design, and one backoff cap, the queues' visibility parameter.
    redrives = inv.dead_letter_targets(template)
    pairs = {}
    for fid, _, ev, fprops in inv.sqs_events(template):
        env = fprops["Environment"]["Variables"]
        pairs[fid] = (inv.target(ev["Queue"]), inv.target(env["DEAD_LETTER_QUEUE_URL"]))
        assert env["DEAD_LETTER_QUEUE_URL"] == {"Ref": redrives[inv.target(ev["Queue"])]}
        assert env["RETRY_BACKOFF_MAX_SECONDS"] == {"Ref": "QueueVisibilityTimeout"}
    assert pairs == {
        "OutflowFunction": ("UplinkQueue", "UplinkDLQ"),
        "ModerationFunction": ("BackendQueue", "BackendDLQ"),
        "PresenceFunction": ("PresenceQueue", "PresenceDLQ"),
        "InflowFunction": ("DownlinkQueue", "DownlinkDLQ"),
    }
    assert inv.default(template, "QueueVisibilityTimeout") == 210


def test_equal_literals_count_as_the_same_backoff_cap(template: Template) -> None:
    t = copy.deepcopy(template)
    t["Resources"]["PresenceQueue"]["Properties"]["VisibilityTimeout"] = 210
    t["Resources"]["PresenceFunction"]["Properties"]["Environment"]["Variables"]["RETRY_BACKOFF_MAX_SECONDS"] = 210
    assert inv.check_dead_lettering(t) == []


def test_every_failure_queue_and_every_function_is_watched(template: Template) -> None:
    alarms = inv.resources(template, inv.ALARM)
    failures = inv.failure_queues(template)
    assert failures == {"UplinkDLQ", "BackendDLQ", "DownlinkDLQ", "PresenceDLQ", "RuleErrorQueue"}
    functions = inv.resources(template, inv.FUNCTION)
    assert len(alarms) == len(failures) + len(inv.FUNCTION_METRICS) * len(functions)


def _env(t: Template, fid: str) -> dict:
    return t["Resources"][fid]["Properties"]["Environment"]["Variables"]


def _alarm(t: Template, aid: str) -> dict:
    return t["Resources"][aid]["Properties"]


def moderation_dead_letters_into_the_uplink_dlq(t: Template) -> None:
    _env(t, "ModerationFunction")["DEAD_LETTER_QUEUE_URL"] = {"Ref": "UplinkDLQ"}


def dead_letter_url_is_an_arn(t: Template) -> None:
    _env(t, "PresenceFunction")["DEAD_LETTER_QUEUE_URL"] = {"Fn::GetAtt": ["PresenceDLQ", "Arn"]}


def drop_the_inflow_dead_letter_url(t: Template) -> None:
    del _env(t, "InflowFunction")["DEAD_LETTER_QUEUE_URL"]


def swap_two_redrive_targets(t: Template) -> None:
    # The pairs come from the template: after this the outflow's DLQ is BackendDLQ.
    up = t["Resources"]["UplinkQueue"]["Properties"]["RedrivePolicy"]
    back = t["Resources"]["BackendQueue"]["Properties"]["RedrivePolicy"]
    up["deadLetterTargetArn"], back["deadLetterTargetArn"] = back["deadLetterTargetArn"], up["deadLetterTargetArn"]


def backoff_cap_literal(t: Template) -> None:
    _env(t, "OutflowFunction")["RETRY_BACKOFF_MAX_SECONDS"] = 300


def queue_visibility_literal(t: Template) -> None:
    t["Resources"]["PresenceQueue"]["Properties"]["VisibilityTimeout"] = 300


def drop_the_backoff_cap(t: Template) -> None:
    del _env(t, "ModerationFunction")["RETRY_BACKOFF_MAX_SECONDS"]


def receive_limit_literal(t: Template) -> None:
    _env(t, "InflowFunction")["MAX_RECEIVE_COUNT"] = 3


def drop_the_receive_limit(t: Template) -> None:
    del _env(t, "PresenceFunction")["MAX_RECEIVE_COUNT"]


def inflow_cannot_dead_letter(t: Template) -> None:
    st = _role_statements(t, "InflowRole")
    st[:] = [s for s in st if s.get("Sid") != "DeadLetterDownlink"]


def moderation_sends_to_another_dlq(t: Template) -> None:
    for st in _role_statements(t, "ModerationRole"):
        if st.get("Sid") == "DeadLetterBackend":
            st["Resource"] = [{"Fn::GetAtt": ["BackendDLQ", "Arn"]}, {"Fn::GetAtt": ["PresenceDLQ", "Arn"]}]


def outflow_sends_rule_errors(t: Template) -> None:
    _role_statements(t, "OutflowRole").append(
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": {"Fn::GetAtt": ["RuleErrorQueue", "Arn"]}}
    )


def presence_reads_its_dlq(t: Template) -> None:
    _role_statements(t, "PresenceRole").append(
        {"Effect": "Allow", "Action": "sqs:ReceiveMessage", "Resource": {"Fn::GetAtt": ["PresenceDLQ", "Arn"]}}
    )


def token_sends_to_a_dlq(t: Template) -> None:
    _role_statements(t, "TokenRole").append(
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": {"Fn::GetAtt": ["DownlinkDLQ", "Arn"]}}
    )


def outflow_cannot_back_off(t: Template) -> None:
    for st in _role_statements(t, "OutflowRole"):
        if st.get("Sid") == "ConsumeUplink":
            st["Action"] = [a for a in st["Action"] if a != "sqs:ChangeMessageVisibility"]


def drop_a_dlq_alarm(t: Template) -> None:
    del t["Resources"]["BackendDLQAlarm"]


def duplicate_a_dlq_alarm(t: Template) -> None:
    t["Resources"]["UplinkDLQAlarm2"] = copy.deepcopy(t["Resources"]["UplinkDLQAlarm"])


def drop_the_rule_error_alarm(t: Template) -> None:
    del t["Resources"]["RuleErrorQueueAlarm"]


def dlq_alarm_on_the_source_queue(t: Template) -> None:
    _alarm(t, "PresenceDLQAlarm")["Dimensions"][0]["Value"] = {"Fn::GetAtt": ["PresenceQueue", "QueueName"]}


def dlq_alarm_by_arn(t: Template) -> None:
    _alarm(t, "DownlinkDLQAlarm")["Dimensions"][0]["Value"] = {"Fn::GetAtt": ["DownlinkDLQ", "Arn"]}


def dlq_alarm_on_the_average(t: Template) -> None:
    _alarm(t, "UplinkDLQAlarm")["Statistic"] = "Average"


def dlq_alarm_threshold_5(t: Template) -> None:
    _alarm(t, "BackendDLQAlarm")["Threshold"] = 5


def dlq_alarm_missing_data_breaching(t: Template) -> None:
    _alarm(t, "PresenceDLQAlarm")["TreatMissingData"] = "breaching"


def dlq_alarm_over_five_minutes(t: Template) -> None:
    _alarm(t, "DownlinkDLQAlarm")["Period"] = 300


def dlq_alarm_without_the_cli(t: Template) -> None:
    _alarm(t, "DownlinkDLQAlarm")["AlarmDescription"] = "Messages in the downlink DLQ: look at them and redrive them."


def rule_error_alarm_forgets_a_rule(t: Template) -> None:
    p = _alarm(t, "RuleErrorQueueAlarm")
    p["AlarmDescription"] = " ".join(p["AlarmDescription"].replace("PresenceRule", "the other rule").split())


def drop_a_throttles_alarm(t: Template) -> None:
    del t["Resources"]["TokenThrottlesAlarm"]


def errors_alarm_by_arn(t: Template) -> None:
    _alarm(t, "AuthorizerErrorsAlarm")["Dimensions"][0]["Value"] = {"Fn::GetAtt": ["AuthorizerFunction", "Arn"]}


def errors_alarm_on_the_maximum(t: Template) -> None:
    _alarm(t, "InflowErrorsAlarm")["Statistic"] = "Maximum"


def duplicate_an_errors_alarm(t: Template) -> None:
    t["Resources"]["OutflowErrorsAlarm2"] = copy.deepcopy(t["Resources"]["OutflowErrorsAlarm"])


def a_function_without_alarms(t: Template) -> None:
    t["Resources"]["PresenceQueryTwoFunction"] = copy.deepcopy(t["Resources"]["PresenceQueryFunction"])


def alarm_always_notifies(t: Template) -> None:
    _alarm(t, "ModerationThrottlesAlarm")["AlarmActions"] = [{"Ref": "AlarmTopicArn"}]


def alarm_without_ok_actions(t: Template) -> None:
    del _alarm(t, "PresenceDLQAlarm")["OKActions"]


def alarm_only_with_a_topic(t: Template) -> None:
    t["Resources"]["UplinkDLQAlarm"]["Condition"] = "HasAlarmTopic"


def alarm_without_description(t: Template) -> None:
    del _alarm(t, "PresenceQueryErrorsAlarm")["AlarmDescription"]


def condition_inverted(t: Template) -> None:
    t["Conditions"]["HasAlarmTopic"] = {"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}


def alarm_topic_required(t: Template) -> None:
    del t["Parameters"]["AlarmTopicArn"]["Default"]


DEAD_LETTER_MUTATIONS: list[tuple[Callable[[Template], None], Callable[[Template], list[str]], str]] = [
    (moderation_dead_letters_into_the_uplink_dlq, inv.check_dead_lettering, "ModerationFunction: DEAD_LETTER_QUEUE_URL is {'Ref': 'UplinkDLQ'}, not !Ref BackendDLQ"),
    (dead_letter_url_is_an_arn, inv.check_dead_lettering, "PresenceFunction: DEAD_LETTER_QUEUE_URL is {'Fn::GetAtt': ['PresenceDLQ', 'Arn']}"),
    (drop_the_inflow_dead_letter_url, inv.check_dead_lettering, "InflowFunction: lacks DEAD_LETTER_QUEUE_URL (!Ref DownlinkDLQ"),
    (drop_the_inflow_dead_letter_url, inv.check_environment, "InflowFunction: environment variable DEAD_LETTER_QUEUE_URL is missing"),
    (swap_two_redrive_targets, inv.check_dead_lettering, "OutflowFunction: DEAD_LETTER_QUEUE_URL is {'Ref': 'UplinkDLQ'}, not !Ref BackendDLQ"),
    (swap_two_redrive_targets, inv.check_dead_lettering, "role OutflowRole: lacks sqs:SendMessage on BackendDLQ"),
    (backoff_cap_literal, inv.check_dead_lettering, "OutflowFunction: RETRY_BACKOFF_MAX_SECONDS is 300, not the VisibilityTimeout of UplinkQueue"),
    (queue_visibility_literal, inv.check_dead_lettering, "PresenceFunction: RETRY_BACKOFF_MAX_SECONDS is {'Ref': 'QueueVisibilityTimeout'}, not the VisibilityTimeout of PresenceQueue (300)"),
    (drop_the_backoff_cap, inv.check_dead_lettering, "ModerationFunction: lacks RETRY_BACKOFF_MAX_SECONDS"),
    (receive_limit_literal, inv.check_dead_lettering, "InflowFunction: MAX_RECEIVE_COUNT is 3, not the maxReceiveCount of DownlinkQueue"),
    (drop_the_receive_limit, inv.check_dead_lettering, "PresenceFunction: lacks MAX_RECEIVE_COUNT"),
    (inflow_cannot_dead_letter, inv.check_dead_lettering, "role InflowRole: lacks sqs:SendMessage on DownlinkDLQ"),
    (moderation_sends_to_another_dlq, inv.check_dead_lettering, "role ModerationRole: may ['sqs:SendMessage'] on PresenceDLQ"),
    (outflow_sends_rule_errors, inv.check_dead_lettering, "role OutflowRole: may ['sqs:SendMessage'] on RuleErrorQueue, a failure queue only ['IotRuleRole']"),
    (presence_reads_its_dlq, inv.check_dead_lettering, "role PresenceRole: sqs:ReceiveMessage on PresenceDLQ; PresenceFunction may only ['sqs:SendMessage']"),
    (token_sends_to_a_dlq, inv.check_dead_lettering, "role TokenRole: may ['sqs:SendMessage'] on DownlinkDLQ, a failure queue only ['InflowRole']"),
    (outflow_cannot_back_off, inv.check_dead_lettering, "role OutflowRole: lacks sqs:ChangeMessageVisibility on UplinkQueue"),
]


ALARM_MUTATIONS: list[tuple[Callable[[Template], None], Callable[[Template], list[str]], str]] = [
    (drop_a_dlq_alarm, inv.check_queue_alarms, "queue BackendDLQ has no depth alarm"),
    (duplicate_a_dlq_alarm, inv.check_queue_alarms, "queue UplinkDLQ has 2 depth alarms (UplinkDLQAlarm, UplinkDLQAlarm2)"),
    (drop_the_rule_error_alarm, inv.check_queue_alarms, "queue RuleErrorQueue has no depth alarm"),
    (dlq_alarm_on_the_source_queue, inv.check_queue_alarms, "queue PresenceDLQ has no depth alarm"),
    (dlq_alarm_by_arn, inv.check_queue_alarms, "alarm DownlinkDLQAlarm: dimension QueueName is"),
    (dlq_alarm_on_the_average, inv.check_queue_alarms, "alarm UplinkDLQAlarm: Statistic is 'Average', not Maximum"),
    (dlq_alarm_threshold_5, inv.check_queue_alarms, "alarm BackendDLQAlarm: Threshold is 5, not 0"),
    (dlq_alarm_missing_data_breaching, inv.check_queue_alarms, "alarm PresenceDLQAlarm: TreatMissingData is 'breaching'"),
    (dlq_alarm_over_five_minutes, inv.check_queue_alarms, "alarm DownlinkDLQAlarm: Period is 300, not 60"),
    (dlq_alarm_without_the_cli, inv.check_queue_alarms, "alarm DownlinkDLQAlarm: AlarmDescription does not say to run `classroom dlq show downlink`"),
    (rule_error_alarm_forgets_a_rule, inv.check_queue_alarms, "alarm RuleErrorQueueAlarm: AlarmDescription does not name PresenceRule"),
    (drop_a_throttles_alarm, inv.check_function_alarms, "function TokenFunction has no Throttles alarm"),
    (errors_alarm_by_arn, inv.check_function_alarms, "function AuthorizerFunction has no Errors alarm"),
    (errors_alarm_by_arn, inv.check_function_alarms, "alarm AuthorizerErrorsAlarm: dimension FunctionName is"),
    (errors_alarm_on_the_maximum, inv.check_function_alarms, "alarm InflowErrorsAlarm: Statistic is 'Maximum', not Sum"),
    (duplicate_an_errors_alarm, inv.check_function_alarms, "function OutflowFunction has 2 Errors alarms"),
    (a_function_without_alarms, inv.check_function_alarms, "function PresenceQueryTwoFunction has no Errors alarm"),
    (alarm_always_notifies, inv.check_alarm_actions, "alarm ModerationThrottlesAlarm: AlarmActions is [{'Ref': 'AlarmTopicArn'}]"),
    (alarm_without_ok_actions, inv.check_alarm_actions, "alarm PresenceDLQAlarm: OKActions is None"),
    (alarm_only_with_a_topic, inv.check_alarm_actions, "alarm UplinkDLQAlarm: has Condition 'HasAlarmTopic'"),
    (alarm_without_description, inv.check_alarm_actions, "alarm PresenceQueryErrorsAlarm: no AlarmDescription"),
    (condition_inverted, inv.check_alarm_actions, "condition HasAlarmTopic is"),
    (alarm_topic_required, inv.check_alarm_actions, "parameter AlarmTopicArn must be an optional String"),
]


MODERATION_MUTATIONS: list[tuple[Callable[[Template], None], Callable[[Template], list[str]], str]] = [
    (chat_rate_without_ttl, inv.check_tables, "ChatRateTable: TTL on expiresAt is not enabled"),
    (moderation_reads_chat_rate, inv.check_moderation_grants, "dynamodb:GetItem on ChatRateTable is more than it needs"),
    (moderation_cannot_count_chats, inv.check_moderation_grants, "lacks dynamodb:UpdateItem on ChatRateTable"),
    (presence_writes_chat_rate, inv.check_moderation_grants, "role PresenceRole: may ['dynamodb:UpdateItem'] on ChatRateTable"),
    (chat_rate_table_is_the_mute_table, inv.check_moderation_grants, "CHAT_RATE_TABLE is {'Ref': 'MuteTable'}"),
    (drop_the_rooms_cap, inv.check_environment, "ModerationFunction: environment variable MAX_ROOMS_PER_CLIENT is missing"),
]


SIGN_IN_MUTATIONS: list[tuple[Callable[[Template], None], Callable[[Template], list[str]], str]] = [
    (authorizer_signing_enabled, inv.check_authorizer, "SigningDisabled is not true"),
    (authorizer_inactive, inv.check_authorizer, "Status is 'INACTIVE'"),
    (authorizer_caches_http, inv.check_authorizer, "EnableCachingForHttp"),
    (authorizer_calls_the_issuer, inv.check_authorizer, "is not !GetAtt AuthorizerFunction.Arn"),
    (authorizer_timeout_6, inv.check_authorizer, "timeout 6 s is over IoT's 5 s"),
    (authorizer_timeout_from_globals, inv.check_authorizer, "timeout 30 s is over IoT's 5 s"),
    (drop_the_authorizer, inv.check_authorizer, "no AWS::IoT::Authorizer"),
    (permission_for_anyone, inv.check_authorizer, "lets '*' invoke AuthorizerFunction"),
    (permission_without_source_arn, inv.check_authorizer, "no AWS::Lambda::Permission lets iot.amazonaws.com"),
    (permission_without_source_account, inv.check_authorizer, "SourceAccount !Ref AWS::AccountId"),
    (open_token_route, inv.check_http_routes, "TokenFunction.IssueClassroom: route overrides the IAM authorization"),
    (token_api_without_iam, inv.check_http_routes, "HTTP API TokenApi: routes are not AWS_IAM-authorized"),
    (drop_a_token_route, inv.check_http_routes, "lacks the route POST /clients/{clientId}/revoke"),
    (token_route_on_an_implicit_api, inv.check_http_routes, "TokenFunction.Query: route is not on an HTTP API"),
    (authorizer_may_write_tokens, inv.check_sign_in_grants, "AuthorizerRole: dynamodb:PutItem on TokenTable is more"),
    (authorizer_reads_the_mqtt_secret, inv.check_sign_in_grants, "AuthorizerRole: lacks secretsmanager:GetSecretValue on SigningKeysSecret"),
    (presence_reads_the_signing_keys, inv.check_sign_in_grants, "PresenceRole: may ['secretsmanager:GetSecretValue'] on SigningKeysSecret"),
    (moderation_writes_enrollment, inv.check_sign_in_grants, "ModerationRole: dynamodb:PutItem on EnrollmentTable; it may only read it"),
    (moderation_cannot_read_enrollment, inv.check_sign_in_grants, "ModerationRole: lacks dynamodb:BatchGetItem on EnrollmentTable"),
    (hard_coded_iot_arn_prefix, inv.check_sign_in_grants, "AuthorizerFunction: IOT_ARN_PREFIX is"),
    (token_table_keyed_by_token_id, inv.check_tables, "TokenTable: key schema is not HASH id (no RANGE)"),
    (token_table_numeric_key, inv.check_tables, "TokenTable: key attribute id is not a string"),
    (enrollment_without_ttl, inv.check_tables, "EnrollmentTable: TTL on expiresAt is not enabled"),
    (token_ttl_on_another_attribute, inv.check_tables, "TokenTable: TTL on expiresAt is not enabled"),
    (key_set_in_the_template, inv.check_secrets_hold_no_keys, "key material in the template"),
    (generated_key_set, inv.check_secrets_hold_no_keys, "GenerateSecretString cannot make a key set"),
    (classroom_certificate_policy_is_back, inv.check_no_classroom_certificate_policy, "reads every room, wider than any token"),
    (classroom_certificate_policy_is_back, inv.check_no_classroom_certificate_policy, "iot:Connect on 'client/${iot:Certificate.Subject.CommonName}'"),
    (drop_the_wss_output, inv.check_outputs, "no output gives browsers the WSS URL"),
    (drop_the_authorizer_outputs, inv.check_outputs, "IoT authorizer ClassroomAuthorizer has no output"),
    (drop_moderations_enrollment_table, inv.check_environment, "ModerationFunction: environment variable ENROLLMENT_TABLE is missing"),
]


MUTATIONS: list[tuple[Callable[[Template], None], Callable[[Template], list[str]], str]] = [
    (drop_a_dlq, inv.check_queues_have_dlqs, "UplinkQueue has no dead-letter queue"),
    (delete_a_dlq_resource, inv.check_queues_have_dlqs, "BackendDLQ is not a queue of this template"),
    (share_a_dlq, inv.check_queues_have_dlqs, "share the dead-letter queue UplinkDLQ"),
    (literal_max_receive_count_3, inv.check_queues_have_dlqs, "PresenceQueue: maxReceiveCount can be 3"),
    (parameter_max_receive_count_3, inv.check_queues_have_dlqs, "maxReceiveCount can be 3"),
    (short_dlq_retention, inv.check_queues_have_dlqs, "DownlinkDLQ keeps messages 345600 s"),
    (unencrypted_queue, inv.check_queue_encryption, "DownlinkQueue is not encrypted"),
    (shrink_a_visibility_timeout, inv.check_visibility_timeouts, "DownlinkQueue: visibility timeout 60 s"),
    (raise_the_timeout_bound, inv.check_visibility_timeouts, "timeout 900 s"),
    (function_timeout_over_the_queue, inv.check_visibility_timeouts, "InflowFunction timeout 60 s"),
    (drop_report_batch_item_failures, inv.check_sqs_event_sources, "ModerationFunction.Backend: SQS event source lacks"),
    (add_star_action, inv.check_least_privilege, "Action '*' is a wildcard"),
    (add_service_wildcard_action, inv.check_least_privilege, "Action 'sqs:*' is a wildcard"),
    (add_star_resource, inv.check_least_privilege, "Resource '*'"),
    (add_foreign_resource, inv.check_least_privilege, "table/other' is not a resource of this stack"),
    (add_managed_policy, inv.check_least_privilege, "InflowRole: managed policies"),
    (sam_generated_role_for_sqs, inv.check_least_privilege, "AWSLambdaSQSQueueExecutionRole"),
    (iot_publish_anywhere, inv.check_least_privilege, "covers every client or topic"),
    (downlink_parent_default_roomsend, inv.check_parents_differ, "both default to 'roomSend'"),
    (drop_the_parents_rule, inv.check_parents_differ, "no Rules assertion"),
    (wrong_runtime, inv.check_functions_build, "Runtime is 'provided.al2'"),
    (function_runtime_override, inv.check_functions_build, "PresenceFunction: Runtime is 'python3.12'"),
    (drop_build_method, inv.check_functions_build, "PresenceFunction: Metadata.BuildMethod"),
    (drop_binary, inv.check_functions_build, "InflowFunction: Metadata.BuildProperties.Binary is missing"),
    (drop_an_env_var, inv.check_environment, "MUTE_TABLE is missing"),
    (env_refers_to_nothing, inv.check_environment, "refers to PresenceTabel"),
    (change_the_uplink_sql, inv.check_iot_rules, "is neither the uplink rule"),
    (drop_a_rule_error_action, inv.check_iot_rules, "PresenceRule: no Sqs ErrorAction"),
    (rule_errors_into_a_dlq, inv.check_iot_rules, "UplinkRule: ErrorAction writes to the DLQ UplinkDLQ"),
    (rule_errors_into_a_source_queue, inv.check_iot_rules, "PresenceRule: ErrorAction writes to PresenceQueue, which a function consumes"),
    (short_rule_error_retention, inv.check_queues_have_dlqs, "RuleErrorQueue keeps messages 86400 s"),
    (drop_the_gsi, inv.check_tables, "GSI byClient is missing"),
    (drop_the_ttl, inv.check_tables, "TTL on expiresAt"),
    (provisioned_table, inv.check_tables, "AttendanceTable is not on-demand"),
    (drop_an_output, inv.check_outputs, "PresenceDLQ has no output"),
    *SIGN_IN_MUTATIONS,
    *MODERATION_MUTATIONS,
    *DEAD_LETTER_MUTATIONS,
    *ALARM_MUTATIONS,
]


@pytest.mark.parametrize(
    ("mutate", "check", "expected"),
    MUTATIONS,
    ids=[f"{m[0].__name__}-{i}" if [x[0] for x in MUTATIONS].count(m[0]) > 1 else m[0].__name__ for i, m in enumerate(MUTATIONS)],
)
def test_check_reports_the_broken_copy(
    template: Template,
    mutate: Callable[[Template], None],
    check: Callable[[Template], list[str]],
    expected: str,
) -> None:
    broken = copy.deepcopy(template)
    mutate(broken)
    found = check(broken)
    assert any(expected in v for v in found), found
    # The same violation comes out of the full run, and the original stays clean.
    assert any(expected in v for v in inv.violations(broken))
    assert check(template) == []


def test_crate_check_reports_a_missing_crate_and_a_renamed_one(template: Template, tmp_path: Path) -> None:
    (tmp_path / "functions" / "outflow").mkdir(parents=True)
    (tmp_path / "functions" / "outflow" / "Cargo.toml").write_text('[package]\nname = "outflow-fn"\n')
    found = inv.check_binaries_are_crates(template, repo=tmp_path)
    assert any("functions/outflow is the package 'outflow-fn'" in v for v in found), found
    assert any("binary inflow has no crate functions/inflow/Cargo.toml" in v for v in found), found


def test_deploy_md_documents_every_parameter(template: Template) -> None:
    doc = (inv.INFRA / "DEPLOY.md").read_text(encoding="utf-8")
    missing = [p for p in template["Parameters"] if f"| `{p}` |" not in doc]
    assert missing == [], f"infra/DEPLOY.md's parameter table lacks {missing}"
