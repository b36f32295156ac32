import { sql } from 'drizzle-orm'
import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core'

// Timestamps are integer milliseconds since the epoch: exact, sortable, and what
// JavaScript's Date speaks natively. The API renders them as Unix seconds.
const createdAt = () => integer('created_at').notNull()

export const tenants = sqliteTable('tenants', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  createdAt: createdAt(),
  // Per-meter limits for a period ([] = none), enforced by the tenant's UsageQuota object.
  usageLimits: text('usage_limits', { mode: 'json' })
    .$type<{ meter: string; period: 'day' | 'month'; limit: number }[]>()
    .notNull()
    .default(sql`'[]'`),
})

export const apiKeys = sqliteTable(
  'api_keys',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id').notNull().references(() => tenants.id),
    name: text('name').notNull(),
    keyHash: text('key_hash').notNull(),
    prefix: text('prefix').notNull(),
    scopes: text('scopes', { mode: 'json' }).$type<string[]>().notNull(),
    createdAt: createdAt(),
    lastUsedAt: integer('last_used_at'),
    revokedAt: integer('revoked_at'),
  },
  (t) => [uniqueIndex('api_keys_key_hash').on(t.keyHash), index('api_keys_tenant').on(t.tenantId, t.id)],
)

export const models = sqliteTable(
  'models',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id').notNull().references(() => tenants.id),
    name: text('name').notNull(),
    format: text('format').notNull(),
    task: text('task').notNull(),
    labels: text('labels', { mode: 'json' }).$type<string[]>(),
    input: text('input', { mode: 'json' }).$type<{ shape: number[]; dtype: string }>(),
    policy: text('policy', { mode: 'json' }).$type<Record<string, unknown>>(),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex('models_tenant_name').on(t.tenantId, t.name), index('models_tenant').on(t.tenantId, t.id)],
)

export const modelVersions = sqliteTable(
  'model_versions',
  {
    id: text('id').primaryKey(),
    modelId: text('model_id').notNull().references(() => models.id),
    tenantId: text('tenant_id').notNull().references(() => tenants.id),
    version: text('version').notNull(),
    stage: text('stage').notNull().default('staging'),
    verification: text('verification').notNull().default('unverified'),
    verifiedAt: integer('verified_at'),
    // For an ONNX version: its real inputs and outputs, as a runner loaded
    // them, and its answers on the behavioural probe, checked at every load.
    io: text('io', { mode: 'json' }).$type<{ inputs: { name: string; type: string; shape: (number | string)[] }[]; outputs: { name: string; type: string; shape: (number | string)[] }[] }>(),
    probe: text('probe', { mode: 'json' }).$type<{ seed: number; rows: number; outputs: Record<string, number[]> }>(),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex('model_versions_model_version').on(t.modelId, t.version)],
)

// One row per file of a version. A one-file version (an ONNX model) has one row;
// a safetensors model has its shards, index, config and tokenizer files.
export const modelFiles = sqliteTable(
  'model_files',
  {
    id: text('id').primaryKey(),
    versionId: text('version_id').notNull().references(() => modelVersions.id),
    tenantId: text('tenant_id').notNull().references(() => tenants.id),
    name: text('name').notNull(),
    artifactKey: text('artifact_key').notNull(),
    sha256: text('sha256').notNull(),
    size: integer('size').notNull(),
    verification: text('verification').notNull().default('unverified'),
    verifiedAt: integer('verified_at'),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex('model_files_version_name').on(t.versionId, t.name)],
)

// Where a version produced by a job came from: the job, the merge config as
// given, and every input version with its files' SHA-256s. One row per
// produced version, written in the same batch that registers the version.
export const modelLineage = sqliteTable('model_lineage', {
  versionId: text('version_id')
    .primaryKey()
    .references(() => modelVersions.id),
  tenantId: text('tenant_id').notNull().references(() => tenants.id),
  jobId: text('job_id').notNull(),
  config: text('config', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
  inputs: text('inputs', { mode: 'json' })
    .$type<{ ref: string; model_id: string; version: string; files: { name: string; sha256: string }[] }[]>()
    .notNull(),
  createdAt: createdAt(),
})

// Large files arrive in ordered parts through R2 multipart. The SHA-256 is
// computed incrementally across parts, so its resumable state lives here.
export const uploads = sqliteTable(
  'uploads',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id').notNull().references(() => tenants.id),
    filename: text('filename').notNull(),
    purpose: text('purpose').notNull(),
    mimeType: text('mime_type'),
    bytes: integer('bytes').notNull(),
    status: text('status').notNull().default('pending'),
    artifactKey: text('artifact_key').notNull(),
    r2UploadId: text('r2_upload_id').notNull(),
    nextPart: integer('next_part').notNull().default(1),
    partSize: integer('part_size'),
    receivedBytes: integer('received_bytes').notNull().default(0),
    hashState: text('hash_state').notNull(),
    parts: text('parts', { mode: 'json' }).$type<{ partNumber: number; etag: string; size: number }[]>().notNull(),
    partClaimedAt: integer('part_claimed_at'),
    sha256: text('sha256'),
    jobId: text('job_id'),
    createdAt: createdAt(),
    expiresAt: integer('expires_at').notNull(),
    completedAt: integer('completed_at'),
  },
  (t) => [index('uploads_tenant').on(t.tenantId, t.id)],
)

export const jobs = sqliteTable(
  'jobs',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id').notNull().references(() => tenants.id),
    keyId: text('key_id'),
    type: text('type').notNull(),
    params: text('params', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
    status: text('status', { enum: ['queued', 'running', 'succeeded', 'failed', 'cancelled'] }).notNull().default('queued'),
    progressDone: integer('progress_done').notNull().default(0),
    progressTotal: integer('progress_total'),
    progressUnit: text('progress_unit'),
    // Each dispatch to a runner is an attempt; runner messages carry the attempt
    // they belong to, so reports from a runner that lost the job are ignored.
    attempts: integer('attempts').notNull().default(0),
    runnerId: text('runner_id'),
    result: text('result', { mode: 'json' }).$type<Record<string, unknown>>(),
    error: text('error', { mode: 'json' }).$type<{ message: string; code: string }>(),
    lastDispatchError: text('last_dispatch_error'),
    requestId: text('request_id'),
    createdAt: createdAt(),
    startedAt: integer('started_at'),
    updatedAt: integer('updated_at').notNull(),
    finishedAt: integer('finished_at'),
  },
  (t) => [index('jobs_tenant').on(t.tenantId, t.id), index('jobs_runner_status').on(t.runnerId, t.status)],
)

export const runners = sqliteTable('runners', {
  id: text('id').primaryKey(),
  url: text('url').notNull(),
  capacity: integer('capacity').notNull(),
  inFlight: integer('in_flight').notNull().default(0),
  jobTypes: text('job_types', { mode: 'json' }).$type<string[]>().notNull(),
  status: text('status').notNull().default('active'),
  registeredAt: integer('registered_at').notNull(),
  heartbeatAt: integer('heartbeat_at').notNull(),
})

export const usageEvents = sqliteTable(
  'usage_events',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id').notNull(),
    keyId: text('key_id'),
    meter: text('meter').notNull(),
    value: integer('value').notNull(),
    timestamp: integer('timestamp').notNull(),
    requestId: text('request_id').notNull(),
    recordedAt: integer('recorded_at').notNull(),
    // The ledger is append-only: a mistake is answered by a compensating
    // event (kind 'correction', a negative or positive value, a reason).
    kind: text('kind', { enum: ['usage', 'correction'] }).notNull().default('usage'),
    reason: text('reason'),
  },
  (t) => [index('usage_events_tenant_time').on(t.tenantId, t.timestamp)],
)

// Hourly and daily totals per tenant, key ('' for none) and meter. A trigger
// on usage_events (migrations/0002) adds each newly inserted event exactly
// once: an ignored duplicate insert fires nothing.
export const usageRollups = sqliteTable(
  'usage_rollups',
  {
    tenantId: text('tenant_id').notNull(),
    meter: text('meter').notNull(),
    granularity: text('granularity', { enum: ['hour', 'day'] }).notNull(),
    bucketStart: integer('bucket_start').notNull(),
    keyId: text('key_id').notNull(),
    value: integer('value').notNull(),
    events: integer('events').notNull(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.meter, t.granularity, t.bucketStart, t.keyId] })],
)

export const idempotencyRecords = sqliteTable(
  'idempotency_records',
  {
    scope: text('scope').notNull(),
    key: text('key').notNull(),
    fingerprint: text('fingerprint').notNull(),
    state: text('state').notNull(),
    status: integer('status'),
    headers: text('headers', { mode: 'json' }).$type<Record<string, string>>(),
    body: text('body'),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.scope, t.key] })],
)

// Signatures seen on the runner channel inside the ±300 s window: a replayed
// request finds its signature here and is refused.
export const runnerSignatures = sqliteTable('runner_signatures', {
  signature: text('signature').primaryKey(),
  seenAt: integer('seen_at').notNull(),
})

// Messages that exhausted their retries: kept for an operator, never dropped.
export const deadLetters = sqliteTable('dead_letters', {
  id: text('id').primaryKey(),
  queue: text('queue').notNull(),
  body: text('body', { mode: 'json' }).notNull(),
  attempts: integer('attempts').notNull(),
  createdAt: integer('created_at').notNull().default(sql`(unixepoch() * 1000)`),
  // Set once a dead-lettered usage message has been written to the ledger
  // after all (src/edge/usage/replay-usage-dead-letters.ts).
  replayedAt: integer('replayed_at'),
})

// Endpoints a tenant registers for events (`job.*`, `usage.*`, …). The signing
// secret is sealed with MOAT_SECRETS_KEY (see src/shared/secret-box.ts).
export const webhooks = sqliteTable(
  'webhooks',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id').notNull().references(() => tenants.id),
    url: text('url').notNull(),
    events: text('events', { mode: 'json' }).$type<string[]>().notNull(),
    description: text('description'),
    sealedSecret: text('sealed_secret').notNull(),
    createdAt: createdAt(),
    deletedAt: integer('deleted_at'),
  },
  (t) => [index('webhooks_tenant').on(t.tenantId, t.id)],
)

// One row per event per endpoint: the delivery log. Its id is derived from
// the event and the endpoint, so an event emitted twice is delivered once.
export const webhookDeliveries = sqliteTable(
  'webhook_deliveries',
  {
    id: text('id').primaryKey(),
    webhookId: text('webhook_id').notNull().references(() => webhooks.id),
    tenantId: text('tenant_id').notNull(),
    eventId: text('event_id').notNull(),
    eventType: text('event_type').notNull(),
    payload: text('payload').notNull(),
    status: text('status', { enum: ['pending', 'delivered', 'failed'] }).notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    lastStatus: integer('last_status'),
    lastError: text('last_error'),
    createdAt: createdAt(),
    deliveredAt: integer('delivered_at'),
  },
  // The cron sweep looks for pending deliveries whose message was lost.
  (t) => [index('webhook_deliveries_webhook').on(t.webhookId, t.id), index('webhook_deliveries_pending').on(t.createdAt).where(sql`status = 'pending'`)],
)

// Push sinks to billing providers. The credential is sealed.
export const billingSinks = sqliteTable(
  'billing_sinks',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id').notNull().references(() => tenants.id),
    provider: text('provider', { enum: ['stripe', 'openmeter', 'lago'] }).notNull(),
    url: text('url').notNull(),
    customer: text('customer').notNull(),
    sealedCredential: text('sealed_credential').notNull(),
    createdAt: createdAt(),
    deletedAt: integer('deleted_at'),
  },
  (t) => [index('billing_sinks_tenant').on(t.tenantId)],
)

// Events waiting to be pushed to a sink. A trigger (migrations/0005) adds a
// row for every newly recorded event and every active sink of its tenant, in
// the same transaction as the event, so a crash between recording and
// sending loses nothing; the drain groups them into deliveries of 100.
export const sinkOutbox = sqliteTable(
  'sink_outbox',
  {
    sinkId: text('sink_id').notNull(),
    eventId: text('event_id').notNull(),
    deliveryId: text('delivery_id'),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.sinkId, t.eventId] }), index('sink_outbox_pending').on(t.sinkId, t.deliveryId)],
)

// One row per batch of at most 100 events sent (or to be sent) to a sink.
export const sinkDeliveries = sqliteTable(
  'sink_deliveries',
  {
    id: text('id').primaryKey(),
    sinkId: text('sink_id').notNull().references(() => billingSinks.id),
    tenantId: text('tenant_id').notNull(),
    eventIds: text('event_ids', { mode: 'json' }).$type<string[]>().notNull(),
    status: text('status', { enum: ['pending', 'delivered', 'failed'] }).notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    sent: integer('sent').notNull().default(0),
    skipped: text('skipped', { mode: 'json' }).$type<{ id: string; reason: string }[]>(),
    lastError: text('last_error'),
    createdAt: createdAt(),
    deliveredAt: integer('delivered_at'),
  },
  // The cron sweep looks for pending deliveries whose message was lost.
  (t) => [index('sink_deliveries_sink').on(t.sinkId, t.id), index('sink_deliveries_pending').on(t.createdAt).where(sql`status = 'pending'`)],
)

// A tenant's moderation policy as the tenant wrote it (categories it names,
// its lists, its mode); what it leaves out takes the defaults when read.
export const moderationPolicies = sqliteTable('moderation_policies', {
  tenantId: text('tenant_id').primaryKey(),
  policy: text('policy', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
  updatedAt: integer('updated_at').notNull(),
})

// The guard's view of each client (an API key, or a key and an end-user id),
// written by its ClientGuard object when its action or risk changes, so
// `GET /v1/guard/clients` reads one table instead of waking every object.
export const guardClients = sqliteTable(
  'guard_clients',
  {
    tenantId: text('tenant_id').notNull(),
    clientId: text('client_id').notNull(),
    keyId: text('key_id').notNull(),
    endUser: text('end_user'),
    risk: integer('risk_bp').notNull(),
    action: text('action', { enum: ['observe', 'degrade', 'throttle', 'block'] }).notNull(),
    signals: text('signals', { mode: 'json' }).$type<unknown[]>().notNull(),
    stateBytes: integer('state_bytes').notNull(),
    updatedAt: integer('updated_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.clientId] }), index('guard_clients_risk').on(t.tenantId, t.risk)],
)

// Detections and actions: every escalation of a client's action, every
// admin reset. Append-only.
export const guardEvents = sqliteTable(
  'guard_events',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id').notNull(),
    clientId: text('client_id').notNull(),
    keyId: text('key_id').notNull(),
    endUser: text('end_user'),
    modelId: text('model_id'),
    type: text('type', { enum: ['escalated', 'reset'] }).notNull(),
    action: text('action', { enum: ['observe', 'degrade', 'throttle', 'block'] }).notNull(),
    previousAction: text('previous_action', { enum: ['observe', 'degrade', 'throttle', 'block'] }).notNull(),
    risk: integer('risk_bp').notNull(),
    signals: text('signals', { mode: 'json' }).$type<unknown[]>().notNull(),
    createdAt: createdAt(),
  },
  (t) => [index('guard_events_tenant').on(t.tenantId, t.id)],
)

// DAWN: one row per marked answer (a classifier query whose label the guard
// changed on purpose) or control, per model and client; the input itself is in R2 at
// `inputKey`. The id derives from (model, client, input), so asking the same
// input again records nothing new.
export const watermarkQueries = sqliteTable(
  'watermark_queries',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id').notNull(),
    modelId: text('model_id').notNull(),
    clientId: text('client_id').notNull(),
    trueLabel: integer('true_label').notNull(),
    watermarkLabel: integer('watermark_label').notNull(),
    // 'mark': answered with watermarkLabel instead of trueLabel; 'control':
    // answered truthfully (watermarkLabel = trueLabel), kept to measure how
    // often a suspect disagrees with the model at all.
    kind: text('kind', { enum: ['mark', 'control'] }).notNull().default('mark'),
    classes: integer('classes').notNull(),
    inputKey: text('input_key').notNull(),
    createdAt: createdAt(),
  },
  (t) => [index('watermark_queries_model').on(t.tenantId, t.modelId, t.id)],
)

// Routes to a model owner's own endpoints (the protected proxy). Each target's
// headers (credentials) are sealed; only their names are ever shown.
export const proxyRoutes = sqliteTable(
  'proxy_routes',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id').notNull().references(() => tenants.id),
    name: text('name').notNull(),
    kind: text('kind', { enum: ['openai', 'json-classifier'] }).notNull(),
    targets: text('targets', { mode: 'json' })
      .$type<{ url: string; weight: number; headerNames: string[]; sealedHeaders: string | null }[]>()
      .notNull(),
    strategy: text('strategy', { mode: 'json' }).$type<{ mode: 'fallback' | 'loadbalance'; on_status: number[]; timeout_ms: number; retries: number }>().notNull(),
    probabilitiesPath: text('probabilities_path'),
    policy: text('policy', { mode: 'json' }).$type<Record<string, unknown>>(),
    createdAt: createdAt(),
    updatedAt: integer('updated_at').notNull(),
    deletedAt: integer('deleted_at'),
  },
  (t) => [index('proxy_routes_tenant_name').on(t.tenantId, t.name)],
)

// What moderation flagged on proxied traffic: categories and the action
// taken, never the text itself (it may hold personal data).
export const moderationEvents = sqliteTable(
  'moderation_events',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id').notNull(),
    keyId: text('key_id'),
    source: text('source').notNull(),
    direction: text('direction', { enum: ['input', 'output'] }).notNull(),
    action: text('action').notNull(),
    categories: text('categories', { mode: 'json' }).$type<string[]>().notNull(),
    scores: text('scores', { mode: 'json' }).$type<Record<string, number>>().notNull(),
    requestId: text('request_id').notNull(),
    createdAt: createdAt(),
  },
  (t) => [index('moderation_events_tenant_time').on(t.tenantId, t.createdAt)],
)

// A dashboard sign-in: the cookie holds only the id; the key it was made with
// is checked on every request, so revoking the key ends its sessions.
export const dashboardSessions = sqliteTable(
  'dashboard_sessions',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id').notNull().references(() => tenants.id),
    keyId: text('key_id').notNull().references(() => apiKeys.id),
    csrfToken: text('csrf_token').notNull(),
    createdAt: createdAt(),
    expiresAt: integer('expires_at').notNull(),
  },
  (t) => [index('dashboard_sessions_key').on(t.keyId)],
)

// One row per authenticated request observed for the dashboard (outcome and
// latency bucket, never billed), kept two days so that a redelivered
// observation is still recognised and ignored; a trigger (migrations/0016)
// adds each new row to traffic_rollups.
export const requestObservations = sqliteTable(
  'request_observations',
  {
    requestId: text('request_id').primaryKey(),
    tenantId: text('tenant_id').notNull(),
    keyId: text('key_id'),
    outcome: text('outcome', { enum: ['served', 'client_error', 'refused', 'fault'] }).notNull(),
    latencyBucket: integer('latency_bucket').notNull(),
    timestamp: integer('timestamp').notNull(),
  },
  (t) => [index('request_observations_time').on(t.timestamp)],
)

// Requests per tenant, key ('' for none), hour, outcome and latency bucket:
// what the overview's 429 count and p50 are read from.
export const trafficRollups = sqliteTable(
  'traffic_rollups',
  {
    tenantId: text('tenant_id').notNull(),
    hourStart: integer('hour_start').notNull(),
    keyId: text('key_id').notNull(),
    outcome: text('outcome', { enum: ['served', 'client_error', 'refused', 'fault'] }).notNull(),
    latencyBucket: integer('latency_bucket').notNull(),
    requests: integer('requests').notNull(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.hourStart, t.keyId, t.outcome, t.latencyBucket] })],
)
