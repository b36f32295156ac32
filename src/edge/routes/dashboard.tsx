import { Hono, type Context } from 'hono'
import { deleteCookie, getCookie, setCookie } from 'hono/cookie'
import type { Child } from 'hono/jsx'
import { constantTimeEqual } from '../../shared/constant-time.ts'
import { hasScope, SCOPES } from '../auth/scopes.ts'
import { GuardPage, loadGuardClients } from '../dashboard/guard-page.tsx'
import { JobPage, JobsPage, loadJob, loadJobs } from '../dashboard/jobs-page.tsx'
import { claimSubmission } from '../dashboard/form-submission.ts'
import { startJob, type JobForm } from '../dashboard/start-job.ts'
import { KeysPage, loadKeys } from '../dashboard/keys-page.tsx'
import { loadModels, ModelsPage } from '../dashboard/models-page.tsx'
import { loadCategoryGroups, loadModerationEvents, ModerationPage } from '../dashboard/moderation-page.tsx'
import { loadOverview, OverviewPage } from '../dashboard/overview-page.tsx'
import { parsePeriod } from '../dashboard/period.ts'
import { cookieOptions, endSession, newToken, readSession, startSession, type DashboardSession } from '../dashboard/session.ts'
import { MessagePage } from '../dashboard/layout.tsx'
import { SignInPage } from '../dashboard/sign-in-page.tsx'
import { loadUsage, UsagePage } from '../dashboard/usage-page.tsx'
import { database } from '../db/client.ts'
import type { AppEnv } from '../env.ts'
import { ApiError } from '../errors.ts'
import { guardStub } from '../guard/client-id.ts'
import { findGuardClient } from '../guard/find-guard-client.ts'
import { cancelJob } from '../jobs/cancel-job.ts'
import { streamJob } from '../jobs/stream-job.ts'
import { findActiveKey } from '../middleware/auth.ts'
import { filesOf, findModel, findVersion } from '../models/model-store.ts'
import { setVersionStage, STAGES, type Stage } from '../models/set-version-stage.ts'
import { readSettings } from '../settings.ts'
import { issueApiKey, revokeApiKey } from './keys.ts'

type DashboardEnv = { Bindings: AppEnv['Bindings']; Variables: AppEnv['Variables'] & { session: DashboardSession } }
type DashboardContext = Context<DashboardEnv>

// Before sign-in there is no session to hold a CSRF token, so the sign-in form
// uses a double-submit token: the same value in a cookie and in the form.
const SIGN_IN_CSRF_COOKIE = 'moat_sign_in_csrf'
const SIGN_IN_CSRF_TTL_SECONDS = 30 * 60

async function page(c: Context, node: Child, status: 200 | 400 | 401 | 403 | 404 | 409 | 429 = 200): Promise<Response> {
  return c.html(`<!doctype html>${await (node as { toString(): string | Promise<string> }).toString()}`, status)
}

function sameToken(given: unknown, expected: string | undefined): boolean {
  return typeof given === 'string' && expected !== undefined && constantTimeEqual(given, expected)
}

function signInForm(c: Context, error?: string, status: 200 | 401 | 403 = 200): Promise<Response> {
  const csrf = newToken()
  setCookie(c, SIGN_IN_CSRF_COOKIE, csrf, { ...cookieOptions(c, SIGN_IN_CSRF_TTL_SECONDS), path: '/dashboard/sign-in' })
  return page(c, <SignInPage csrf={csrf} {...(error ? { error } : {})} />, status)
}

function forbidden(c: Context): Promise<Response> {
  const message = 'This form has expired or did not come from the dashboard. Go back, reload the page and try again.'
  return page(c, <MessagePage title="Refused" message={message} link={{ href: '/dashboard', label: 'Dashboard' }} />, 403)
}

function jobNotFound(c: Context): Promise<Response> {
  return page(c, <MessagePage title="Not found" message="This tenant has no such job." link={{ href: '/dashboard/jobs', label: 'All jobs' }} />, 404)
}

function signInRoutes(app: Hono<DashboardEnv>) {
  app.get('/dashboard/sign-in', async (c) => {
    if (await readSession(c, database(c.env))) return c.redirect('/dashboard', 303)
    return signInForm(c)
  })
  app.post('/dashboard/sign-in', async (c) => {
    const form = await c.req.parseBody()
    if (!sameToken(form.csrf, getCookie(c, SIGN_IN_CSRF_COOKIE))) return forbidden(c)
    const db = database(c.env)
    const found = await findActiveKey(db, typeof form.key === 'string' ? form.key.trim() : '')
    if (!found.ok) return signInForm(c, found.reason, 401)
    if (!hasScope(found.key.scopes, 'admin')) return signInForm(c, 'The dashboard needs a key with the admin scope', 403)
    deleteCookie(c, SIGN_IN_CSRF_COOKIE, { ...cookieOptions(c, 0), path: '/dashboard/sign-in' })
    await startSession(c, db, found.key.tenantId, found.key.id)
    return c.redirect('/dashboard', 303)
  })
}

// Every other dashboard path needs a live session; every POST, its CSRF token.
function requireSession(app: Hono<DashboardEnv>) {
  const guard = async (c: DashboardContext, next: () => Promise<void>) => {
    const session = await readSession(c, database(c.env))
    if (!session) {
      if (c.req.method === 'GET' && !c.req.path.endsWith('/events')) return c.redirect('/dashboard/sign-in', 303)
      return page(c, <MessagePage title="Signed out" message="Your session has ended." link={{ href: '/dashboard/sign-in', label: 'Sign in again' }} />, 401)
    }
    if (c.req.method === 'POST' && !sameToken((await c.req.parseBody({ all: true })).csrf, session.csrfToken)) return forbidden(c)
    c.set('session', session)
    await next()
  }
  app.use('/dashboard', guard)
  app.use('/dashboard/*', guard)
}

async function periodOrBadRequest(c: DashboardContext): Promise<number | Response> {
  const days = parsePeriod(c.req.query('days'))
  if (days !== null) return days
  return page(c, <MessagePage title="Bad request" message="days must be 1, 7 or 30." link={{ href: c.req.path, label: 'Back' }} />, 400)
}

function keyRoutes(app: Hono<DashboardEnv>) {
  app.get('/dashboard/keys', async (c) => {
    const { tenantId, csrfToken } = c.get('session')
    return page(c, <KeysPage csrf={csrfToken} keys={await loadKeys(database(c.env), tenantId)} />)
  })
  app.post('/dashboard/keys', async (c) => {
    const { tenantId, csrfToken } = c.get('session')
    const db = database(c.env)
    const form = await c.req.parseBody({ all: true })
    const name = typeof form.name === 'string' ? form.name.trim() : ''
    const scopes = ([] as unknown[]).concat(form.scopes ?? []).filter((s): s is string => typeof s === 'string')
    const known = scopes.every((s) => (SCOPES as readonly string[]).includes(s))
    if (name === '' || name.length > 200 || scopes.length === 0 || !known) {
      const error = 'A key needs a name (1 to 200 characters) and at least one known scope.'
      return page(c, <KeysPage csrf={csrfToken} keys={await loadKeys(db, tenantId)} error={error} />, 400)
    }
    const created = await issueApiKey(db, tenantId, name, scopes)
    // Rendered, not redirected: the secret is in this one response and nowhere else.
    c.header('cache-control', 'no-store')
    return page(c, <KeysPage csrf={csrfToken} keys={await loadKeys(db, tenantId)} created={{ name, key: created.key }} />, 200)
  })
  app.post('/dashboard/keys/:id/revoke', async (c) => {
    const { tenantId } = c.get('session')
    await revokeApiKey(database(c.env), tenantId, c.req.param('id'))
    return c.redirect('/dashboard/keys', 303)
  })
}

function field(form: Record<string, unknown>, name: string): string {
  const value = form[name]
  return typeof value === 'string' ? value : ''
}

// Starts a job from one of the jobs page's forms and shows it live; a job that
// cannot start is explained on the jobs page, with the form as it was sent.
// A form submitted twice (a double click, a resubmitted page) starts its job
// once and shows it both times.
async function startJobFromForm(c: DashboardContext, form: JobForm, submission: string): Promise<Response> {
  const session = c.get('session')
  const claim = await claimSubmission(database(c.env), session.keyId, submission)
  if (claim.kind === 'repeat') return c.redirect(claim.location ?? '/dashboard/jobs', 303)
  try {
    const job = await startJob(c as unknown as Context<AppEnv>, session, form)
    const location = `/dashboard/jobs/${job.id}`
    if (claim.kind === 'first') await claim.done(location)
    return c.redirect(location, 303)
  } catch (error) {
    if (claim.kind === 'first') await claim.release().catch(() => undefined)
    if (!(error instanceof ApiError)) throw error
    const db = database(c.env)
    const [jobs, models] = await Promise.all([loadJobs(db, session.tenantId), loadModels(db, session.tenantId)])
    const status = error.status as 400 | 404 | 409 | 429
    return page(c, <JobsPage csrf={session.csrfToken} jobs={jobs} models={models} form={form} error={error.message} />, status)
  }
}

function jobRoutes(app: Hono<DashboardEnv>) {
  app.get('/dashboard/jobs', async (c) => {
    const { tenantId, csrfToken } = c.get('session')
    const db = database(c.env)
    const [jobs, models] = await Promise.all([loadJobs(db, tenantId), loadModels(db, tenantId)])
    return page(c, <JobsPage csrf={csrfToken} jobs={jobs} models={models} />)
  })
  app.post('/dashboard/jobs/verify', async (c) => {
    const form = await c.req.parseBody()
    return startJobFromForm(c, { kind: 'verify', target: field(form, 'target') }, field(form, 'submission'))
  })
  app.post('/dashboard/jobs/merge', async (c) => {
    const form = await c.req.parseBody()
    return startJobFromForm(c, { kind: 'merge', config: field(form, 'config'), outputVersion: field(form, 'output_version').trim() }, field(form, 'submission'))
  })
  app.get('/dashboard/jobs/:id', async (c) => {
    const { tenantId, csrfToken } = c.get('session')
    const job = await loadJob(database(c.env), tenantId, c.req.param('id'))
    if (!job) return jobNotFound(c)
    return page(c, <JobPage csrf={csrfToken} job={job} />)
  })
  app.get('/dashboard/jobs/:id/events', async (c) => {
    const { tenantId } = c.get('session')
    const db = database(c.env)
    const id = c.req.param('id')
    const first = await loadJob(db, tenantId, id)
    if (!first) return c.text('No such job', 404)
    return streamJob(c, first, () => loadJob(db, tenantId, id), readSettings(c.env).ssePollMs)
  })
  app.post('/dashboard/jobs/:id/cancel', async (c) => {
    const { tenantId, csrfToken } = c.get('session')
    const id = c.req.param('id')
    try {
      await cancelJob(c.env, tenantId, id, (promise) => c.executionCtx.waitUntil(promise))
    } catch (error) {
      if (!(error instanceof ApiError)) throw error
      const job = await loadJob(database(c.env), tenantId, id)
      if (!job) return jobNotFound(c)
      return page(c, <JobPage csrf={csrfToken} job={job} error={error.message} />, 409)
    }
    return c.redirect(`/dashboard/jobs/${id}`, 303)
  })
}

function modelRoutes(app: Hono<DashboardEnv>) {
  app.get('/dashboard/models', async (c) => {
    const { tenantId, csrfToken } = c.get('session')
    return page(c, <ModelsPage csrf={csrfToken} entries={await loadModels(database(c.env), tenantId)} />)
  })
  app.post('/dashboard/models/:id/versions/:version/stage', async (c) => {
    const { tenantId, csrfToken } = c.get('session')
    const db = database(c.env)
    const stage = (await c.req.parseBody({ all: true })).stage
    try {
      if (typeof stage !== 'string' || !(STAGES as readonly string[]).includes(stage)) {
        throw new ApiError(400, `stage must be one of ${STAGES.join(', ')}`)
      }
      const model = await findModel(db, tenantId, c.req.param('id'))
      const version = await findVersion(db, model, c.req.param('version'))
      await setVersionStage(db, model, version, (await filesOf(db, [version.id])).get(version.id) ?? [], stage as Stage)
    } catch (error) {
      if (!(error instanceof ApiError)) throw error
      const entries = await loadModels(db, tenantId)
      return page(c, <ModelsPage csrf={csrfToken} entries={entries} error={error.message} />, error.status as 400 | 404 | 409)
    }
    return c.redirect('/dashboard/models', 303)
  })
}

function guardRoutes(app: Hono<DashboardEnv>) {
  app.get('/dashboard/guard', async (c) => {
    const { tenantId, csrfToken } = c.get('session')
    return page(c, <GuardPage csrf={csrfToken} clients={await loadGuardClients(database(c.env), tenantId)} />)
  })
  app.post('/dashboard/guard/clients/:id/reset', async (c) => {
    const { tenantId, csrfToken } = c.get('session')
    try {
      const client = await findGuardClient(c.env, tenantId, c.req.param('id'))
      await guardStub(c.env, client).reset(client)
    } catch (error) {
      if (!(error instanceof ApiError)) throw error
      const clients = await loadGuardClients(database(c.env), tenantId)
      return page(c, <GuardPage csrf={csrfToken} clients={clients} error={error.message} />, 404)
    }
    return c.redirect('/dashboard/guard', 303)
  })
}

export function dashboardRoutes() {
  const app = new Hono<DashboardEnv>()
  // Sign-in is registered before the session guard, so it answers without one.
  signInRoutes(app)
  requireSession(app)
  app.post('/dashboard/sign-out', async (c) => {
    await endSession(c, database(c.env), c.get('session'))
    return c.redirect('/dashboard/sign-in', 303)
  })
  app.get('/dashboard', async (c) => {
    const days = await periodOrBadRequest(c)
    if (days instanceof Response) return days
    const { tenantId, csrfToken } = c.get('session')
    return page(c, <OverviewPage csrf={csrfToken} days={days} overview={await loadOverview(database(c.env), tenantId, days)} />)
  })
  app.get('/dashboard/usage', async (c) => {
    const days = await periodOrBadRequest(c)
    if (days instanceof Response) return days
    const { tenantId, csrfToken } = c.get('session')
    const db = database(c.env)
    const keys = (await loadKeys(db, tenantId)).map((key) => ({ id: key.id, label: `${key.name} (${key.prefix}…)` }))
    const wanted = c.req.query('key') ?? ''
    const key = keys.find((k) => k.id === wanted)
    if (wanted !== '' && !key) {
      return page(c, <MessagePage title="Bad request" message="key must be one of this tenant's keys." link={{ href: '/dashboard/usage', label: 'Back' }} />, 400)
    }
    const series = await loadUsage(db, tenantId, days, key?.id)
    return page(c, <UsagePage csrf={csrfToken} days={days} series={series} keys={keys} chosen={key} />)
  })
  app.get('/dashboard/moderation', async (c) => {
    const days = await periodOrBadRequest(c)
    if (days instanceof Response) return days
    const { tenantId, csrfToken } = c.get('session')
    const db = database(c.env)
    const [groups, events] = await Promise.all([loadCategoryGroups(db, tenantId, days), loadModerationEvents(db, tenantId)])
    return page(c, <ModerationPage csrf={csrfToken} days={days} groups={groups} events={events} />)
  })
  keyRoutes(app)
  jobRoutes(app)
  modelRoutes(app)
  guardRoutes(app)
  return app
}
