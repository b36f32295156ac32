import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ROOT } from '../../scripts/local-stack.ts'
import { deterministicBytes, startStack, tenantClient, waitFor, type Client, type Stack } from './stack.ts'

const ARTIFACTS = join(ROOT, 'test-artifacts', 'dashboard')
const MiB = 1024 * 1024

let stack: Stack
let client: Client
let browser: Browser
let page: Page

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

const screenshot = (name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true })

describe('the dashboard in a real browser', () => {
  it('signs in with the keyboard and shows the overview', async () => {
    await page.goto(`${stack.edge.url}/dashboard`)
    expect(new URL(page.url()).pathname).toBe('/dashboard/sign-in')
    await page.keyboard.press('Tab')
    expect(await page.evaluate('document.activeElement.id')).toBe('key')
    await page.keyboard.type(client.key)
    await page.keyboard.press('Enter')
    await page.waitForURL(`${stack.edge.url}/dashboard`)
    expect(await page.textContent('h1')).toBe('Overview')
    await screenshot('overview')
  })

  it('draws a usage chart from real metered traffic', async () => {
    for (let i = 0; i < 5; i++) expect((await client.call('/v1/keys')).status).toBe(200)
    // Usage goes through the queue to the ledger; reload until the chart is there.
    await waitFor('the requests chart', async () => {
      await page.goto(`${stack.edge.url}/dashboard/usage?days=7`)
      return (await page.locator('svg[aria-label="requests per day"]').count()) > 0 ? true : undefined
    })
    expect(Number(await page.locator('#meter-requests strong').textContent())).toBeGreaterThanOrEqual(5)
    await screenshot('usage')
  })

  it('creates a key shown once, revokes it, and the API refuses it', async () => {
    await page.goto(`${stack.edge.url}/dashboard/keys`)
    await page.fill('#key-name', 'browser-made')
    await page.click('button:has-text("Create key")')
    const key = (await page.textContent('#new-key'))!.trim()
    expect(key).toMatch(/^moat_sk_/)
    const call = () => fetch(`${stack.edge.url}/v1/jobs`, { headers: { authorization: `Bearer ${key}` } })
    expect((await call()).status).toBe(200)
    await screenshot('keys-created')
    await page.click(`button[aria-label^="Revoke browser-made"]`)
    await page.waitForURL(`${stack.edge.url}/dashboard/keys`)
    expect(await page.locator('#new-key').count()).toBe(0)
    expect((await call()).status).toBe(401)
    await screenshot('keys')
  })

  it('follows a job to 100% over server-sent events', async () => {
    const model = await client.call('/v1/models', { body: { name: 'watched', format: 'safetensors', task: 'other' } })
    const bytes = deterministicBytes(6 * MiB, 3)
    expect((await client.call(`/v1/models/${model.body.id}/versions/1/artifact`, { method: 'PUT', raw: bytes })).status).toBeLessThan(300)
    // A runner capped at 2 MB/s takes about three seconds, long enough to watch.
    await stack.startRunner({ MOAT_RUNNER_MAX_BYTES_PER_SECOND: String(2 * MiB) })
    const job = await client.call('/v1/jobs', { body: { type: 'verify_artifact', model: model.body.id } })
    expect(job.status).toBe(202)
    await page.goto(`${stack.edge.url}/dashboard/jobs/${job.body.id}`)
    // The page was rendered before the job finished: what follows is the live stream's doing.
    expect(['queued', 'running']).toContain(await page.textContent('#job-status'))
    expect(await page.locator('#job-cancel').count()).toBe(1)
    await page.waitForFunction("document.getElementById('job-status').textContent === 'succeeded'", null, { timeout: 60_000 })
    // A progress element reflects its value and max as attributes.
    expect(await page.getAttribute('#job-progress', 'max')).toBe(String(bytes.length))
    expect(await page.getAttribute('#job-progress', 'value')).toBe(String(bytes.length))
    expect(await page.locator('#job-cancel').count()).toBe(0)
    await screenshot('job')
    await page.goto(`${stack.edge.url}/dashboard/jobs`)
    await screenshot('jobs')
  })

  it('renders the models, guard and moderation pages, then signs out', async () => {
    const [model] = (await client.call('/v1/models')).body.data
    for (const name of ['models', 'guard', 'moderation']) {
      await page.goto(`${stack.edge.url}/dashboard/${name}`)
      expect((await page.textContent('h1'))!.toLowerCase()).toBe(name)
      await screenshot(name)
    }
    await page.goto(`${stack.edge.url}/dashboard/models`)
    expect(await page.textContent(`#model-${model.id} h2`)).toBe('watched')
    expect(await page.textContent(`#model-${model.id} tbody tr td:nth-child(3)`)).toBe('verified')
    await page.click('button:has-text("Sign out")')
    await page.waitForURL(`${stack.edge.url}/dashboard/sign-in`)
    await page.goto(`${stack.edge.url}/dashboard/keys`)
    expect(new URL(page.url()).pathname).toBe('/dashboard/sign-in')
  })
})
