// Linux Flex Consumption function app (Python 3.11, v2 programming model) with a system-assigned
// managed identity. Every connection is identity-based: AzureWebJobsStorage__* (no account key),
// the deployment container (SystemAssignedIdentity), Application Insights (AAD ingestion), the
// downstream topic (no key) and, optionally, the Durable Task Scheduler (Authentication=ManagedIdentity).
// No secret is stored in app settings.

param location string
param tags object
param functionAppName string
param planName string
param storageAccountName string
param blobEndpoint string
param queueEndpoint string
param tableEndpoint string
param deploymentContainerUrl string
param applicationInsightsConnectionString string
param downstreamTopicEndpoint string
@description('The chain configuration file, relative to the app root (shipped in the deployment package).')
param chainConfigFile string
param durableTaskSchedulerEndpoint string = ''
param durableTaskHubName string = ''

@description('Upper bound for scale-out (Flex Consumption).')
param maximumInstanceCount int = 40

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

var useDurableTaskScheduler = !empty(durableTaskSchedulerEndpoint)

var baseSettings = [
  // Identity-based host storage: with a system-assigned identity the account name (plus explicit
  // service URIs, which also covers sovereign clouds) is all the host and the Durable Functions
  // Azure Storage provider need.
  {
    name: 'AzureWebJobsStorage__accountName'
    value: storageAccountName
  }
  {
    name: 'AzureWebJobsStorage__blobServiceUri'
    value: blobEndpoint
  }
  {
    name: 'AzureWebJobsStorage__queueServiceUri'
    value: queueEndpoint
  }
  {
    name: 'AzureWebJobsStorage__tableServiceUri'
    value: tableEndpoint
  }
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: applicationInsightsConnectionString
  }
  {
    name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
    value: 'Authorization=AAD'
  }
  // The chain configuration: a file in the deployment package, named here (a relative path is
  // relative to the app root). Not the JSON itself: Linux refuses one variable over 128 KiB.
  {
    name: 'BACKUPCHAIN_CONFIG'
    value: chainConfigFile
  }
  {
    name: 'ARM_ENDPOINT'
    value: environment().resourceManager
  }
  {
    name: 'DOWNSTREAM_TOPIC_ENDPOINT'
    value: downstreamTopicEndpoint
  }
  // The app's own resource id: the CloudEvents source of chain and GC events. Built from the
  // name, not from the site symbol, so the site does not depend on itself.
  {
    name: 'APP_RESOURCE_ID'
    value: resourceId('Microsoft.Web/sites', functionAppName)
  }
]

// Needs host.json extensions.durableTask.storageProvider = { type: "azureManaged",
// connectionStringName: "DURABLE_TASK_SCHEDULER_CONNECTION_STRING" } (see docs/deploy.md).
var dtsSettings = [
  {
    name: 'DURABLE_TASK_SCHEDULER_CONNECTION_STRING'
    value: 'Endpoint=${durableTaskSchedulerEndpoint};Authentication=ManagedIdentity'
  }
  {
    name: 'TASKHUB_NAME'
    value: durableTaskHubName
  }
]

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225:Zone redundancy is a regional Flex Consumption option not available everywhere; the workload tolerates instance loss (Durable replays from its task hub).
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_212:Flex Consumption (FC1) has no fixed worker count to set; it scales out per function group on demand up to maximumInstanceCount and replaces failed instances.
  // checkov:skip=CKV_AZURE_213:No HTTP health endpoint by design: the Functions platform monitors Flex Consumption instances itself, and a health-check ping would keep instances running and bill executions.
  // checkov:skip=CKV_AZURE_222:Event Grid delivery to the upstream_event function and operators' calls to the function-key-protected /api routes arrive over the public endpoint; put the app behind VNet integration/private endpoints if the network must be closed.
  // checkov:skip=CKV_AZURE_17:Client certificates are not used: callers authenticate with function keys and Event Grid delivers with its system key.
  name: functionAppName
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      remoteDebuggingEnabled: false
      appSettings: (useDurableTaskScheduler) ? concat(baseSettings, dtsSettings) : baseSettings
    }
  }
}

// Basic (publishing-profile) credentials off: azd and `az functionapp deploy` use Entra tokens.
resource ftpPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2023-12-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2023-12-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

output functionAppId string = functionApp.id
output functionAppName string = functionApp.name
output defaultHostName string = functionApp.properties.defaultHostName
output principalId string = functionApp.identity.principalId
