package tokenizer

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
)

// Special tokens of CLIP's vocabulary.
const (
	StartToken = "<|startoftext|>"
	EndToken   = "<|endoftext|>"
	endOfWord  = "</w>"
)

// ContextLength is the sequence length of every SD text encoder, and
// MaxTokens the prompt tokens that fit between start and end.
const (
	ContextLength = 77
	MaxTokens     = ContextLength - 2
)

// pattern is CLIP's pre-tokenisation regular expression: special tokens,
// English contractions, runs of letters, single digits, and runs of other
// non-space characters.
var pattern = regexp.MustCompile(`(?i)<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+`)

// Tokenizer encodes prompts into token ids. It is safe for concurrent use.
type Tokenizer struct {
	encoder map[string]int
	decoder map[int]string
	ranks   map[string]int // "left right" -> merge rank
	startID int
	endID   int
	padID   int

	mu    sync.Mutex
	cache map[string][]int
}

// New builds a tokenizer from a vocabulary (symbol to id) and merges in
// rank order (each "left right"). The vocabulary must contain the start and
// end tokens and every merge's parts and result. Padding defaults to the
// end token.
func New(vocab map[string]int, merges []string) (*Tokenizer, error) {
	t := &Tokenizer{encoder: vocab, decoder: make(map[int]string, len(vocab)), ranks: make(map[string]int, len(merges)), cache: map[string][]int{}}
	for s, id := range vocab {
		if other, dup := t.decoder[id]; dup {
			return nil, fmt.Errorf("vocabulary gives id %d to both %q and %q", id, other, s)
		}
		t.decoder[id] = s
	}
	for _, b := range ByteSymbols() {
		for _, s := range []string{b, b + endOfWord} {
			if _, ok := vocab[s]; !ok {
				return nil, fmt.Errorf("vocabulary lacks byte symbol %q", s)
			}
		}
	}
	for i, m := range merges {
		parts := strings.Split(m, " ")
		if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
			return nil, fmt.Errorf("merge %d %q: want two symbols separated by one space", i+1, m)
		}
		if _, ok := vocab[parts[0]+parts[1]]; !ok {
			return nil, fmt.Errorf("merge %d %q: result %q is not in the vocabulary", i+1, m, parts[0]+parts[1])
		}
		if _, dup := t.ranks[m]; !dup {
			t.ranks[m] = i
		}
	}
	var ok bool
	if t.startID, ok = vocab[StartToken]; !ok {
		return nil, fmt.Errorf("vocabulary lacks %s", StartToken)
	}
	if t.endID, ok = vocab[EndToken]; !ok {
		return nil, fmt.Errorf("vocabulary lacks %s", EndToken)
	}
	t.padID = t.endID
	return t, nil
}

// StartID and EndID are the ids of the start and end tokens.
func (t *Tokenizer) StartID() int { return t.startID }

// EndID is the id of the end-of-text token.
func (t *Tokenizer) EndID() int { return t.endID }

// PadID is the id used to fill sequences up to ContextLength.
func (t *Tokenizer) PadID() int { return t.padID }

// SetPadToken makes padding use the given vocabulary symbol (SDXL's second
// tokenizer pads with "!", id 0).
func (t *Tokenizer) SetPadToken(symbol string) error {
	id, ok := t.encoder[symbol]
	if !ok {
		return fmt.Errorf("pad token %q is not in the vocabulary", symbol)
	}
	t.padID = id
	return nil
}

// VocabSize is the number of symbols.
func (t *Tokenizer) VocabSize() int { return len(t.encoder) }

// Encoding is an encoded prompt.
type Encoding struct {
	// IDs has exactly ContextLength entries: start, tokens, end, padding.
	IDs []int
	// Length counts start, tokens and end, without padding.
	Length int
	// Truncated is set when the prompt had more than MaxTokens tokens;
	// Dropped is then the text of the tokens that were cut.
	Truncated bool
	Dropped   string
}

// Tokens returns the BPE token ids of text, without start, end or padding.
func (t *Tokenizer) Tokens(text string) []int {
	var ids []int
	for _, word := range pattern.FindAllString(Clean(text), -1) {
		ids = append(ids, t.word(word)...)
	}
	return ids
}

// Encode tokenizes a prompt into ContextLength ids.
func (t *Tokenizer) Encode(text string) Encoding {
	tokens := t.Tokens(text)
	var enc Encoding
	if len(tokens) > MaxTokens {
		enc.Truncated = true
		enc.Dropped = strings.TrimSpace(t.Decode(tokens[MaxTokens:]))
		tokens = tokens[:MaxTokens]
	}
	enc.IDs = make([]int, 0, ContextLength)
	enc.IDs = append(enc.IDs, t.startID)
	enc.IDs = append(enc.IDs, tokens...)
	enc.IDs = append(enc.IDs, t.endID)
	enc.Length = len(enc.IDs)
	for len(enc.IDs) < ContextLength {
		enc.IDs = append(enc.IDs, t.padID)
	}
	return enc
}

// Decode turns ids back into text, word boundaries becoming spaces. Ids not
// in the vocabulary are skipped.
func (t *Tokenizer) Decode(ids []int) string {
	var sb strings.Builder
	for _, id := range ids {
		sb.WriteString(t.decoder[id])
	}
	var out []byte
	for _, r := range sb.String() {
		if b, ok := runeByte[r]; ok {
			out = append(out, b)
		} else {
			out = append(out, string(r)...)
		}
	}
	return strings.ReplaceAll(string(out), endOfWord, " ")
}

// word encodes one pre-tokenised word, caching the result.
func (t *Tokenizer) word(w string) []int {
	t.mu.Lock()
	ids, ok := t.cache[w]
	t.mu.Unlock()
	if ok {
		return ids
	}
	if id, special := t.encoder[w]; special && (w == StartToken || w == EndToken) {
		ids = []int{id}
	} else {
		for _, sym := range t.bpe(encodeBytes(w)) {
			// Every symbol is a byte symbol or a merge result, both of
			// which New checked are in the vocabulary.
			ids = append(ids, t.encoder[sym])
		}
	}
	t.mu.Lock()
	if len(t.cache) > 10000 {
		t.cache = map[string][]int{}
	}
	t.cache[w] = ids
	t.mu.Unlock()
	return ids
}

// bpe splits a word's symbols into vocabulary entries by repeatedly merging
// every occurrence, left to right, of the adjacent pair with the lowest rank.
func (t *Tokenizer) bpe(runes []rune) []string {
	if len(runes) == 0 {
		return nil
	}
	word := make([]string, len(runes))
	for i, r := range runes {
		word[i] = string(r)
	}
	word[len(word)-1] += endOfWord
	for len(word) > 1 {
		best, bestRank := -1, 0
		for i := 0; i+1 < len(word); i++ {
			if r, ok := t.ranks[word[i]+" "+word[i+1]]; ok && (best < 0 || r < bestRank) {
				best, bestRank = i, r
			}
		}
		if best < 0 {
			break
		}
		first, second := word[best], word[best+1]
		merged := make([]string, 0, len(word))
		for i := 0; i < len(word); {
			if i+1 < len(word) && word[i] == first && word[i+1] == second {
				merged = append(merged, first+second)
				i += 2
				continue
			}
			merged = append(merged, word[i])
			i++
		}
		word = merged
	}
	return word
}
