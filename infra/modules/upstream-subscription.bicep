// Event Grid subscription on the upstream topic delivering to the app's `upstream_event` function
// (main.bicep also uses it for the beacon topic and the `beacon_event` function).
//
// Endpoint type 'AzureFunction' (documented for Event Grid triggers): Event Grid resolves the
// function by resource id and delivers with the function's eventgrid_extension system key itself,
// so no key is read, stored or put in a URL here, and no validation handshake is needed. The
// function must already exist, which is why this template runs AFTER the code is deployed (azd
// postdeploy hook, or main.bicep with deployUpstreamSubscription=true on a second run).
// Deployed at the upstream topic's resource group (the topic may be an existing one elsewhere).

param upstreamTopicName string
param functionAppId string
param functionName string = 'upstream_event'
param subscriptionName string = 'backupchain-upstream'

@description('Optional server-side filter on CloudEvents types (the app validates types and subjects anyway).')
param includedEventTypes array = []

resource upstreamTopic 'Microsoft.EventGrid/topics@2022-06-15' existing = {
  name: upstreamTopicName
}

resource subscription 'Microsoft.EventGrid/topics/eventSubscriptions@2022-06-15' = {
  parent: upstreamTopic
  name: subscriptionName
  properties: {
    eventDeliverySchema: 'CloudEventSchemaV1_0'
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionAppId}/functions/${functionName}'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    filter: empty(includedEventTypes) ? {} : {
      includedEventTypes: includedEventTypes
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}

output subscriptionId string = subscription.id
