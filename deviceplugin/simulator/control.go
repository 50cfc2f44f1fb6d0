package simulator

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"sigs.k8s.io/yaml"
)

// maxControlBody bounds a control request; a step list is small.
const maxControlBody = 1 << 20

// ControlRequest is the body of a POST to the control endpoint.
type ControlRequest struct {
	// Steps are applied like timeline steps, their "at" counted from the request.
	Steps []Step `json:"steps"`
}

// Handler serves the control endpoint: GET returns the GPUs' current state as JSON, POST
// schedules a ControlRequest (YAML or JSON) and answers with the state after applying the steps
// that were due at once.
func (s *Simulator) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
		case http.MethodPost:
			body, err := io.ReadAll(io.LimitReader(r.Body, maxControlBody+1))
			if err != nil {
				http.Error(w, fmt.Sprintf("read request body: %v", err), http.StatusBadRequest)
				return
			}
			if len(body) > maxControlBody {
				http.Error(w, fmt.Sprintf("request body larger than %d bytes", maxControlBody), http.StatusRequestEntityTooLarge)
				return
			}
			var req ControlRequest
			if err := yaml.UnmarshalStrict(body, &req); err != nil {
				http.Error(w, fmt.Sprintf("decode request body (want {\"steps\": [...]}): %v", err), http.StatusBadRequest)
				return
			}
			if err := s.Inject(req.Steps); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			s.log.Info("simulator steps injected through the control endpoint", "steps", len(req.Steps))
		default:
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "use GET or POST", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.State())
	})
}
