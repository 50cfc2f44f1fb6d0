package pipeline

import "fmt"

// InputError is an invalid request: the Field and what was expected.
type InputError struct {
	Field   string
	Message string
}

func (e *InputError) Error() string { return e.Field + ": " + e.Message }

// ModelError is a checkpoint or tokenizer that cannot be used. Path is the
// checkpoint (or file) concerned.
type ModelError struct {
	Path string
	Err  error
}

func (e *ModelError) Error() string { return fmt.Sprintf("model %s: %v", e.Path, e.Err) }

func (e *ModelError) Unwrap() error { return e.Err }

// NonFiniteError reports NaN or infinite latents after a sampler step
// (1-based, as progress counts) or in the decoded image (Step 0).
type NonFiniteError struct {
	Step  int
	Steps int
	Where string
}

func (e *NonFiniteError) Error() string {
	if e.Step == 0 {
		return fmt.Sprintf("NaN or Inf in the %s", e.Where)
	}
	return fmt.Sprintf("NaN or Inf in the %s at step %d of %d", e.Where, e.Step, e.Steps)
}
