// Letters from other scripts that render like Latin ones, and Latin look-alikes
// NFKC leaves alone (small capitals, dotless i, slashed o). They are mapped
// before NFKC: NFKC would keep a Cyrillic "а" Cyrillic and the word would slip
// past every lexicon. Mathematical, full-width, circled and superscript forms
// are NFKC's job and need no entry here.
const PAIRS =
  // Cyrillic
  'аaвbеeоoрpсcуyхxкkмmнhтtіiјjѕsԁdԛqԝwѵvһhӏlёeАaВbЕeКkМmНhОoРpСcТtХxІiЈjЅsУyЁe' +
  // Greek
  'αaοoρpνvιiκkτtυuχxεeβbΑaΒbΕeΖzΗhΙiΚkΜmΝnΟoΡpΤtΥyΧx' +
  // small capitals and other Latin look-alikes
  'ᴀaʙbᴄcᴅdᴇeꜰfɢgʜhɪiᴊjᴋkʟlᴍmɴnᴏoᴘpꞯqʀrꜱsᴛtᴜuᴠvᴡwʏyᴢzıiɑaɡgøoØođdłlŁl'

export const CONFUSABLES: ReadonlyMap<number, string> = (() => {
  const map = new Map<number, string>()
  const chars = Array.from(PAIRS)
  for (let i = 0; i + 1 < chars.length; i += 2) map.set(chars[i]!.codePointAt(0)!, chars[i + 1]!)
  // Regional indicator symbols 🇦…🇿 spell letters in some evasions.
  for (let letter = 0; letter < 26; letter++) map.set(0x1f1e6 + letter, String.fromCharCode(97 + letter))
  return map
})()

// Zero-width, bidi controls, soft hyphens, variation selectors and tag
// characters: invisible, and used to split words apart.
export function isInvisible(cp: number): boolean {
  return (
    cp === 0x00ad ||
    cp === 0x034f ||
    cp === 0x061c ||
    cp === 0x180e ||
    (cp >= 0x200b && cp <= 0x200f) ||
    (cp >= 0x202a && cp <= 0x202e) ||
    (cp >= 0x2060 && cp <= 0x2069) ||
    cp === 0xfeff ||
    (cp >= 0xfe00 && cp <= 0xfe0f) ||
    (cp >= 0xe0000 && cp <= 0xe007f) ||
    (cp >= 0xe0100 && cp <= 0xe01ef)
  )
}
