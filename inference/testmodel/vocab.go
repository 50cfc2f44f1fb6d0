package testmodel

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sdfleet/sdfleet/inference/tokenizer"
)

// VocabWords are the words the synthetic tokenizer has merges for; other
// text still encodes, byte symbol by byte symbol.
var VocabWords = []string{
	"a", "an", "the", "of", "in", "on", "at", "with", "and", "by", "for", "to",
	"photo", "painting", "portrait", "picture", "drawing", "render", "illustration",
	"cat", "dog", "horse", "bird", "fish", "person", "man", "woman", "child", "astronaut",
	"city", "forest", "mountain", "river", "sea", "beach", "sky", "space", "street", "house",
	"red", "blue", "green", "yellow", "black", "white", "golden", "dark", "bright",
	"riding", "sitting", "standing", "walking", "flying",
	"high", "quality", "detailed", "realistic", "beautiful", "style", "light", "night", "sunset",
	"hello", "world",
}

// syntheticTokenizer builds a CLIP-format vocabulary: the 512 byte symbols,
// one merge per step of spelling each word left to right, then the start
// and end tokens, in the order CLIP numbers them.
func syntheticTokenizer() (vocab map[string]int, merges []string) {
	vocab = map[string]int{}
	add := func(s string) {
		if _, ok := vocab[s]; !ok {
			vocab[s] = len(vocab)
		}
	}
	for _, s := range tokenizer.ByteSymbols() {
		add(s)
	}
	for _, s := range tokenizer.ByteSymbols() {
		add(s + "</w>")
	}
	byteSyms := tokenizer.ByteSymbols()
	symbolOf := map[byte]string{}
	for i, b := range byteOrder() {
		symbolOf[b] = byteSyms[i]
	}
	seen := map[string]bool{}
	for _, w := range VocabWords {
		syms := make([]string, len(w))
		for i := 0; i < len(w); i++ {
			syms[i] = symbolOf[w[i]]
		}
		syms[len(syms)-1] += "</w>"
		for len(syms) > 1 {
			m := syms[0] + " " + syms[1]
			if !seen[m] {
				seen[m] = true
				merges = append(merges, m)
				add(syms[0] + syms[1])
			}
			syms = append([]string{syms[0] + syms[1]}, syms[2:]...)
		}
	}
	add(tokenizer.StartToken)
	add(tokenizer.EndToken)
	return vocab, merges
}

// byteOrder recovers which byte each of tokenizer.ByteSymbols stands for;
// the words here are ASCII, whose symbols are the characters themselves.
func byteOrder() []byte {
	var out []byte
	for _, s := range tokenizer.ByteSymbols() {
		r := []rune(s)[0]
		if r < 256 {
			out = append(out, byte(r))
		} else {
			out = append(out, 0) // non-printable byte, not used by VocabWords
		}
	}
	return out
}

// SyntheticVocabSize is the number of symbols of the synthetic tokenizer,
// which is also the tiny text encoder's vocabulary size.
func SyntheticVocabSize() int {
	v, _ := syntheticTokenizer()
	return len(v)
}

// WriteTokenizer writes the synthetic tokenizer as a transformers
// CLIPTokenizer folder that pads with the end token.
func WriteTokenizer(dir string) error { return writeTokenizer(dir, tokenizer.EndToken) }

// writeTokenizer writes the synthetic tokenizer padding with pad.
func writeTokenizer(dir, pad string) error {
	vocab, merges := syntheticTokenizer()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	v, err := json.Marshal(vocab)
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"vocab.json": v,
		"merges.txt": []byte("#version: 0.2\n" + strings.Join(merges, "\n") + "\n"),
		"special_tokens_map.json": mustJSON(map[string]string{
			"bos_token": tokenizer.StartToken, "eos_token": tokenizer.EndToken,
			"pad_token": pad, "unk_token": tokenizer.EndToken,
		}),
		"tokenizer_config.json": mustJSON(map[string]any{
			"tokenizer_class": "CLIPTokenizer", "model_max_length": tokenizer.ContextLength,
			"do_lower_case": true, "bos_token": tokenizer.StartToken, "eos_token": tokenizer.EndToken,
			"pad_token": pad, "unk_token": tokenizer.EndToken,
		}),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("writing tokenizer: %w", err)
		}
	}
	return nil
}

func mustJSON(v any) []byte {
	// Only called with maps of strings, numbers and lists, which always
	// encode.
	data, _ := json.MarshalIndent(v, "", "  ")
	return append(data, '\n')
}
