package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Error is a failed request, independent of the API it came through. Each API writes it in
// its own shape: OpenAI's {"error": {...}}, AUTOMATIC1111's {"detail": ...} and the native
// API's Kubernetes Status.
type Error struct {
	// Status is the HTTP status code.
	Status int
	// Message says what was refused, for a person.
	Message string
	// Field is the request field at fault (OpenAI's param), empty when none is.
	Field string
	// Code is a short machine-readable reason, for example "rate_limit_exceeded".
	Code string
	// RetryAfter, when positive, is sent as the Retry-After header (429).
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Message }

func badField(field, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Field: field, Code: "invalid_value",
		Message: field + ": " + fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) *Error {
	return &Error{Status: http.StatusNotFound, Code: "not_found", Message: fmt.Sprintf(format, args...)}
}

// asError turns any error into an Error: API server errors keep their status (an Invalid
// object becomes a 400 naming the first field), anything else is a 500.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var maxBytes *http.MaxBytesError
	if errors.As(err, &maxBytes) {
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
			Message: fmt.Sprintf("request body: larger than the gateway's limit of %d bytes", maxBytes.Limit)}
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		s := status.Status()
		out := &Error{Status: int(s.Code), Message: s.Message, Code: string(s.Reason)}
		if s.Reason == metav1.StatusReasonInvalid {
			out.Status = http.StatusBadRequest
			if s.Details != nil && len(s.Details.Causes) > 0 {
				out.Field = s.Details.Causes[0].Field
			}
		}
		if out.Status == 0 {
			out.Status = http.StatusInternalServerError
		}
		return out
	}
	return &Error{Status: http.StatusInternalServerError, Code: "internal_error", Message: err.Error()}
}

// errorWriter writes an Error in one API's shape.
type errorWriter func(w http.ResponseWriter, e *Error)

func writeHeaders(w http.ResponseWriter, e *Error) {
	w.Header().Set("Content-Type", "application/json")
	if e.RetryAfter > 0 {
		secs := int64((e.RetryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="sdfleet"`)
	}
	w.WriteHeader(e.Status)
}

// openAIErrorType is OpenAI's error.type for a status.
func openAIErrorType(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	}
	if status >= 500 {
		return "server_error"
	}
	return "invalid_request_error"
}

// writeOpenAIError writes {"error": {"message", "type", "param", "code"}}.
func writeOpenAIError(w http.ResponseWriter, e *Error) {
	writeHeaders(w, e)
	body := map[string]any{"error": map[string]any{
		"message": e.Message, "type": openAIErrorType(e.Status), "param": nullable(e.Field), "code": nullable(e.Code),
	}}
	_ = json.NewEncoder(w).Encode(body)
}

// writeA1111Error writes FastAPI's shapes, which AUTOMATIC1111 clients parse: a validation
// error lists {"loc": ["body", field], "msg", "type"} under detail, anything else carries
// {"error", "detail"}.
func writeA1111Error(w http.ResponseWriter, e *Error) {
	writeHeaders(w, e)
	var body map[string]any
	if e.Field != "" {
		body = map[string]any{"detail": []map[string]any{{
			"loc": []string{"body", e.Field}, "msg": e.Message, "type": "value_error",
		}}}
	} else {
		body = map[string]any{"error": http.StatusText(e.Status), "detail": e.Message}
	}
	_ = json.NewEncoder(w).Encode(body)
}

// writeStatusError writes a Kubernetes metav1.Status, the native API's error shape.
func writeStatusError(w http.ResponseWriter, e *Error) {
	writeHeaders(w, e)
	s := metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Message: e.Message, Reason: metav1.StatusReason(e.Code), Code: int32(e.Status),
	}
	if e.Field != "" {
		s.Details = &metav1.StatusDetails{Causes: []metav1.StatusCause{{
			Type: metav1.CauseTypeFieldValueInvalid, Field: e.Field, Message: e.Message,
		}}}
	}
	_ = json.NewEncoder(w).Encode(s)
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}
