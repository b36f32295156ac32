// Text that varies from request to request, from a seeded generator so runs
// compare: random words (the guard refuses templated prompt floods, and the
// moderation engine passes these), 4 to 4 + `spread` − 1 of them.

const WORDS = 'river garden winter music engine bridge lantern harbor meadow violin canyon orbit pepper marble falcon quartz ribbon saddle tundra velvet walnut yellow zephyr anchor basket candle dolphin ember feather glacier hammock island jasmine kettle lemon mirror nutmeg oyster pebble quiver rocket saffron thimble umbrella vapor willow'.split(' ')

export function randomWords(random: () => number, spread: number): string {
  return Array.from({ length: 4 + Math.floor(random() * spread) }, () => WORDS[Math.floor(random() * WORDS.length)]).join(' ')
}
