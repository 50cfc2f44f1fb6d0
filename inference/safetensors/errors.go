package safetensors

import "fmt"

// Error is returned for every problem with a file's contents. File is the
// path (or the name given to ParseHeader) and Tensor the tensor concerned,
// empty when the problem is with the file as a whole.
type Error struct {
	File   string
	Tensor string
	Msg    string
}

func (e *Error) Error() string {
	if e.Tensor == "" {
		return fmt.Sprintf("safetensors %s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("safetensors %s: tensor %q: %s", e.File, e.Tensor, e.Msg)
}

func fileErr(file, format string, args ...any) error {
	return &Error{File: file, Msg: fmt.Sprintf(format, args...)}
}

func tensorErr(file, tensor, format string, args ...any) error {
	return &Error{File: file, Tensor: tensor, Msg: fmt.Sprintf(format, args...)}
}
