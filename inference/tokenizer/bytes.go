package tokenizer

// byteOrder lists the 256 byte values in the order CLIP assigns them
// symbols: printable ASCII and Latin-1 first, mapped to themselves, then
// every other byte, mapped to runes from U+0100 on. BPE then never has to
// deal with whitespace or control characters.
var byteOrder, byteRune = func() ([256]byte, [256]rune) {
	var order [256]byte
	var runes [256]rune
	printable := func(b int) bool {
		return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
	}
	i := 0
	for b := range 256 {
		if printable(b) {
			order[i] = byte(b)
			runes[b] = rune(b)
			i++
		}
	}
	n := 0
	for b := range 256 {
		if !printable(b) {
			order[i] = byte(b)
			runes[b] = rune(256 + n)
			n++
			i++
		}
	}
	return order, runes
}()

var runeByte = func() map[rune]byte {
	m := make(map[rune]byte, 256)
	for b, r := range byteRune {
		m[r] = byte(b)
	}
	return m
}()

// ByteSymbols returns the 256 single-byte symbols in CLIP's vocabulary
// order; they are ids 0-255 of the released vocabulary, and the same
// symbols with "</w>" appended are ids 256-511.
func ByteSymbols() []string {
	out := make([]string, 256)
	for i, b := range byteOrder {
		out[i] = string(byteRune[b])
	}
	return out
}

// encodeBytes maps a word's UTF-8 bytes to their symbols.
func encodeBytes(s string) []rune {
	out := make([]rune, len(s))
	for i := 0; i < len(s); i++ {
		out[i] = byteRune[s[i]]
	}
	return out
}
