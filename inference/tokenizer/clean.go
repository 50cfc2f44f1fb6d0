package tokenizer

import (
	"html"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// typographic replaces characters that CLIP's text repair (ftfy's default
// fixes) turns into plain equivalents before tokenising: curly quotes and
// Latin ligatures. Prompts typed on phones are full of curly apostrophes,
// and without this "it’s" would not split like "it's".
var typographic = strings.NewReplacer(
	"\u2018", "'", "\u2019", "'", "\u201a", "'", "\u201b", "'",
	"\u201c", `"`, "\u201d", `"`, "\u201e", `"`, "\u201f", `"`,
	"\ufb00", "ff", "\ufb01", "fi", "\ufb02", "fl", "\ufb03", "ffi", "\ufb04", "ffl", "\ufb05", "ſt", "\ufb06", "st",
)

// Clean applies CLIP's text normalisation: the simple part of ftfy's
// repairs (curly quotes and ligatures made plain, full-width forms made
// ASCII, control characters dropped, NFC composition), HTML entities
// unescaped twice (for doubly escaped scraped text), whitespace collapsed
// and trimmed, and lower case. ftfy's repair of mis-decoded text
// (mojibake) is not reproduced.
func Clean(text string) string {
	text = typographic.Replace(text)
	text = strings.Map(func(r rune) rune {
		switch {
		case r >= 0xFF01 && r <= 0xFF5E: // full-width ASCII
			return r - 0xFF01 + '!'
		case r == 0x3000: // ideographic space
			return ' '
		case unicode.IsControl(r) && !unicode.IsSpace(r):
			return -1
		}
		return r
	}, text)
	text = norm.NFC.String(text)
	text = html.UnescapeString(html.UnescapeString(text))
	return strings.ToLower(strings.Join(strings.Fields(text), " "))
}
