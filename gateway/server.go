package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sdfleet/sdfleet/dashboard"
)

// Dependencies are the gateway's connections to the cluster.
type Dependencies struct {
	// Cache holds ImageGenerationJobs and GPUNodes through informers; waiting, progress, the
	// GPU list and the event stream read it.
	Cache crcache.Cache
	// Client creates jobs.
	Client client.Client
	// APIReader reads straight from the API server, for a job the cache has not seen yet.
	APIReader client.Reader
	// Kube sends TokenReviews and SubjectAccessReviews and reads image pods' progress lines.
	Kube kubernetes.Interface
	// Log receives structured logs.
	Log logr.Logger
}

// Server is the gateway's HTTP handler.
type Server struct {
	cfg       Config
	cache     crcache.Cache
	client    client.Client
	apiReader client.Reader
	kube      kubernetes.Interface
	log       logr.Logger
	auth      *authenticator
	limits    *rateLimiter
	watch     *watcher
	mux       *http.ServeMux

	mu      sync.Mutex
	lastJob map[string]types.NamespacedName // Caller.Key -> the latest job this replica created
}

// New checks the configuration and builds the server. Call Register before the cache starts,
// then serve the server as an http.Handler.
func New(cfg Config, deps Dependencies) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Cache == nil || deps.Client == nil || deps.APIReader == nil || deps.Kube == nil {
		return nil, errors.New("gateway: Cache, Client, APIReader and Kube are required")
	}
	s := &Server{
		cfg: cfg, cache: deps.Cache, client: deps.Client, apiReader: deps.APIReader, kube: deps.Kube, log: deps.Log,
		auth: newAuthenticator(deps.Kube, cfg.AuthCacheTTL), limits: newRateLimiter(cfg.RequestsPerSecond, cfg.Burst),
		watch: newWatcher(), mux: http.NewServeMux(), lastJob: map[string]types.NamespacedName{},
	}
	s.routes()
	return s, nil
}

// Register hooks the server to the cache's informers.
func (s *Server) Register(ctx context.Context) error { return s.watch.register(ctx, s.cache) }

// Sweep forgets expired auth answers and idle rate-limit buckets until ctx ends.
func (s *Server) Sweep(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.auth.sweep()
			s.limits.sweep(10 * time.Minute)
		}
	}
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) routes() {
	// OpenAI Images API.
	s.handle("POST /v1/images/generations", writeOpenAIError, s.openAIGenerate)
	s.handle("GET /v1/models", writeOpenAIError, s.openAIModels)
	// AUTOMATIC1111 web UI API.
	s.handle("POST /sdapi/v1/txt2img", writeA1111Error, s.a1111Txt2Img)
	s.handle("GET /sdapi/v1/samplers", writeA1111Error, s.a1111Samplers)
	s.handle("GET /sdapi/v1/sd-models", writeA1111Error, s.a1111Models)
	s.handle("GET /sdapi/v1/progress", writeA1111Error, s.a1111Progress)
	// Native API.
	s.handle("POST /v1/jobs", writeStatusError, s.nativeCreate)
	s.handle("GET /v1/jobs/{namespace}/{name}", writeStatusError, s.nativeGet)
	s.handle("GET /v1/jobs/{namespace}/{name}/images/{file}", writeStatusError, s.nativeImage)
	s.handle("GET /v1/gpus", writeStatusError, s.nativeGPUs)
	s.handle("GET /v1/events", writeStatusError, s.nativeEvents)
	// The web dashboard: a page that calls the API above with the caller's token.
	dashboard.Register(s.mux)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
}

// handlerFunc serves an authenticated, rate-limited request. It writes the response itself
// or returns the Error to write.
type handlerFunc func(w http.ResponseWriter, r *http.Request, c Caller) *Error

// handle wraps h: bounded body, authentication, the caller's rate limit, errors in the API's
// shape and one log line per request.
func (s *Server) handle(pattern string, writeErr errorWriter, h handlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		rec := &statusRecorder{ResponseWriter: w}
		c, e := s.auth.authenticate(r.Context(), r)
		if e == nil {
			e = s.limits.take(c.User.Username)
		}
		if e == nil {
			e = h(rec, r, c)
		}
		if e != nil {
			if !rec.wrote {
				writeErr(rec, e)
			} else {
				s.log.Error(e, "request failed after the response started", "path", r.URL.Path)
			}
		}
		s.log.V(1).Info("request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"user", c.User.Username, "namespace", c.Namespace, "duration", time.Since(start))
	})
}

// statusRecorder remembers whether and what a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if !r.wrote {
		r.status, r.wrote = http.StatusOK, true
	}
	return r.ResponseWriter.Write(b)
}

// Flush lets the event stream push each event at once.
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// decodeJSON reads a JSON body into dst. A syntax error, a wrong type or (when strict) an
// unknown field is a 400 naming the field.
func decodeJSON(r *http.Request, dst any, strict bool) *Error {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return asError(err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return &Error{Status: http.StatusBadRequest, Code: "invalid_json", Message: "request body: want a JSON object, got nothing"}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if strict {
		dec.DisallowUnknownFields()
	}
	err = dec.Decode(dst)
	if err == nil && dec.More() {
		err = errors.New("more than one JSON value")
	}
	if err == nil {
		return nil
	}
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "body"
		}
		return &Error{Status: http.StatusBadRequest, Field: field, Code: "invalid_type",
			Message: fmt.Sprintf("%s: want a JSON %s, got %s", field, jsonKind(typeErr.Type.Kind().String()), typeErr.Value)}
	case errors.As(err, &syntaxErr):
		return &Error{Status: http.StatusBadRequest, Code: "invalid_json",
			Message: fmt.Sprintf("request body: invalid JSON at byte %d: %v", syntaxErr.Offset, err)}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &Error{Status: http.StatusBadRequest, Field: field, Code: "unknown_parameter",
			Message: fmt.Sprintf("%s: not a parameter of this API", field)}
	}
	return &Error{Status: http.StatusBadRequest, Code: "invalid_json", Message: "request body: " + err.Error()}
}

func jsonKind(goKind string) string {
	switch {
	case strings.HasPrefix(goKind, "int"), strings.HasPrefix(goKind, "uint"):
		return "integer"
	case strings.HasPrefix(goKind, "float"):
		return "number"
	case goKind == "bool":
		return "boolean"
	case goKind == "struct", goKind == "map":
		return "object"
	case goKind == "slice":
		return "array"
	}
	return goKind
}

func writeJSON(w http.ResponseWriter, status int, v any) *Error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		return asError(err)
	}
	return nil
}

// baseURL is the gateway's address as the client reached it.
func (s *Server) baseURL(r *http.Request) string {
	if s.cfg.PublicURL != "" {
		return strings.TrimSuffix(s.cfg.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func trimFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
func itoa(i int) string          { return strconv.Itoa(i) }
