"""The app identity's role assignments are exactly the least-privilege set (read from the parsed Bicep).

Expected set (docs/deploy.md):
- per configured vault: one custom role with exactly the Recovery Services operations behind the REST
  calls the app makes; protectedItems/write (stop/resume protection) only when gcMode is weekend-window
  or gcRemediate is true;
- EventGrid Data Sender on the downstream topic only;
- Storage Blob Data Owner (+ Queue/Table Data Contributor with the Azure Storage Durable backend) on the
  app's own storage account; Monitoring Metrics Publisher on its Application Insights component;
  Durable Task Data Contributor on the task hub only with the Durable Task Scheduler backend;
- optionally (weekend-window + grantVmWriteForResume) VM read/write on the configured VMs;
- Reader on each resource group listed in vmReaderResourceGroupIds (Resource Graph selections), none by default.

The alert rules' own identity (modules/alerts.bicep) reads the Application Insights component only.
"""

from __future__ import annotations

from typing import Any

ROLE = {
    "storageBlobDataOwner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "storageQueueDataContributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "storageTableDataContributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "monitoringMetricsPublisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "eventGridDataSender": "d5a91429-5739-47e2-a06b-3470a27159e7",
    "durableTaskDataContributor": "0ad04412-c4d5-4796-b79c-f76d14c8d402",
    "reader": "acdd72a7-3385-48ef-bd42-f606fba81ae7",
}
BROAD_BUILTINS = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",  # Owner
    "b24988ac-6180-42a0-ab88-20f7382dd24c",  # Contributor
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",  # User Access Administrator
    "5e467623-bb1f-42f4-a55d-6e525e11384b",  # Backup Contributor
    "00c29273-979b-4161-815c-10b084fb9324",  # Backup Operator
    "17d1049b-9a84-46fb-8f53-869881c3d3ab",  # Storage Account Contributor
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe",  # Storage Blob Data Contributor (Owner is the documented one)
}

PI = "Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems"
READ_AND_TRIGGER = {
    f"{PI}/backup/action",
    f"{PI}/operationsStatus/read",
    f"{PI}/operationResults/read",
    f"{PI}/read",
    f"{PI}/recoveryPoints/read",
    "Microsoft.RecoveryServices/Vaults/backupProtectedItems/read",
    "Microsoft.RecoveryServices/Vaults/backupJobs/read",
    "Microsoft.RecoveryServices/Vaults/backupPolicies/read",
    "Microsoft.RecoveryServices/Vaults/backupOperations/read",
    "Microsoft.RecoveryServices/Vaults/backupOperationResults/read",
}
PROTECTION = {f"{PI}/write"}


def unwrap(config: dict[str, Any]) -> tuple[dict[str, Any], Any, Any]:
    """(body, condition, loop) of a resource/module config, whatever pycep wrapped it in."""
    condition = loop = None
    while "config" in config and ("condition" in config or "loop_type" in config):
        condition = config.get("condition") if config.get("condition") is not None else condition
        loop = config.get("loop_type") if config.get("loop_type") is not None else loop
        config = config["config"]
    return config, condition, loop


def role_assignments(parsed: dict[str, Any]) -> dict[str, tuple[dict[str, Any], Any, Any]]:
    return {
        name: unwrap(res["config"])
        for name, res in parsed.get("resources", {}).items()
        if res["type"] == "Microsoft.Authorization/roleAssignments"
    }


def role_id_of(assignment: dict[str, Any], variables: dict[str, Any]) -> str:
    params = assignment["properties"]["roleDefinitionId"]["function"]["parameters"]
    assert params["resource_type"] == "Microsoft.Authorization/roleDefinitions"
    name = params["resource_name_1"]
    if isinstance(name, dict):  # roles.<key> in a `roles` object variable
        operands = name["operator"]["operands"]
        return str(variables[operands["operand_1"]]["value"][operands["operand_2"]])
    if name in variables:
        return str(variables[name]["value"])
    return str(name)  # a parameter (custom role guid)


def test_only_expected_files_assign_roles(bicep: dict) -> None:
    owners = {path for path, parsed in bicep.items() if role_assignments(parsed)}
    assert owners == {
        "modules/app-access.bicep",
        "modules/vault-access.bicep",
        "modules/vm-access.bicep",
        "modules/vm-reader-access.bicep",
        "modules/topic.bicep",
        "modules/alerts.bicep",
    }


def test_app_access_is_exactly_the_expected_set(bicep: dict) -> None:
    parsed = bicep["modules/app-access.bicep"]
    variables = parsed["variables"]
    got = {}
    for name, (body, condition, loop) in role_assignments(parsed).items():
        assert loop is None, name
        assert body["properties"]["principalId"] == "principalId", name
        assert body["properties"]["principalType"] == "ServicePrincipal", name
        got[name] = (body["scope"], role_id_of(body, variables), condition)
    not_dts = {"operator": {"type": "not", "operands": {"bool_value": "useDurableTaskScheduler"}}}
    assert got == {
        "blobOwner": ("storage", ROLE["storageBlobDataOwner"], None),
        "queueContributor": ("storage", ROLE["storageQueueDataContributor"], not_dts),
        "tableContributor": ("storage", ROLE["storageTableDataContributor"], not_dts),
        "metricsPublisher": ("applicationInsights", ROLE["monitoringMetricsPublisher"], None),
        "downstreamSender": ("downstreamTopic", ROLE["eventGridDataSender"], None),
        "taskHubContributor": ("taskHub", ROLE["durableTaskDataContributor"], "useDurableTaskScheduler"),
    }
    # each scope symbol is one resource of the expected type (never a resource group)
    resources = parsed["resources"]
    assert resources["storage"]["type"] == "Microsoft.Storage/storageAccounts"
    assert resources["applicationInsights"]["type"] == "Microsoft.Insights/components"
    assert resources["downstreamTopic"]["type"] == "Microsoft.EventGrid/topics"
    assert resources["taskHub"]["type"] == "Microsoft.DurableTask/schedulers/taskHubs"
    assert not [role for _, role, _ in got.values() if role in BROAD_BUILTINS]


def test_main_wires_app_access_to_the_app_identity_and_downstream_topic(bicep: dict) -> None:
    modules = bicep["main.bicep"]["modules"]
    params, condition, loop = unwrap(modules["appAccess"]["config"])
    params = params["params"]
    assert condition is None and loop is None
    assert params["principalId"] == _output("functionApp", "principalId")
    assert params["downstreamTopicName"] == _output("downstreamTopic", "topicName")
    assert params["storageAccountName"] == _output("storage", "storageAccountName")


def _output(module: str, name: str) -> dict[str, Any]:
    return {
        "operator": {
            "type": "property_accessor",
            "operands": {
                "operand_1": module,
                "operand_2": {
                    "operator": {"type": "property_accessor", "operands": {"operand_1": "outputs", "operand_2": name}}
                },
            },
        }
    }


def test_topic_publishers_are_never_the_app(bicep: dict) -> None:
    """topic.bicep assigns EventGrid Data Sender only to its publisherPrincipalIds; main passes the
    upstream publishers to the upstream topic and nothing to the downstream one."""
    parsed = bicep["modules/topic.bicep"]
    (_, (body, _, loop)), *rest = role_assignments(parsed).items()
    assert not rest
    assert loop == {"type": "array", "detail": {"item_name": "principalId", "array_name": "publisherPrincipalIds"}}
    assert body["scope"] == "topic"
    assert role_id_of(body, parsed["variables"]) == ROLE["eventGridDataSender"]
    modules = bicep["main.bicep"]["modules"]
    down, _, _ = unwrap(modules["downstreamTopic"]["config"])
    up, up_condition, _ = unwrap(modules["upstreamTopic"]["config"])
    assert "publisherPrincipalIds" not in down["params"]
    assert up["params"]["publisherPrincipalIds"] == "upstreamPublisherPrincipalIds"
    assert up_condition == "createUpstreamTopic"


def test_beacon_topic_senders_are_the_vm_identities_and_it_feeds_the_beacon_function(bicep: dict) -> None:
    """The beacon topic (docs/beacon.md) gets EventGrid Data Sender for the VM identities listed in
    beaconSenderPrincipalIds only, and its subscription delivers the beacon type to beacon_event."""
    modules = bicep["main.bicep"]["modules"]
    topic, topic_condition, _ = unwrap(modules["beaconTopic"]["config"])
    assert topic["params"]["publisherPrincipalIds"] == "beaconSenderPrincipalIds"
    assert topic_condition is None
    subscription, condition, _ = unwrap(modules["beaconSubscription"]["config"])
    assert modules["beaconSubscription"]["detail"]["path"] == "modules/upstream-subscription.bicep"
    assert subscription["params"]["functionName"] == "beacon_event"
    assert subscription["params"]["includedEventTypes"] == ["BackupChain.Beacon.SnapshotTaken"]
    assert condition == "deployUpstreamSubscription"


def test_vault_role_actions_are_exactly_least_privilege(bicep: dict) -> None:
    parsed = bicep["modules/vault-role.bicep"]
    variables = parsed["variables"]
    assert set(variables["readAndTriggerActions"]["value"]) == READ_AND_TRIGGER
    assert len(variables["readAndTriggerActions"]["value"]) == len(READ_AND_TRIGGER)
    assert set(variables["protectionActions"]["value"]) == PROTECTION
    # protectedItems/write is added only when gcMode == 'weekend-window' or remediate (resume) is on
    assert variables["protectionWrite"]["value"] == {
        "operator": {
            "type": "or",
            "operands": {
                "operand_1": {
                    "operator": {"type": "equals", "operands": {"operand_1": "gcMode", "operand_2": "weekend-window"}}
                },
                "operand_2": "remediate",
            },
        }
    }
    assert parsed["parameters"]["remediate"]["default"] is False
    assert variables["actions"]["value"] == {
        "operator": {
            "type": "conditional",
            "operands": {
                "condition": "protectionWrite",
                "true_value": {
                    "function": {
                        "type": "concat",
                        "parameters": {"arg_1": "readAndTriggerActions", "arg_2": "protectionActions"},
                    }
                },
                "false_value": "readAndTriggerActions",
            },
        }
    }
    assert set(parsed["parameters"]["gcMode"]["decorators"][0]["argument"]) == {"weekly-policy", "weekend-window"}
    role = parsed["resources"]["vaultRole"]
    assert role["type"] == "Microsoft.Authorization/roleDefinitions"
    body, condition, loop = unwrap(role["config"])
    assert condition is None and loop is None
    assert body["properties"]["type"] == "CustomRole"
    assert body["properties"]["assignableScopes"] == "assignableScopes"
    (permissions,) = body["properties"]["permissions"]
    assert permissions == {"actions": "actions", "notActions": [], "dataActions": [], "notDataActions": []}
    every = READ_AND_TRIGGER | PROTECTION
    assert not any("*" in a for a in every)
    assert not any(word in a.lower() for a in every for word in ("restore", "delete", "cancel", "backuppolicies/write"))


def test_vault_role_is_assigned_on_each_vault_only(bicep: dict) -> None:
    parsed = bicep["modules/vault-access.bicep"]
    ((_, (body, condition, loop)),) = role_assignments(parsed).items()
    assert condition is None and loop is None
    assert body["scope"] == "vault"
    assert parsed["resources"]["vault"]["type"] == "Microsoft.RecoveryServices/vaults"
    assert parsed["resources"]["vault"]["existing"] is True
    assert body["properties"]["principalId"] == "principalId"
    assert role_id_of(body, parsed.get("variables", {})) == "roleDefinitionGuid"
    main = bicep["main.bicep"]
    module, condition, loop = unwrap(main["modules"]["vaultAccess"]["config"])
    assert loop["detail"]["array_name"] == "vaultResourceIds"
    assert condition is None
    assert module["params"]["principalId"] == _output("functionApp", "principalId")
    assert module["params"]["roleDefinitionGuid"] == _output("vaultRole", "roleDefinitionGuid")
    role_module, condition, loop = unwrap(main["modules"]["vaultRole"]["config"])
    assert condition is None and loop is None
    assert role_module["params"]["gcMode"] == "gcMode"
    assert role_module["params"]["remediate"] == "gcRemediate"
    assert main["parameters"]["gcRemediate"]["default"] is False


def test_vm_role_only_in_weekend_window_and_opt_in(bicep: dict) -> None:
    main = bicep["main.bicep"]
    grant = main["variables"]["grantVmRole"]["value"]
    text = repr(grant)
    assert "'weekend-window'" in text and "'grantVmWriteForResume'" in text and "'gcMode'" in text
    assert grant["operator"]["type"] == "and"
    assert main["parameters"]["grantVmWriteForResume"]["default"] is False
    _, condition, _ = unwrap(main["modules"]["vmRole"]["config"])
    assert condition == "grantVmRole"
    _, _, loop = unwrap(main["modules"]["vmAccess"]["config"])
    assert loop["detail"]["array_name"] == {
        "operator": {
            "type": "conditional",
            "operands": {"condition": "grantVmRole", "true_value": "vmResourceIds", "false_value": []},
        }
    }
    role = unwrap(bicep["modules/vm-role.bicep"]["resources"]["vmRole"]["config"])[0]
    (permissions,) = role["properties"]["permissions"]
    assert set(permissions["actions"]) == {
        "Microsoft.Compute/virtualMachines/read",
        "Microsoft.Compute/virtualMachines/write",
    }
    ((_, (body, _, _)),) = role_assignments(bicep["modules/vm-access.bicep"]).items()
    assert body["scope"] == "vm"


def test_no_role_definition_elsewhere(bicep: dict) -> None:
    defs = {
        path
        for path, parsed in bicep.items()
        for res in parsed.get("resources", {}).values()
        if res["type"] == "Microsoft.Authorization/roleDefinitions"
    }
    assert defs == {"modules/vault-role.bicep", "modules/vm-role.bicep"}


def test_alert_rules_query_as_their_own_identity_with_reader_on_the_component_only(bicep: dict) -> None:
    parsed = bicep["modules/alerts.bicep"]
    ((name, (body, condition, loop)),) = role_assignments(parsed).items()
    assert condition is None and loop is None
    assert body["scope"] == "applicationInsights"
    assert parsed["resources"]["applicationInsights"]["type"] == "Microsoft.Insights/components"
    assert role_id_of(body, parsed["variables"]) == ROLE["reader"]
    assert body["properties"]["principalType"] == "ServicePrincipal"
    identity = body["properties"]["principalId"]["operator"]["operands"]["operand_1"]
    assert identity == "alertIdentity"
    assert parsed["resources"]["alertIdentity"]["type"] == "Microsoft.ManagedIdentity/userAssignedIdentities"
    rules, _, loop = unwrap(parsed["resources"]["alertRules"]["config"])
    assert loop is not None
    assert rules["identity"]["type"] == "UserAssigned"
    assert rules["dependsOn"] == [name]  # granted before a rule's query is validated


def test_reader_for_resource_graph_only_on_the_listed_resource_groups(bicep: dict) -> None:
    main = bicep["main.bicep"]
    assert main["parameters"]["vmReaderResourceGroupIds"]["default"] == []
    module, condition, loop = unwrap(main["modules"]["vmReaderAccess"]["config"])
    assert condition is None and loop["detail"]["array_name"] == "vmReaderResourceGroupIds"
    assert "functionApp" in repr(module["params"]["principalId"])
    parsed = bicep["modules/vm-reader-access.bicep"]
    ((_, (body, condition, loop)),) = role_assignments(parsed).items()
    assert condition is None and loop is None and "scope" not in body  # the module's resource group
    assert role_id_of(body, parsed["variables"]) == ROLE["reader"]
    assert body["properties"]["principalType"] == "ServicePrincipal"
