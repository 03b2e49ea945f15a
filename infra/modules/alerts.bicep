// Azure Monitor log search alert rules over the app's Application Insights component, to an action
// group: the operator's existing one (actionGroupId) and/or one created here for alertEmails.
// Shapes: azure-rest-api-specs specification/monitor/.../stable/2023-12-01/scheduledQueryRule_API.json
// and stable/2023-01-01/actionGroups_API.json. What each rule means and what to do: docs/operations.md.
//
// The rules query the component (resource-centric), so they read the classic Application Insights
// tables (customEvents, customDimensions) the app's telemetry writes; tests/docs/test_infra_queries.py
// checks every query below against what telemetry.py really emits.
//
// Every rule reports an event that happened once (a run that ended, an event refused, a GC finding,
// a late snapshot): stateful (autoMitigate) and split by the dimensions that name the occurrence,
// never by VM (a fleet's weekly findings would pass the action group's 100 e-mails an hour,
// learn.microsoft.com/azure/azure-monitor/alerts/alerts-rate-limiting; the rows name the VMs),
// so a window three times the evaluation frequency tolerates ingestion delay without notifying the
// same occurrence twice; an alert resolves when its occurrence leaves the window, not when the cause
// is fixed (docs/operations.md says what to check).

param location string
param tags object
@description('Prefix of the rule names (e.g. alert-<resourceToken>).')
param namePrefix string
@description('Name of the Application Insights component (in this resource group) the rules query.')
param applicationInsightsName string
@description('Resource id of an existing action group the rules notify. Empty: none.')
param actionGroupId string = ''
@description('E-mail addresses to notify through an action group created here. Empty: none created.')
param alertEmails array = []
@minValue(1)
@description('A SnapshotCompleted event published more than this many minutes after the snapshot completed fires the lag alert.')
param snapshotLagThresholdMinutes int = 15

var createActionGroup = !empty(alertEmails)
var readerRoleId = 'acdd72a7-3385-48ef-bd42-f606fba81ae7' // Reader (built-in)
// Split the alerts by every value of a dimension column of the query.
var everyValue = [
  '*'
]

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (createActionGroup) {
  name: '${namePrefix}-ag'
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'backupchain'
    enabled: true
    emailReceivers: [for (address, i) in alertEmails: {
      name: 'email-${i}'
      emailAddress: address
      useCommonAlertSchema: true
    }]
  }
}

var actionGroupIds = concat(empty(actionGroupId) ? [] : [actionGroupId], createActionGroup ? [actionGroup.id] : [])

// The identity the rules run their queries as, with Reader on the component only: without one a
// rule queries as whoever last edited it and stops working when that person loses access. One
// user-assigned identity, granted before the rules exist (a system-assigned one could be granted
// only after its rule was created, while Azure validates the query at creation).
resource alertIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${namePrefix}-id'
  location: location
  tags: tags
}

resource alertReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, alertIdentity.id, readerRoleId)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', readerRoleId)
    principalId: alertIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// key: rule name suffix; severity 0 (critical) .. 4 (verbose). The queries carry no time filter:
// the rule's windowSize bounds them.
var rules = [
  {
    key: 'run-failed-vms'
    displayName: 'Backup chain run ended with failed VMs'
    description: 'A chain run ended with outcome completedWithFailures (ChainCompleted): at least one VM was not backed up.'
    severity: 2
    frequency: 'PT5M'
    window: 'PT15M'
    query: '''
customEvents
| where name endswith ".ChainCompleted" and tostring(customDimensions.outcome) == "completedWithFailures"
| project timestamp, chain = tostring(customDimensions.chain), runId = tostring(customDimensions.runId),
          counts = tostring(customDimensions.counts)
'''
    aggregation: 'Count'
    measure: ''
    threshold: 0
    dimensions: [
      {
        name: 'chain'
        operator: 'Include'
        values: everyValue
      }
      {
        name: 'runId'
        operator: 'Include'
        values: everyValue
      }
    ]
  }
  {
    key: 'events-undelivered'
    displayName: 'Backup chain downstream events undelivered'
    description: 'The downstream Event Grid topic refused events, or did not accept them within delivery.retryFor (EventUndelivered).'
    severity: 1
    frequency: 'PT5M'
    window: 'PT15M'
    query: '''
customEvents
| where name == "EventUndelivered"
| project timestamp, eventType = tostring(customDimensions.eventType), runId = tostring(customDimensions.runId),
          reason = tostring(customDimensions.reason)
'''
    aggregation: 'Count'
    measure: ''
    threshold: 0
    dimensions: [
      {
        name: 'eventType'
        operator: 'Include'
        values: everyValue
      }
    ]
  }
  {
    key: 'gc-findings'
    displayName: 'Backup chain GC check flagged a VM'
    description: 'The weekly GC check found a VM with no scheduled backup in 7 days (GcOverdue) or near the instant-restore snapshot limit (RestorePointsNearLimit).'
    severity: 2
    frequency: 'PT15M'
    window: 'PT45M'
    query: '''
customEvents
| where name endswith ".GcOverdue" or name endswith ".RestorePointsNearLimit"
| project timestamp, finding = tostring(customDimensions.finding), vmId = tostring(customDimensions.vmId)
'''
    aggregation: 'Count'
    measure: ''
    threshold: 0
    dimensions: [
      {
        name: 'finding'
        operator: 'Include'
        values: everyValue
      }
    ]
  }
  {
    key: 'gc-resume-failed'
    displayName: 'Backup chain GC could not resume protection'
    description: 'A GC window (or remediation) could not resume protection of a VM (GcResumeFailed): its scheduled backups do not run until protection is resumed.'
    severity: 1
    frequency: 'PT5M'
    window: 'PT15M'
    query: '''
customEvents
| where name endswith ".GcResumeFailed"
| project timestamp, vmId = tostring(customDimensions.vmId), errorCode = tostring(customDimensions.errorCode)
'''
    aggregation: 'Count'
    measure: ''
    threshold: 0
    dimensions: [
      {
        name: 'errorCode'
        operator: 'Include'
        values: everyValue
      }
    ]
  }
  {
    key: 'snapshot-lag'
    displayName: 'Backup chain snapshot reported late'
    description: 'The app published a SnapshotCompleted event (its time) more than ${snapshotLagThresholdMinutes} minutes after Azure completed the snapshot (snapshotCompletedAt); an event the topic did not take is the events-undelivered rule.'
    severity: 3
    frequency: 'PT5M'
    window: 'PT15M'
    query: '''
customEvents
| where name endswith ".SnapshotCompleted"
| extend completed = todatetime(customDimensions.snapshotCompletedAt), published = todatetime(customDimensions.eventTime)
| project timestamp, chain = tostring(customDimensions.chain), vmId = tostring(customDimensions.vmId),
          lagMinutes = datetime_diff('second', published, completed) / 60.0
'''
    aggregation: 'Maximum'
    measure: 'lagMinutes'
    threshold: snapshotLagThresholdMinutes
    dimensions: [
      {
        name: 'chain'
        operator: 'Include'
        values: everyValue
      }
    ]
  }
]

resource alertRules 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [for rule in rules: {
  name: '${namePrefix}-${rule.key}'
  location: location
  tags: tags
  kind: 'LogAlert'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${alertIdentity.id}': {}
    }
  }
  properties: {
    displayName: rule.displayName
    description: rule.description
    severity: rule.severity
    enabled: true
    scopes: [
      applicationInsights.id
    ]
    evaluationFrequency: rule.frequency
    windowSize: rule.window
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: rule.query
          timeAggregation: rule.aggregation
          metricMeasureColumn: empty(rule.measure) ? null : rule.measure
          operator: 'GreaterThan'
          threshold: rule.threshold
          dimensions: rule.dimensions
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: actionGroupIds
    }
  }
  dependsOn: [
    alertReader
  ]
}]
