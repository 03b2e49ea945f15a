// BackupChain: event-chained on-demand Azure VM backups on Durable Functions (production).
// Deploy with `azd up` (azure.yaml) or `az deployment group create -f infra/main.bicep`.
// See docs/deploy.md.
targetScope = 'resourceGroup'

@minLength(1)
@maxLength(40)
@description('azd environment name; used for resource names and the azd-env-name tag.')
param environmentName string

@description('Region for every resource this template creates (must offer Flex Consumption).')
param location string = resourceGroup().location

@minLength(1)
@description('Resource ids of the Recovery Services vaults the chains back up into: exactly the vaults of the chain configuration file (`backup-chain sync-parameters` writes them).')
param vaultResourceIds array

@description('Resource ids of the VMs the chains back up (used for the optional VM resume role).')
param vmResourceIds array = []

@description('Resource ids of the resource groups whose VMs chain targets select by resourceGroups or tags (`select`): the app reads them through Azure Resource Graph, which silently leaves out what it cannot read, so the app gets Reader on each. Empty when no target selects by resource group or tag.')
param vmReaderResourceGroupIds array = []

// The chain configuration ships in the deployment package as a file, not as an app setting: Linux
// refuses one environment variable over 128 KiB (about 950 VMs). `backup-chain validate`
// (the azd preprovision/predeploy hooks) validates it and checks vaultResourceIds/gcMode against it.
@minLength(1)
@description('The chain configuration file in the deployment package, relative to the app root (app setting BACKUPCHAIN_CONFIG).')
param chainConfigFile string = 'config/chains.json'

@allowed([
  'weekly-policy'
  'weekend-window'
])
@description('GC mode; must equal gc.mode of the chain configuration file (checked by backup-chain validate). Only weekend-window (or gcRemediate) grants stop/resume protection.')
param gcMode string = 'weekly-policy'

@description('gc.remediate of the chain configuration file (checked by backup-chain validate): grants protectedItems/write so the weekly check can resume protection it finds stopped.')
param gcRemediate bool = false

@description('Resource id of an existing Event Grid topic (CloudEvents 1.0 schema) to receive upstream events from. Empty: create one.')
param existingUpstreamTopicId string = ''

@description('Principal ids allowed to publish to the created upstream topic (EventGrid Data Sender).')
param upstreamPublisherPrincipalIds array = []

@description('Optional server-side filter on upstream CloudEvents types.')
param upstreamEventTypes array = []

@description('Create the upstream and beacon Event Grid subscriptions. Needs the code deployed first (functions upstream_event and beacon_event must exist): azd does it in its postdeploy hook; with az CLI run this template again with true.')
param deployUpstreamSubscription bool = false

@description('Principal ids of the Linux VMs\' managed identities that send snapshot beacons (docs/beacon.md): EventGrid Data Sender on the beacon topic only.')
param beaconSenderPrincipalIds array = []

@description('Use the Durable Task Scheduler backend instead of Azure Storage (also switch host.json storageProvider to azureManaged).')
param useDurableTaskScheduler bool = false

@description('weekend-window or gcRemediate only: grant VM read/write on each VM in vmResourceIds, if Azure requires linked VM access to resume protection (see modules/vm-role.bicep).')
param grantVmWriteForResume bool = false

@description('Create the Azure Monitor alert rules (modules/alerts.bicep; docs/operations.md, Alerts).')
param alertsEnabled bool = true

@description('Resource id of an existing action group the alert rules notify. Empty: none (see alertEmails).')
param alertActionGroupId string = ''

@description('E-mail addresses the alert rules notify through an action group this template creates. Empty: none created.')
param alertEmails array = []

@minValue(1)
@description('Minutes between a snapshot completing and its SnapshotCompleted event above which the snapshot-lag alert fires.')
param snapshotLagThresholdMinutes int = 15

// host.json extensions.durableTask.hubName (contract with the app; checked by tests/infra).
var durableHubName = 'BackupChainHub'
var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var tags = {
  'azd-env-name': environmentName
  app: 'backupchain'
}
var functionAppName = 'func-${resourceToken}'
var createUpstreamTopic = empty(existingUpstreamTopicId)
var upstreamTopicResourceId = (createUpstreamTopic) ? resourceId('Microsoft.EventGrid/topics', 'evgt-up-${resourceToken}') : existingUpstreamTopicId
var upstreamTopicParts = split(upstreamTopicResourceId, '/')
var vaultResourceGroupScopes = [for id in vaultResourceIds: '/subscriptions/${split(id, '/')[2]}/resourceGroups/${split(id, '/')[4]}']
var vmResourceGroupScopes = [for id in vmResourceIds: '/subscriptions/${split(id, '/')[2]}/resourceGroups/${split(id, '/')[4]}']
var grantVmRole = ((gcMode == 'weekend-window') || gcRemediate) && grantVmWriteForResume && !empty(vmResourceIds)

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    tags: tags
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
  }
}

module alerts 'modules/alerts.bicep' = if (alertsEnabled) {
  name: 'alerts'
  params: {
    location: location
    tags: tags
    namePrefix: 'alert-${resourceToken}'
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    actionGroupId: alertActionGroupId
    alertEmails: alertEmails
    snapshotLagThresholdMinutes: snapshotLagThresholdMinutes
  }
}

module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  params: {
    location: location
    tags: tags
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    nameSeed: environmentName
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    tags: tags
    storageAccountName: 'st${resourceToken}'
    deploymentContainerName: 'app-package-${resourceToken}'
  }
}

module downstreamTopic 'modules/topic.bicep' = {
  name: 'downstream-topic'
  params: {
    location: location
    tags: tags
    topicName: 'evgt-down-${resourceToken}'
  }
}

module upstreamTopic 'modules/topic.bicep' = if (createUpstreamTopic) {
  name: 'upstream-topic'
  params: {
    location: location
    tags: tags
    topicName: 'evgt-up-${resourceToken}'
    publisherPrincipalIds: upstreamPublisherPrincipalIds
  }
}

// Snapshot beacons from the Linux VMs' post-script (docs/beacon.md): Entra-only, the VMs' identities send.
module beaconTopic 'modules/topic.bicep' = {
  name: 'beacon-topic'
  params: {
    location: location
    tags: tags
    topicName: 'evgt-beacon-${resourceToken}'
    publisherPrincipalIds: beaconSenderPrincipalIds
  }
}

module durableTaskScheduler 'modules/durable-task-scheduler.bicep' = if (useDurableTaskScheduler) {
  name: 'durable-task-scheduler'
  params: {
    location: location
    tags: tags
    schedulerName: 'dts-${resourceToken}'
    taskHubName: durableHubName
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    location: location
    tags: tags
    functionAppName: functionAppName
    planName: 'plan-${resourceToken}'
    storageAccountName: storage.outputs.storageAccountName
    blobEndpoint: storage.outputs.blobEndpoint
    queueEndpoint: storage.outputs.queueEndpoint
    tableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    downstreamTopicEndpoint: downstreamTopic.outputs.endpoint
    chainConfigFile: chainConfigFile
    durableTaskSchedulerEndpoint: useDurableTaskScheduler ? durableTaskScheduler.outputs.endpoint : ''
    durableTaskHubName: useDurableTaskScheduler ? durableHubName : ''
  }
}

module appAccess 'modules/app-access.bicep' = {
  name: 'app-access'
  params: {
    principalId: functionApp.outputs.principalId
    storageAccountName: storage.outputs.storageAccountName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    downstreamTopicName: downstreamTopic.outputs.topicName
    useDurableTaskScheduler: useDurableTaskScheduler
    durableTaskSchedulerName: useDurableTaskScheduler ? durableTaskScheduler.outputs.schedulerName : ''
    durableTaskHubName: durableHubName
  }
}

module vaultRole 'modules/vault-role.bicep' = {
  name: 'vault-role'
  params: {
    gcMode: gcMode
    remediate: gcRemediate
    assignableScopes: union(vaultResourceGroupScopes, vaultResourceGroupScopes)
    roleName: 'BackupChain vault operator (${gcMode}) ${resourceToken}'
  }
}

module vaultAccess 'modules/vault-access.bicep' = [for (vaultId, i) in vaultResourceIds: {
  name: 'vault-access-${i}'
  scope: resourceGroup(split(vaultId, '/')[2], split(vaultId, '/')[4])
  params: {
    vaultName: last(split(vaultId, '/'))
    principalId: functionApp.outputs.principalId
    roleDefinitionGuid: vaultRole.outputs.roleDefinitionGuid
  }
}]

module vmRole 'modules/vm-role.bicep' = if (grantVmRole) {
  name: 'vm-role'
  params: {
    assignableScopes: union(vmResourceGroupScopes, vmResourceGroupScopes)
    roleName: 'BackupChain VM protection resume ${resourceToken}'
  }
}

// A loop over an empty list when the role is not granted (no filtered loop: keeps pycep/checkov parsing it).
module vmAccess 'modules/vm-access.bicep' = [for (vmId, i) in (grantVmRole ? vmResourceIds : []): {
  name: 'vm-access-${i}'
  scope: resourceGroup(split(vmId, '/')[2], split(vmId, '/')[4])
  params: {
    vmName: last(split(vmId, '/'))
    principalId: functionApp.outputs.principalId
    roleDefinitionGuid: grantVmRole ? vmRole.outputs.roleDefinitionGuid : ''
  }
}]

module vmReaderAccess 'modules/vm-reader-access.bicep' = [for (groupId, i) in vmReaderResourceGroupIds: {
  name: 'vm-reader-access-${i}'
  scope: resourceGroup(split(groupId, '/')[2], split(groupId, '/')[4])
  params: {
    principalId: functionApp.outputs.principalId
  }
}]

module upstreamSubscription 'modules/upstream-subscription.bicep' = if (deployUpstreamSubscription) {
  name: 'upstream-subscription'
  scope: resourceGroup(upstreamTopicParts[2], upstreamTopicParts[4])
  params: {
    upstreamTopicName: upstreamTopicParts[8]
    functionAppId: functionApp.outputs.functionAppId
    includedEventTypes: upstreamEventTypes
  }
  dependsOn: [
    upstreamTopic
    appAccess
  ]
}

// Same module, the beacon topic to the app's beacon_event function (created with the upstream one).
module beaconSubscription 'modules/upstream-subscription.bicep' = if (deployUpstreamSubscription) {
  name: 'beacon-subscription'
  params: {
    upstreamTopicName: beaconTopic.outputs.topicName
    functionAppId: functionApp.outputs.functionAppId
    functionName: 'beacon_event'
    subscriptionName: 'backupchain-beacon'
    includedEventTypes: [
      'BackupChain.Beacon.SnapshotTaken'
    ]
  }
  dependsOn: [
    appAccess
  ]
}

output AZURE_LOCATION string = location
output AZURE_RESOURCE_GROUP string = resourceGroup().name
output FUNCTION_APP_NAME string = functionApp.outputs.functionAppName
output FUNCTION_APP_ID string = functionApp.outputs.functionAppId
output FUNCTION_APP_HOST_NAME string = functionApp.outputs.defaultHostName
output FUNCTION_APP_URL string = 'https://${functionApp.outputs.defaultHostName}'
output APP_PRINCIPAL_ID string = functionApp.outputs.principalId
output DOWNSTREAM_TOPIC_ID string = downstreamTopic.outputs.topicId
output DOWNSTREAM_TOPIC_ENDPOINT string = downstreamTopic.outputs.endpoint
output UPSTREAM_TOPIC_ID string = upstreamTopicResourceId
output UPSTREAM_TOPIC_ENDPOINT string = createUpstreamTopic ? upstreamTopic.outputs.endpoint : reference(upstreamTopicResourceId, '2022-06-15').endpoint
output UPSTREAM_TOPIC_SUBSCRIPTION_ID string = upstreamTopicParts[2]
output UPSTREAM_TOPIC_RESOURCE_GROUP string = upstreamTopicParts[4]
output UPSTREAM_TOPIC_NAME string = upstreamTopicParts[8]
output BEACON_TOPIC_NAME string = beaconTopic.outputs.topicName
output BEACON_TOPIC_ENDPOINT string = beaconTopic.outputs.endpoint
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output WORKBOOK_ID string = workbook.outputs.workbookId
