import { createRequire } from 'node:module'
import { mkdirSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ROOT } from '../../scripts/local-stack.ts'
import { ADMIN_TOKEN, deterministicBytes, startStack, tenantClient, waitFor, type Client, type Stack } from './stack.ts'

const ARTIFACTS = join(ROOT, 'test-artifacts', 'dashboard')
const MERGE_FIXTURES = join(import.meta.dirname, '../fixtures/merge/models')
const MiB = 1024 * 1024
// axe-core's whole engine as one script, injected into each page as it is.
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8')

let stack: Stack
let client: Client
let browser: Browser
let page: Page
const audited = new Set<string>()

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true })
  stack = await startStack({ MOAT_SSE_POLL_MS: '200' })
  client = await tenantClient(stack.edge)
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
  })
  page = await browser.newPage({ viewport: { width: 1200, height: 900 } })
})

afterAll(async () => {
  await browser?.close()
  await stack?.stop()
})

type Violation = { id: string; impact: string | null; help: string; nodes: { target: string[] }[] }

// The page as it stands: a screenshot, an axe-core audit (no serious or
// critical violation) and a walk with Tab in which every focused element
// shows a visible focus indicator.
async function check(name: string) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true })
  if ((await page.evaluate('typeof window.axe')) === 'undefined') await page.addScriptTag({ content: AXE_SOURCE })
  const violations = (await page.evaluate('axe.run(document, { resultTypes: ["violations"] }).then((r) => r.violations)')) as Violation[]
  const severe = violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id}: ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)
  expect(severe, `${name}: accessibility violations`).toEqual([])
  await expectFocusVisible(name)
  audited.add(name)
}

async function expectFocusVisible(name: string) {
  await page.evaluate('document.activeElement && document.activeElement.blur()')
  const seen = new Set<string>()
  for (let i = 0; i < 40; i++) {
    await page.keyboard.press('Tab')
    const focused = (await page.evaluate(`(() => {
      const el = document.activeElement
      if (!el || el === document.body) return null
      const style = getComputedStyle(el)
      const id = el.tagName + '#' + (el.id || el.getAttribute('href') || el.getAttribute('name') || el.textContent.trim().slice(0, 30))
      return { id, outline: style.outlineStyle, width: parseFloat(style.outlineWidth), matches: el.matches(':focus-visible') }
    })()`)) as { id: string; outline: string; width: number; matches: boolean } | null
    if (!focused) continue
    if (seen.has(focused.id)) break
    seen.add(focused.id)
    expect(focused.matches, `${name}: ${focused.id} focused by Tab`).toBe(true)
    expect(focused.outline !== 'none' && focused.width >= 2, `${name}: focus outline of ${focused.id} is ${focused.outline} ${focused.width}px`).toBe(true)
  }
  expect(seen.size, `${name}: nothing reachable with Tab`).toBeGreaterThan(0)
}

async function jobIdFromUrl(): Promise<string> {
  await page.waitForURL(/\/dashboard\/jobs\/job_/)
  return new URL(page.url()).pathname.split('/').pop()!
}

// The job page follows the job live; the finished job shows its progress full.
async function watchToCompletion(): Promise<{ value: string | null; max: string | null }> {
  await page.waitForFunction("['succeeded', 'failed'].includes(document.getElementById('job-status').textContent)", null, { timeout: 60_000 })
  expect(await page.textContent('#job-status')).toBe('succeeded')
  return { value: await page.getAttribute('#job-progress', 'value'), max: await page.getAttribute('#job-progress', 'max') }
}

describe('the dashboard in a real browser', () => {
  it('signs in with the keyboard', async () => {
    await page.goto(`${stack.edge.url}/dashboard`)
    expect(new URL(page.url()).pathname).toBe('/dashboard/sign-in')
    await check('sign-in')
    await page.goto(`${stack.edge.url}/dashboard/sign-in`)
    await page.keyboard.press('Tab')
    expect(await page.evaluate('document.activeElement.id')).toBe('key')
    await page.keyboard.type(client.key)
    await page.keyboard.press('Enter')
    await page.waitForURL(`${stack.edge.url}/dashboard`)
    expect(await page.textContent('h1')).toBe('Overview')
  })

  it('shows 429s and p50 latency on the overview, from real refused and served requests', async () => {
    const limits = (limit: number | null) =>
      fetch(`${stack.edge.url}/admin/tenants/${client.tenantId}/limits`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ limits: limit === null ? [] : [{ meter: 'requests', period: 'day', limit }] }),
      })
    expect((await limits(4)).status).toBe(200)
    const statuses: number[] = []
    for (let i = 0; i < 6; i++) statuses.push((await client.call('/v1/keys')).status)
    expect(statuses).toEqual([200, 200, 200, 200, 429, 429])
    expect((await limits(null)).status).toBe(200)
    // Observations reach the rollups through the usage queue; reload until they are there.
    await waitFor('the refusals on the overview', async () => {
      await page.goto(`${stack.edge.url}/dashboard?days=1`)
      return (await page.textContent('#refused strong'))?.startsWith('2 ') ? true : undefined
    })
    expect(await page.textContent('#p50 strong')).toMatch(/^(≈ [\d.]+ ms|< 1 ms)$/)
    expect(Number(await page.textContent('#requests strong'))).toBeGreaterThanOrEqual(4)
    await check('overview')
  })

  it('draws usage charts from real metered traffic, for all keys and for one', async () => {
    for (let i = 0; i < 5; i++) expect((await client.call('/v1/keys')).status).toBe(200)
    await waitFor('the requests chart', async () => {
      await page.goto(`${stack.edge.url}/dashboard/usage?days=7`)
      return Number(await page.locator('#meter-requests strong').textContent().catch(() => '0')) >= 9 ? true : undefined
    })
    await check('usage')
    const [key] = (await client.call('/v1/keys')).body.data
    await page.selectOption('#key', key.id)
    await page.click('button:has-text("Show")')
    await page.waitForURL(/key=/)
    expect(await page.textContent('#usage-scope')).toContain(key.prefix)
    expect(await page.locator('svg[aria-label^="requests per day of admin"]').count()).toBe(1)
    await check('usage-per-key')
  })

  it('creates a key shown once, revokes it, and the API refuses it', async () => {
    await page.goto(`${stack.edge.url}/dashboard/keys`)
    await page.fill('#key-name', 'browser-made')
    await page.click('button:has-text("Create key")')
    const key = (await page.textContent('#new-key'))!.trim()
    expect(key).toMatch(/^moat_sk_/)
    const call = () => fetch(`${stack.edge.url}/v1/jobs`, { headers: { authorization: `Bearer ${key}` } })
    expect((await call()).status).toBe(200)
    await check('keys-created')
    await page.click(`button[aria-label^="Revoke browser-made"]`)
    await page.waitForURL(`${stack.edge.url}/dashboard/keys`)
    expect(await page.locator('#new-key').count()).toBe(0)
    expect((await call()).status).toBe(401)
    await check('keys')
  })

  it('starts a verification from the dashboard and follows it live to 100%', async () => {
    const model = await client.call('/v1/models', { body: { name: 'watched', format: 'safetensors', task: 'other' } })
    const bytes = deterministicBytes(6 * MiB, 3)
    expect((await client.call(`/v1/models/${model.body.id}/versions/1/artifact`, { method: 'PUT', raw: bytes })).status).toBeLessThan(300)
    // A runner capped at 2 MB/s takes about three seconds, long enough to watch.
    await stack.startRunner({ MOAT_RUNNER_MAX_BYTES_PER_SECOND: String(2 * MiB) })
    await page.goto(`${stack.edge.url}/dashboard/jobs`)
    await check('jobs-empty')
    await page.selectOption('#verify-target', `${model.body.id}/1`)
    await page.click('button:has-text("Start verification")')
    const id = await jobIdFromUrl()
    // The page was rendered before the job finished: what follows is the live stream's doing.
    expect(['queued', 'running']).toContain(await page.textContent('#job-status'))
    expect(await page.locator('#job-cancel').count()).toBe(1)
    expect(await watchToCompletion()).toEqual({ value: String(bytes.length), max: String(bytes.length) })
    expect(await page.locator('#job-cancel').count()).toBe(0)
    expect((await client.call(`/v1/jobs/${id}`)).body).toMatchObject({ type: 'verify_artifact', status: 'succeeded' })
    await check('job')
  })

  it('starts a merge from a YAML config on the dashboard, watches it to 100%, and shows the lineage', async () => {
    const ids: Record<string, string> = {}
    for (const name of ['a', 'b']) {
      const model = await client.call('/v1/models', { body: { name: `parent-${name}`, format: 'safetensors', task: 'causal-lm' } })
      for (const file of readdirSync(join(MERGE_FIXTURES, name))) {
        const put = await client.call(`/v1/models/${model.body.id}/versions/1/files/${file}`, { method: 'PUT', raw: readFileSync(join(MERGE_FIXTURES, name, file)) })
        expect(put.status, file).toBe(201)
      }
      ids[name] = model.body.id
    }
    await page.goto(`${stack.edge.url}/dashboard/jobs`)
    const yaml = `merge_method: linear\nmodels:\n  - model: ${ids.a}/1\n    parameters: {weight: 0.6}\n  - model: ${ids.b}/1\n    parameters: {weight: 0.4}\ndtype: float32\n`
    await page.fill('#merge-config', yaml)
    await page.fill('#merge-output-version', 'dashboard-merge')
    await page.click('button:has-text("Start merge")')
    const id = await jobIdFromUrl()
    const progress = await watchToCompletion()
    expect(progress.max).not.toBeNull()
    expect(progress.value).toBe(progress.max)
    expect(await page.textContent('#job-progress-text')).toBe(`${progress.max} / ${progress.max} tensors`)
    // The job page is live: the link to the output appears with a reload once the job has succeeded.
    await page.reload()
    expect(await page.textContent('#job-output')).toBe(`${ids.a} · dashboard-merge`)
    await check('job-merge')
    await page.goto(`${stack.edge.url}/dashboard/jobs`)
    await check('jobs')

    await page.goto(`${stack.edge.url}/dashboard/models`)
    const row = page.locator(`#model-${ids.a} tr`, { hasText: 'dashboard-merge' })
    expect(await row.locator('.lineage a').first().textContent()).toBe(id)
    expect(await row.locator('.lineage li').allTextContents()).toEqual([
      expect.stringContaining('parent-a · 1'),
      expect.stringContaining('parent-b · 1'),
    ])
  })

  it('renders the models, guard and moderation pages, then signs out', async () => {
    const watched = (await client.call('/v1/models')).body.data.find((m: { name: string }) => m.name === 'watched')
    for (const name of ['models', 'guard', 'moderation']) {
      await page.goto(`${stack.edge.url}/dashboard/${name}`)
      expect((await page.textContent('h1'))!.toLowerCase()).toBe(name)
      await check(name)
    }
    await page.goto(`${stack.edge.url}/dashboard/models`)
    expect(await page.textContent(`#model-${watched.id} h2`)).toBe('watched')
    expect(await page.textContent(`#model-${watched.id} tbody tr td:nth-child(3)`)).toBe('verified')
    await page.click('button:has-text("Sign out")')
    await page.waitForURL(`${stack.edge.url}/dashboard/sign-in`)
    await page.goto(`${stack.edge.url}/dashboard/keys`)
    expect(new URL(page.url()).pathname).toBe('/dashboard/sign-in')
    expect([...audited].sort()).toEqual(
      ['guard', 'job', 'job-merge', 'jobs', 'jobs-empty', 'keys', 'keys-created', 'moderation', 'models', 'overview', 'sign-in', 'usage', 'usage-per-key'].sort(),
    )
  })
})
