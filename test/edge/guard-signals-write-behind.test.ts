import { runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import { expect, it } from 'vitest'
import { ClientGuard as ClientGuardClass, type ClientGuard } from '../../src/edge/guard/client-guard.ts'
import type { Admission, ClientIdentity } from '../../src/edge/guard/guard-protocol.ts'
import type { ModelSignals } from '../../src/shared/guard/model-signals.ts'
import { decodeState } from '../../src/shared/guard/state-codec.ts'

// Detector state is written behind (at most once a second, by the next call
// or an alarm); limits are not. What is stored must catch up with what the
// object has seen.
const client: ClientIdentity = { tenantId: 'tenant_wb', keyId: 'key_wb', endUser: null }
const input = (seed: number) => Array.from({ length: 64 }, (_, i) => ((i * 7 + seed * 13) % 17) / 17)

async function call(stub: DurableObjectStub<ClientGuard>, seed: number, now: number) {
  const admission = (await stub.admit({ client, model: 'm', policy: { limits: { daily_requests: 100 } }, tokens: 0, units: 1, now })) as Admission
  if (admission.outcome !== 'allow') throw new Error(`not allowed: ${admission.outcome}`)
  await stub.settle({ client, model: 'm', policy: {}, reservation: admission.reservation, tokens: 0, units: 1, report: { kind: 'classifier', instances: [{ input: input(seed), probabilities: [0.7, 0.3] }] }, now })
}

const storedQueries = (stub: DurableObjectStub<ClientGuard>) =>
  runInDurableObject(stub, (_instance, state) => {
    const row = state.storage.sql.exec<{ state: string }>(`SELECT state FROM model_signals WHERE model = 'm'`).toArray()[0]
    return row ? decodeState<ModelSignals>(row.state).confidence.answers : 0
  })

const dailyUsed = (stub: DurableObjectStub<ClientGuard>) =>
  runInDurableObject(stub, (_instance, state) => state.storage.sql.exec<{ used: number }>(`SELECT SUM(used) AS used FROM daily WHERE name = 'daily_requests'`).one().used)

it('stores detector state at most once a second, and an alarm stores what is left; limits are stored on every call', async () => {
  const stub = env.CLIENT_GUARD.get(env.CLIENT_GUARD.idFromName('write-behind')) as DurableObjectStub<ClientGuard>
  const t = Date.now()
  await call(stub, 1, t)
  expect(await storedQueries(stub)).toBe(1)
  await call(stub, 2, t + 10)
  await call(stub, 3, t + 20)
  // Seen, counted against the limit, not yet stored.
  expect(await dailyUsed(stub)).toBe(3)
  expect(await storedQueries(stub)).toBe(1)
  expect(await runDurableObjectAlarm(stub)).toBe(true)
  expect(await storedQueries(stub)).toBe(3)
  await call(stub, 4, t + 2000)
  expect(await storedQueries(stub)).toBe(4)
})

const storedVolumeCount = (stub: DurableObjectStub<ClientGuard>) =>
  runInDurableObject(stub, (_instance, state) => {
    const row = state.storage.sql.exec<{ value: string }>(`SELECT value FROM guard_meta WHERE key = 'client'`).toArray()[0]
    return row ? (JSON.parse(row.value) as { volume: { count: number } | null }).volume?.count ?? 0 : null
  })

it('writes the volume detector behind an admission: with the call’s report, or by the alarm when none comes', async () => {
  const stub = env.CLIENT_GUARD.get(env.CLIENT_GUARD.idFromName('volume-behind')) as DurableObjectStub<ClientGuard>
  // Early in a volume interval (a minute), so every call below counts in the same one.
  const t = Math.floor(Date.now() / 60_000) * 60_000 + 1000
  const admit = async (now: number) => {
    const admission = (await stub.admit({ client, model: 'm', policy: {}, tokens: 0, units: 0, now })) as Admission
    if (admission.outcome !== 'allow') throw new Error(`not allowed: ${admission.outcome}`)
    return admission.reservation
  }
  // A new client's record is stored at once.
  const first = await admit(t)
  expect(await storedVolumeCount(stub)).toBe(1)
  // The next admission is seen, not yet stored; its report stores it, even one without observations.
  const second = await admit(t + 10)
  expect(await storedVolumeCount(stub)).toBe(1)
  await stub.settle({ client, model: 'm', policy: {}, reservation: second, tokens: 0, units: 0, report: null, now: t + 20 })
  expect(await storedVolumeCount(stub)).toBe(2)
  // A call whose report never comes: the alarm stores what was seen.
  await admit(t + 30)
  expect(await storedVolumeCount(stub)).toBe(2)
  expect(await runDurableObjectAlarm(stub)).toBe(true)
  expect(await storedVolumeCount(stub)).toBe(3)
  await stub.settle({ client, model: 'm', policy: {}, reservation: first, tokens: 0, units: 0, report: null, now: t + 40 })
})

const storedAction = (stub: DurableObjectStub<ClientGuard>) =>
  runInDurableObject(stub, (_instance, state) => {
    const row = state.storage.sql.exec<{ value: string }>(`SELECT value FROM guard_meta WHERE key = 'client'`).one()
    return (JSON.parse(row.value) as { action: string }).action
  })

const dailyRows = (stub: DurableObjectStub<ClientGuard>) =>
  runInDurableObject(stub, (_instance, state) => state.storage.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM daily`).one().n)

it('writes the client record behind an observed LLM call unless it escalates, and counts requests only under a daily limit', async () => {
  const stub = env.CLIENT_GUARD.get(env.CLIENT_GUARD.idFromName('record-behind')) as DurableObjectStub<ClientGuard>
  // Early in a volume interval (a minute), so every call below counts in the
  // same one; the next minute's, so that the alarms these calls set lie in
  // the future and only the one this test runs itself fires.
  const t = Math.ceil(Date.now() / 60_000) * 60_000 + 1000
  // A rigidly templated flood: the client is throttled once enough prompts share the template.
  let calls = 0
  const admit = async () => {
    calls++
    const admission = (await stub.admit({ client, model: 'llm', policy: {}, tokens: 0, units: 0, report: { kind: 'llm', prompt: `Translate the word number ${calls} into French, please.` }, now: t + calls })) as Admission
    if (admission.outcome !== 'allow') throw new Error(`not allowed: ${admission.outcome}`)
  }
  await admit()
  // A new client's record is stored at once; with no daily_requests limit nothing is counted.
  expect(await storedVolumeCount(stub)).toBe(1)
  expect(await dailyRows(stub)).toBe(0)
  while ((await stub.view()).action === 'observe') {
    await admit()
    if ((await stub.view()).action === 'observe') expect(await storedVolumeCount(stub)).toBe(1)
    if (calls > 100) throw new Error('the flood never escalated')
  }
  // The escalation is stored with the call that made it, and the record with it.
  expect(await storedAction(stub)).toBe('throttle')
  expect(await storedVolumeCount(stub)).toBe(calls)
  const escalatedAt = calls
  for (let k = 0; k < 5; k++) await admit()
  expect(await storedVolumeCount(stub)).toBe(escalatedAt)
  // What is left, the alarm stores.
  expect(await runDurableObjectAlarm(stub)).toBe(true)
  expect(await storedVolumeCount(stub)).toBe(calls)
  expect(await dailyRows(stub)).toBe(0)
})

it('keeps an action that cooled down at once, also when the call that finds it brings a report', async () => {
  const stub = env.CLIENT_GUARD.get(env.CLIENT_GUARD.idFromName('cooled-with-report')) as DurableObjectStub<ClientGuard>
  const t = Date.now()
  const admit = (now: number, prompt: string) =>
    stub.admit({ client, model: 'llm', policy: { cooldown_seconds: 60 }, tokens: 0, units: 0, report: { kind: 'llm', prompt }, now }) as Promise<Admission>
  await admit(t, 'What is the capital of Norway?')
  // Throttled just after (as an escalation would have left it).
  await runInDurableObject(stub, (instance) => {
    const guard = instance as unknown as { meta: { action: string; actionSince: number }; saveMeta(): void }
    guard.meta.action = 'throttle'
    guard.meta.actionSince = t + 1000
    guard.saveMeta()
  })
  // A call a minute on stores the record (the client list is due, and the detectors' state) while still throttled…
  expect(await admit(t + 60_900, 'And of Sweden?')).toMatchObject({ outcome: 'allow', action: 'throttle' })
  expect(await storedAction(stub)).toBe('throttle')
  // …so the call 0.2 s later, which finds the cooldown over, is due for neither: the cooled action is kept anyway.
  expect(await admit(t + 61_100, 'And of Finland?')).toMatchObject({ outcome: 'allow', action: 'observe' })
  expect(await storedAction(stub)).toBe('observe')
})

it('answers a caller that waits for it before it observes the call, a caller whose call runs after, and has every later call and read wait for the observation', async () => {
  const stub = env.CLIENT_GUARD.get(env.CLIENT_GUARD.idFromName('observe-after-answer')) as DurableObjectStub<ClientGuard>
  // The object's observation, held until the test lets it go, or failing.
  const prototype = ClientGuardClass.prototype as unknown as { observe: (...args: unknown[]) => Promise<unknown> }
  const observe = prototype.observe
  let release!: () => void
  const gate = new Promise<void>((resolve) => (release = resolve))
  const observed: string[] = []
  let failNext = false
  // Other tests' objects may still be observing their last call: only this model's calls are held.
  prototype.observe = async function (this: unknown, ...args: unknown[]) {
    if (args[1] !== 'held') return observe.apply(this, args)
    await gate
    if (failNext) {
      failNext = false
      throw new Error('the detectors failed')
    }
    observed.push((args[2] as { prompt: string }).prompt)
    return observe.apply(this, args)
  }
  try {
    const admit = (prompt: string, observeAfterAnswer = true) =>
      stub.admit({ client, model: 'held', policy: {}, tokens: 0, units: 0, report: { kind: 'llm', prompt }, observeAfterAnswer }) as Promise<Admission>
    // Answered while its observation is held.
    expect((await admit('What is the capital of Norway?')).outcome).toBe('allow')
    let read = false
    const view = stub.view().then((seen) => ((read = true), seen))
    const next = admit('And of Sweden?')
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(observed).toEqual([])
    expect(read).toBe(false)
    release()
    await view
    expect(observed).toEqual(['What is the capital of Norway?'])
    expect((await next).outcome).toBe('allow')
    await stub.view()
    expect(observed).toEqual(['What is the capital of Norway?', 'And of Sweden?'])
    // An observation after the answer that fails is logged; the calls after go on, observed.
    failNext = true
    expect((await admit('And of Finland?')).outcome).toBe('allow')
    expect((await admit('And of Denmark?')).outcome).toBe('allow')
    await stub.view()
    expect(observed).toEqual(['What is the capital of Norway?', 'And of Sweden?', 'And of Denmark?'])
    // A caller whose call already runs is answered once its report is observed.
    const inline = admit('And of Estonia?', false)
    expect(observed).toHaveLength(3)
    await expect(inline).resolves.toMatchObject({ outcome: 'allow' })
    expect(observed).toEqual(['What is the capital of Norway?', 'And of Sweden?', 'And of Denmark?', 'And of Estonia?'])
  } finally {
    prototype.observe = observe
  }
})
