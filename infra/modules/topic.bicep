// One Event Grid custom topic, CloudEvents 1.0 input, Entra-only (disableLocalAuth: no access key
// or SAS token can publish). Used twice by main.bicep:
// - downstream: the app publishes BackupChain.* events here with its managed identity
//   (EventGrid Data Sender on this topic only, assigned in app-access.bicep);
// - upstream (unless an existing topic id is given): upstream systems publish their "job
//   finished" events here; the principals listed in publisherPrincipalIds get EventGrid Data
//   Sender on this topic only.

param location string
param tags object
param topicName string

@description('Principal ids (service principals / managed identities) allowed to publish to this topic.')
param publisherPrincipalIds array = []

// EventGrid Data Sender (built-in): the Microsoft.EventGrid/events/send/action data action only.
var eventGridDataSenderRoleId = 'd5a91429-5739-47e2-a06b-3470a27159e7'

resource topic 'Microsoft.EventGrid/topics@2022-06-15' = {
  // checkov:skip=CKV_AZURE_193:Publishers (the Functions app on Flex Consumption without VNet, upstream systems elsewhere) reach the topic over its public endpoint; publishing is Entra-only (local auth disabled) and limited by RBAC. Add private endpoints to close the network path.
  name: topicName
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    inputSchema: 'CloudEventSchemaV1_0'
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
    dataResidencyBoundary: 'WithinGeopair'
  }
}

resource publishers 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for principalId in publisherPrincipalIds: {
  name: guid(topic.id, principalId, eventGridDataSenderRoleId)
  scope: topic
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventGridDataSenderRoleId)
  }
}]

output topicId string = topic.id
output topicName string = topic.name
output endpoint string = topic.properties.endpoint
