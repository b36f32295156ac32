import { Webhook } from 'standardwebhooks'
import { describe, expect, it } from 'vitest'
import { newWebhookSecret, signWebhook, webhookHeaders } from '../../src/shared/standard-webhooks.ts'
import { createSecretBox } from '../../src/shared/secret-box.ts'

describe('Standard Webhooks signatures', () => {
  it('match the specification’s test vector', async () => {
    const signature = await signWebhook('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}')
    expect(signature).toBe('v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=')
  })

  it('verify with the reference implementation (the standardwebhooks package)', async () => {
    const secret = newWebhookSecret()
    const body = JSON.stringify({ type: 'job.succeeded', data: { id: 'job_1' } })
    const headers = await webhookHeaders(secret, 'evt_123', body)
    const verified = new Webhook(secret).verify(body, headers)
    expect(verified).toEqual(JSON.parse(body))
    expect(() => new Webhook(secret).verify(`${body} `, headers)).toThrow()
    expect(() => new Webhook(newWebhookSecret()).verify(body, headers)).toThrow()
  })
})

describe('secret box', () => {
  it('opens what it sealed only under the same key and context', async () => {
    const box = await createSecretBox('k'.repeat(40))
    const sealed = await box.seal('sk_live_123', 'sink:1')
    expect(sealed).not.toContain('sk_live_123')
    expect(await box.open(sealed, 'sink:1')).toBe('sk_live_123')
    await expect(box.open(sealed, 'sink:2')).rejects.toThrow()
    await expect((await createSecretBox('j'.repeat(40))).open(sealed, 'sink:1')).rejects.toThrow()
    expect(await box.seal('same', 'c')).not.toBe(await box.seal('same', 'c'))
  })

  it('refuses a short master key', async () => {
    await expect(createSecretBox('short')).rejects.toThrow(/32 characters/)
  })
})
