package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
)

func TestParseOpenAI(t *testing.T) {
	cases := []struct {
		name       string
		body       string
		wantField  string
		wantImages int32
		wantSize   [2]int32
		wantFormat string
	}{
		{name: "defaults", body: `{"prompt":"a fox"}`, wantImages: 1, wantSize: [2]int32{512, 512}, wantFormat: "b64_json"},
		{name: "four urls", body: `{"prompt":"a fox","n":4,"size":"768x512","response_format":"url"}`, wantImages: 4, wantSize: [2]int32{768, 512}, wantFormat: "url"},
		{name: "blank prompt", body: `{"prompt":"  "}`, wantField: "prompt"},
		{name: "n zero", body: `{"prompt":"a","n":0}`, wantField: "n"},
		{name: "n over the limit", body: `{"prompt":"a","n":17}`, wantField: "n"},
		{name: "size not WxH", body: `{"prompt":"a","size":"big"}`, wantField: "size"},
		{name: "size not multiple of 8", body: `{"prompt":"a","size":"500x512"}`, wantField: "size"},
		{name: "size too large", body: `{"prompt":"a","size":"4096x4096"}`, wantField: "size"},
		{name: "bad response_format", body: `{"prompt":"a","response_format":"png"}`, wantField: "response_format"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var req openAIRequest
			if err := json.Unmarshal([]byte(tc.body), &req); err != nil {
				t.Fatal(err)
			}
			got, format, e := parseOpenAI(req, 16)
			if tc.wantField != "" {
				if e == nil || e.Field != tc.wantField || e.Status != http.StatusBadRequest || !strings.HasPrefix(e.Message, tc.wantField+": ") {
					t.Fatalf("error %+v, want a 400 naming %q", e, tc.wantField)
				}
				return
			}
			if e != nil {
				t.Fatalf("unexpected error %v", e)
			}
			if got.Images != tc.wantImages || got.Width != tc.wantSize[0] || got.Height != tc.wantSize[1] || format != tc.wantFormat {
				t.Errorf("got %d images %dx%d %s, want %d %v %s", got.Images, got.Width, got.Height, format, tc.wantImages, tc.wantSize, tc.wantFormat)
			}
		})
	}
}

func TestParseA1111(t *testing.T) {
	cases := []struct {
		name      string
		body      string
		wantField string
		check     func(t *testing.T, r jobRequest)
	}{
		{name: "web UI defaults", body: `{"prompt":"a fox"}`, check: func(t *testing.T, r jobRequest) {
			if r.Images != 1 || r.Steps != 20 || r.GuidanceScale != "7" || r.Width != 512 || r.Seed != nil || r.Sampler != sdfleetv1alpha1.SamplerEulerAncestral {
				t.Errorf("defaults %+v", r)
			}
		}},
		{name: "batch of four", body: `{"prompt":"a","batch_size":4,"n_iter":2,"steps":3,"cfg_scale":6.25,"seed":7,"sampler_name":"DDIM","width":64,"height":128,"restore_faces":false}`,
			check: func(t *testing.T, r jobRequest) {
				if r.Images != 8 || r.Steps != 3 || r.GuidanceScale != "6.25" || *r.Seed != 7 || r.Sampler != sdfleetv1alpha1.SamplerDDIM || r.Width != 64 || r.Height != 128 {
					t.Errorf("parsed %+v", r)
				}
			}},
		{name: "seed -1 is random", body: `{"prompt":"a","seed":-1}`, check: func(t *testing.T, r jobRequest) {
			if r.Seed != nil {
				t.Errorf("seed %v, want unset", *r.Seed)
			}
		}},
		{name: "DPM++ 2M with the Karras scheduler", body: `{"prompt":"a","sampler_name":"DPM++ 2M","scheduler":"Karras"}`, check: func(t *testing.T, r jobRequest) {
			if r.Sampler != sdfleetv1alpha1.SamplerDPMPP2MKarras {
				t.Errorf("sampler %s", r.Sampler)
			}
		}},
		{name: "model override", body: `{"prompt":"a","override_settings":{"sd_model_checkpoint":"sd15"}}`, check: func(t *testing.T, r jobRequest) {
			if r.Model != "sd15" {
				t.Errorf("model %q", r.Model)
			}
		}},
		{name: "unknown sampler", body: `{"prompt":"a","sampler_name":"LMS"}`, wantField: "sampler_name"},
		{name: "steps zero", body: `{"prompt":"a","steps":0}`, wantField: "steps"},
		{name: "cfg_scale too high", body: `{"prompt":"a","cfg_scale":51}`, wantField: "cfg_scale"},
		{name: "width odd", body: `{"prompt":"a","width":513}`, wantField: "width"},
		{name: "height small", body: `{"prompt":"a","height":32}`, wantField: "height"},
		{name: "negative seed", body: `{"prompt":"a","seed":-5}`, wantField: "seed"},
		{name: "batch too large", body: `{"prompt":"a","batch_size":4,"n_iter":5}`, wantField: "batch_size"},
		{name: "model not a string", body: `{"prompt":"a","override_settings":{"sd_model_checkpoint":3}}`, wantField: "override_settings.sd_model_checkpoint"},
		{name: "no prompt", body: `{}`, wantField: "prompt"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var req a1111Request
			if err := json.Unmarshal([]byte(tc.body), &req); err != nil {
				t.Fatal(err)
			}
			got, e := parseA1111(req, 16)
			if tc.wantField != "" {
				if e == nil || e.Field != tc.wantField || e.Status != http.StatusBadRequest {
					t.Fatalf("error %+v, want a 400 naming %q", e, tc.wantField)
				}
				return
			}
			if e != nil {
				t.Fatalf("unexpected error %v", e)
			}
			tc.check(t, got)
		})
	}
}

func TestDecodeJSONNamesTheField(t *testing.T) {
	cases := []struct {
		body, wantField, wantCode string
	}{
		{`{"prompt": 3}`, "prompt", "invalid_type"},
		{`{"n": "four"}`, "n", "invalid_type"},
		{`{"prompt": "a", "colour": "red"}`, "colour", "unknown_parameter"},
		{`{"prompt": `, "", "invalid_json"},
		{``, "", "invalid_json"},
		{`{"prompt":"a"} {"prompt":"b"}`, "", "invalid_json"},
	}
	for _, tc := range cases {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
		var dst openAIRequest
		e := decodeJSON(r, &dst, true)
		if e == nil || e.Status != http.StatusBadRequest || e.Field != tc.wantField || e.Code != tc.wantCode {
			t.Errorf("%s: error %+v, want 400 field %q code %s", tc.body, e, tc.wantField, tc.wantCode)
		}
	}
}

func TestBodyLimitIs413(t *testing.T) {
	rec := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"prompt":"`+strings.Repeat("x", 2048)+`"}`))
	r.Body = http.MaxBytesReader(rec, r.Body, 1024)
	var dst openAIRequest
	e := decodeJSON(r, &dst, true)
	if e == nil || e.Status != http.StatusRequestEntityTooLarge || !strings.Contains(e.Message, "1024 bytes") {
		t.Fatalf("error %+v, want 413 naming the limit", e)
	}
}

func TestErrorShapes(t *testing.T) {
	e := &Error{Status: http.StatusTooManyRequests, Message: "slow down", Code: "rate_limit_exceeded", RetryAfter: 1500 * time.Millisecond}
	field := badField("steps", "0; want 1 to 150")

	rec := httptest.NewRecorder()
	writeOpenAIError(rec, e)
	var oa struct {
		Error struct {
			Message, Type string
			Param, Code   *string
		} `json:"error"`
	}
	mustDecode(t, rec.Body.Bytes(), &oa)
	if rec.Code != 429 || rec.Header().Get("Retry-After") != "2" || oa.Error.Type != "rate_limit_error" || oa.Error.Param != nil || *oa.Error.Code != "rate_limit_exceeded" {
		t.Errorf("OpenAI 429: %d %q %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	rec = httptest.NewRecorder()
	writeOpenAIError(rec, field)
	mustDecode(t, rec.Body.Bytes(), &oa)
	if rec.Code != 400 || oa.Error.Type != "invalid_request_error" || *oa.Error.Param != "steps" {
		t.Errorf("OpenAI 400: %d %s", rec.Code, rec.Body)
	}

	rec = httptest.NewRecorder()
	writeA1111Error(rec, field)
	var a1 struct {
		Detail []struct {
			Loc  []string `json:"loc"`
			Msg  string   `json:"msg"`
			Type string   `json:"type"`
		} `json:"detail"`
	}
	mustDecode(t, rec.Body.Bytes(), &a1)
	if rec.Code != 400 || len(a1.Detail) != 1 || strings.Join(a1.Detail[0].Loc, ".") != "body.steps" || a1.Detail[0].Msg == "" {
		t.Errorf("AUTOMATIC1111 400: %d %s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	writeA1111Error(rec, &Error{Status: 401, Message: "no token"})
	var a1other struct{ Error, Detail string }
	mustDecode(t, rec.Body.Bytes(), &a1other)
	if rec.Code != 401 || a1other.Detail != "no token" || a1other.Error != "Unauthorized" || rec.Header().Get("WWW-Authenticate") == "" {
		t.Errorf("AUTOMATIC1111 401: %d %s", rec.Code, rec.Body)
	}

	rec = httptest.NewRecorder()
	writeStatusError(rec, field)
	var st metav1.Status
	mustDecode(t, rec.Body.Bytes(), &st)
	if rec.Code != 400 || st.Kind != "Status" || st.Status != metav1.StatusFailure || st.Code != 400 || st.Details == nil || st.Details.Causes[0].Field != "steps" {
		t.Errorf("native 400: %d %s", rec.Code, rec.Body)
	}
}

func mustDecode(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
}

func TestRateLimiterRetryAfter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newRateLimiter(0.5, 2)
	l.now = func() time.Time { return now }
	for i := range 2 {
		if e := l.take("alice"); e != nil {
			t.Fatalf("request %d refused within the burst: %v", i, e)
		}
	}
	e := l.take("alice")
	if e == nil || e.Status != http.StatusTooManyRequests || e.RetryAfter != 2*time.Second {
		t.Fatalf("third request: %+v, want 429 retry after 2s", e)
	}
	if e := l.take("bob"); e != nil {
		t.Errorf("another caller shares alice's bucket: %v", e)
	}
	now = now.Add(2 * time.Second)
	if e := l.take("alice"); e != nil {
		t.Errorf("refused after Retry-After: %v", e)
	}
	now = now.Add(time.Hour)
	l.sweep(10 * time.Minute)
	if len(l.buckets) != 0 {
		t.Errorf("%d idle buckets kept", len(l.buckets))
	}
}

func TestServiceAccountNamespace(t *testing.T) {
	for user, want := range map[string]string{
		"system:serviceaccount:team-a:alice": "team-a",
		"system:serviceaccount:team-a":       "",
		"system:serviceaccount::alice":       "",
		"alice@example.com":                  "",
		"system:serviceaccount:a:b:c":        "",
	} {
		got, ok := serviceAccountNamespace(user)
		if got != want || ok != (want != "") {
			t.Errorf("%q: %q %v, want %q", user, got, ok, want)
		}
	}
}

func TestModelsValidate(t *testing.T) {
	loc := func(p string) sdfleetv1alpha1.StorageLocation {
		return sdfleetv1alpha1.StorageLocation{HostPath: &sdfleetv1alpha1.HostPathLocation{Path: p}}
	}
	good := Models{Models: map[string]sdfleetv1alpha1.StorageLocation{"tiny": loc("/models/tiny")}, DefaultModel: "tiny", Output: loc("/out")}
	if err := good.Validate(); err != nil {
		t.Fatalf("valid configuration refused: %v", err)
	}
	cases := map[string]func(m *Models){
		"models":       func(m *Models) { m.Models = nil },
		"defaultModel": func(m *Models) { m.DefaultModel = "sd15" },
		"models.tiny":  func(m *Models) { m.Models["tiny"] = loc("models/tiny") },
		"output":       func(m *Models) { m.Output = loc("/out/../etc") },
		"persistentVolumeClaim": func(m *Models) {
			m.Output = sdfleetv1alpha1.StorageLocation{PersistentVolumeClaim: &sdfleetv1alpha1.PVCLocation{ClaimName: "x", Path: "/abs"}}
		},
	}
	for want, mutate := range cases {
		m := Models{Models: map[string]sdfleetv1alpha1.StorageLocation{"tiny": loc("/models/tiny")}, DefaultModel: "tiny", Output: loc("/out")}
		mutate(&m)
		if err := m.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one naming it", want, err)
		}
	}
}

func TestLocalImagePath(t *testing.T) {
	host := Config{Models: Models{Output: sdfleetv1alpha1.StorageLocation{HostPath: &sdfleetv1alpha1.HostPathLocation{Path: "/srv/images/"}}}}
	pvc := Config{Models: Models{Output: sdfleetv1alpha1.StorageLocation{PersistentVolumeClaim: &sdfleetv1alpha1.PVCLocation{ClaimName: "out", Path: "gen"}}}}
	job := func(out sdfleetv1alpha1.StorageLocation) *sdfleetv1alpha1.ImageGenerationJob {
		return &sdfleetv1alpha1.ImageGenerationJob{Spec: sdfleetv1alpha1.ImageGenerationJobSpec{Output: out}}
	}
	cases := []struct {
		name   string
		cfg    Config
		job    *sdfleetv1alpha1.ImageGenerationJob
		status string
		want   string
	}{
		{"host path", host, job(host.Output), "/srv/images/ns/j/0.png", "ns/j/0.png"},
		{"host path outside the volume", host, job(host.Output), "/etc/passwd", ""},
		{"host path with dot-dot", host, job(host.Output), "/srv/images/../../etc/passwd", "etc/passwd"},
		{"claim", pvc, job(pvc.Output), "gen/ns/j/1.png", "gen/ns/j/1.png"},
		{"another volume", host, job(pvc.Output), "gen/ns/j/1.png", ""},
	}
	for _, tc := range cases {
		got, ok := tc.cfg.localImagePath(tc.job, tc.status)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("%s: %q %v, want %q", tc.name, got, ok, tc.want)
		}
	}
}

func TestProgressOf(t *testing.T) {
	now := time.Unix(10000, 0)
	started := metav1.NewTime(now.Add(-3 * time.Second))
	job := &sdfleetv1alpha1.ImageGenerationJob{
		Spec: sdfleetv1alpha1.ImageGenerationJobSpec{Images: 4},
		Status: sdfleetv1alpha1.ImageGenerationJobStatus{Succeeded: 1, Running: 2, Pending: 1, Images: []sdfleetv1alpha1.ImageStatus{
			{Index: 0, Phase: sdfleetv1alpha1.ImageSucceeded, DurationMilliseconds: ptr.To[int64](10000)},
			{Index: 1, Phase: sdfleetv1alpha1.ImageRunning, StartTime: &started},
			{Index: 2, Phase: sdfleetv1alpha1.ImageRunning, StartTime: &started},
			{Index: 3, Phase: sdfleetv1alpha1.ImagePending},
		}},
	}
	p := progressOf(job, map[int32]stepProgress{
		1: {Type: "progress", Step: 10, Steps: 20, ETAMilliseconds: 5000},
		2: {Type: "progress", Step: 5, Steps: 20, ETAMilliseconds: 7000},
	}, now)
	// 1 done + 0.5 + 0.25 of 4 images; the slower running image ends in 7 s, then one wave
	// of 10 s for the pending image.
	if p.Fraction != 0.4375 || p.ETA != 17*time.Second || p.Done != 1 || p.Current.Step != 5 {
		t.Errorf("progress %+v", p)
	}
	// Without progress lines the running images count as started 3 s into a 10 s image.
	p = progressOf(job, nil, now)
	if p.Fraction != 0.25 || p.ETA != 17*time.Second {
		t.Errorf("progress without lines %+v", p)
	}
	job.Status.Conditions = []metav1.Condition{{Type: sdfleetv1alpha1.JobComplete, Status: metav1.ConditionTrue}}
	if p := progressOf(job, nil, now); p.Fraction != 1 || p.ETA != 0 || p.Done != 4 {
		t.Errorf("finished job %+v", p)
	}
}

func TestLastProgressLine(t *testing.T) {
	log := []byte(`{"type":"progress","step":1,"steps":4,"etaMilliseconds":300}
2026-01-01T00:00:00Z INFO step done
{"type":"progress","step":2,"steps":4,"etaMilliseconds":200}
not json
`)
	p, ok := lastProgressLine(log)
	if !ok || p.Step != 2 || p.ETAMilliseconds != 200 {
		t.Errorf("%+v %v", p, ok)
	}
	if _, ok := lastProgressLine([]byte("INFO loading\n")); ok {
		t.Error("a log without progress lines gave one")
	}
}

func TestSamplerNames(t *testing.T) {
	for _, s := range a1111Samplers {
		got, ok := samplerFromA1111(s.Name, "")
		if !ok || got != s.Sampler || a1111SamplerName(got) != s.Name {
			t.Errorf("%s round trip: %s %v", s.Name, got, ok)
		}
	}
	if got, _ := samplerFromA1111("euler A", ""); got != sdfleetv1alpha1.SamplerEulerAncestral {
		t.Errorf("names are not case-insensitive: %s", got)
	}
}
