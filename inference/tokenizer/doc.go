// Package tokenizer implements CLIP's byte-level BPE tokenizer as Stable
// Diffusion's text encoders use it.
//
// Text is cleaned the way CLIP cleans it (see Clean: the simple part of
// ftfy's repairs, HTML entities unescaped, runs of whitespace collapsed,
// lower case), split with CLIP's pre-tokenisation
// regular expression, mapped byte by byte onto printable runes
// (ByteSymbols) and merged with the lowest-ranked merge first, the last
// symbol of each word carrying the "</w>" end-of-word marker. Encode wraps
// at most 75 tokens in the start (49406 in the released vocabulary) and end
// (49407) tokens and pads to 77 with the end token (SD 1.x/2.x) or with id 0
// (SDXL's second tokenizer, whose pad token is "!"), and says which text
// was cut when a prompt is too long.
//
// Vocabularies load from a diffusers tokenizer folder (vocab.json and
// merges.txt, optionally special_tokens_map.json for the pad token) with
// Load, or from OpenAI's bpe_simple_vocab_16e6.txt.gz with LoadOpenAI.
// BuiltinCLIP returns CLIP's released vocabulary, embedded in the binary
// (clipvocab/, shipped unchanged with its MIT license and origin) for
// single-file checkpoints, which carry no tokenizer.
package tokenizer
