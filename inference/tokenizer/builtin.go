package tokenizer

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"fmt"
	"sync"
)

// clipMerges is OpenAI's CLIP merge list, shipped unchanged with its
// license and origin in clipvocab/ (see NOTICE.md there).
//
//go:embed clipvocab/bpe_simple_vocab_16e6.txt.gz
var clipMerges []byte

// BuiltinVocabSize is the number of symbols of the built-in CLIP
// vocabulary: the embedding rows of every SD 1.x text encoder.
const BuiltinVocabSize = 49408

const builtinName = "built-in CLIP vocabulary"

// builtinParts decompresses and numbers the built-in vocabulary once per
// process; each BuiltinCLIP call then only builds its own lookup tables.
var builtinParts = sync.OnceValues(func() (parts builtinVocab, err error) {
	gz, err := gzip.NewReader(bytes.NewReader(clipMerges))
	if err != nil {
		return parts, fmt.Errorf("tokenizer %s: %w", builtinName, err)
	}
	defer gz.Close()
	if parts.merges, err = parseMerges(gz, builtinName, openAIMerges, true); err != nil {
		return parts, err
	}
	parts.vocab, err = openAIVocab(parts.merges, builtinName)
	return parts, err
})

type builtinVocab struct {
	vocab  map[string]int
	merges []string
}

// BuiltinCLIP returns a tokenizer for CLIP's released vocabulary (49408
// symbols, start 49406, end 49407, padding with the end token), the one
// SD 1.x checkpoints are trained with. Each call returns a new Tokenizer,
// so SetPadToken on one does not affect another.
func BuiltinCLIP() (*Tokenizer, error) {
	parts, err := builtinParts()
	if err != nil {
		return nil, err
	}
	t, err := New(parts.vocab, parts.merges)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", builtinName, err)
	}
	return t, nil
}
