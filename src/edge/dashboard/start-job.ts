import { eq } from 'drizzle-orm'
import type { Context } from 'hono'
import { MergeConfigError, parseMergeConfig } from '../../shared/merge-config.ts'
import { versionNameSchema } from '../artifacts/artifact-names.ts'
import { database } from '../db/client.ts'
import { tenants } from '../db/schema.ts'
import type { AppEnv, AuthContext } from '../env.ts'
import { ApiError } from '../errors.ts'
import { enqueueJob, verifyArtifactParams } from '../jobs/create-job.ts'
import type { JobRow } from '../jobs/job-view.ts'
import { mergeParams } from '../jobs/merge-params.ts'
import { quotaStub } from '../middleware/enforce-quota.ts'
import { meterUsage } from '../usage/meter-usage.ts'
import type { DashboardSession } from './session.ts'

export type JobForm = { kind: 'verify'; target: string } | { kind: 'merge'; config: string; outputVersion: string }

// The dashboard starts the same jobs as POST /v1/jobs and POST /v1/merges,
// through the same code, billed the same way (one `jobs.created`) and refused
// the same way when a limited meter's period is spent: signing in with the
// key is what stands in for sending it.
export async function startJob(c: Context<AppEnv>, session: DashboardSession, form: JobForm): Promise<JobRow> {
  const db = database(c.env)
  const [tenant] = await db.select({ limits: tenants.usageLimits }).from(tenants).where(eq(tenants.id, session.tenantId))
  const auth: AuthContext = { tenantId: session.tenantId, keyId: session.keyId, scopes: ['admin'], limits: tenant?.limits ?? [] }
  const otherLimits = auth.limits.filter((limit) => limit.meter !== 'requests')
  if (otherLimits.length > 0) {
    const refused = (await quotaStub(c.env, auth.tenantId).admit([], [...otherLimits])).find((decision) => !decision.allowed)
    if (refused) throw new ApiError(429, `Quota exceeded: ${refused.used} of ${refused.limit} ${refused.meter} this ${refused.period}`, { code: 'quota_exceeded' })
  }
  const job = form.kind === 'verify' ? await verifyJob(c, auth, form.target) : await mergeJob(c, auth, form.config, form.outputVersion)
  c.set('auth', auth)
  await meterUsage(c, 'jobs.created', 1)
  return job
}

// `target` is `<model id>/<version>`, as the form's select offers it.
async function verifyJob(c: Context<AppEnv>, auth: AuthContext, target: string): Promise<JobRow> {
  const slash = target.indexOf('/')
  if (slash <= 0) throw new ApiError(400, 'Choose a model version to verify', { param: 'target' })
  const params = await verifyArtifactParams(c.env, auth.tenantId, { type: 'verify_artifact', model: target.slice(0, slash), version: target.slice(slash + 1) })
  return enqueueJob(c.env, auth, { type: 'verify_artifact', params, requestId: c.get('requestId') })
}

async function mergeJob(c: Context<AppEnv>, auth: AuthContext, text: string, outputVersion: string): Promise<JobRow> {
  if (outputVersion !== '' && !versionNameSchema.safeParse(outputVersion).success) {
    throw new ApiError(400, 'The output version must be 1 to 64 letters, digits, dots, dashes or underscores', { param: 'output_version' })
  }
  let config
  try {
    config = parseMergeConfig(text)
  } catch (error) {
    if (error instanceof MergeConfigError) throw new ApiError(400, `Invalid merge config: ${error.message}`, { code: 'invalid_merge_config' })
    throw error
  }
  const params = await mergeParams(c.env, auth.tenantId, config, {
    outputVersion: outputVersion === '' ? undefined : outputVersion,
    seed: 0,
    refuseNonFinite: false,
  })
  return enqueueJob(c.env, auth, { type: 'merge', params, requestId: c.get('requestId') })
}
