package kubectlplugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/gateway"
)

// GatewayEnv names the gateway's address when --gateway is not given.
const GatewayEnv = "SDFLEET_GATEWAY"

// gatewayFlags are the flags of the commands that read images: the gateway's address, and
// how long a reader pod may take to start when there is none.
type gatewayFlags struct {
	address       string
	readerTimeout time.Duration
}

func (g *gatewayFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&g.address, "gateway", "",
		"Address of the sdfleet gateway (http://host:port); empty uses $"+GatewayEnv+". The kubeconfig's (or --token's) bearer token is sent to it. "+
			"Without a gateway the command talks to the API server only, and reads the PNGs through a short-lived pod on the job's output volume.")
	cmd.Flags().DurationVar(&g.readerTimeout, "reader-timeout", 2*time.Minute,
		"Without a gateway: how long the short-lived pod that reads the PNGs may take to start.")
}

// named says whether a gateway was named, by --gateway or $SDFLEET_GATEWAY.
func (g gatewayFlags) named() bool { return g.address != "" || os.Getenv(GatewayEnv) != "" }

// statusError is an answer of the gateway other than a success.
type statusError struct {
	code    int
	message string
}

func (e *statusError) Error() string { return e.message }

func isNotFound(err error) bool {
	var s *statusError
	return errors.As(err, &s) && s.code == http.StatusNotFound
}

// gatewayClient calls the gateway's native API with the caller's bearer token, so that the
// gateway's TokenReview and SubjectAccessReview decide what the caller may do.
type gatewayClient struct {
	base      string
	token     string
	namespace string // sent as the namespace header when -n was given
	http      *http.Client
}

func (o *Options) gateway(g gatewayFlags) (*gatewayClient, error) {
	address := g.address
	if address == "" {
		address = os.Getenv(GatewayEnv)
	}
	if address == "" {
		return nil, fmt.Errorf("--gateway: want the sdfleet gateway's address (http://host:port), or set $%s", GatewayEnv)
	}
	u, err := url.Parse(address)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--gateway %q: want an http:// or https:// address with a host", address)
	}
	cfg, err := o.Config.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	token := cfg.BearerToken
	if token == "" && cfg.BearerTokenFile != "" {
		data, err := os.ReadFile(cfg.BearerTokenFile)
		if err != nil {
			return nil, fmt.Errorf("bearer token file of the kubeconfig: %w", err)
		}
		token = strings.TrimSpace(string(data))
	}
	if token == "" {
		return nil, errors.New("the gateway needs a bearer token and the kubeconfig has none: pass --token (for example $(kubectl create token NAME))")
	}
	c := &gatewayClient{base: strings.TrimSuffix(address, "/"), token: token, http: &http.Client{}}
	if o.Config.Namespace != nil && *o.Config.Namespace != "" {
		c.namespace = *o.Config.Namespace
	}
	return c, nil
}

func (c *gatewayClient) do(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.namespace != "" {
		req.Header.Set(gateway.NamespaceHeader, c.namespace)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("gateway %s: %w", c.base, err)
	}
	if resp.StatusCode >= 300 {
		defer func() { _ = resp.Body.Close() }()
		return nil, &statusError{code: resp.StatusCode, message: fmt.Sprintf("gateway %s %s: %s", method, path, gatewayError(resp))}
	}
	return resp, nil
}

// gatewayError is the message of a native API error (a Kubernetes Status).
func gatewayError(resp *http.Response) string {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var status struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(data, &status) == nil && status.Message != "" {
		return fmt.Sprintf("%d: %s", resp.StatusCode, status.Message)
	}
	return fmt.Sprintf("%d: %s", resp.StatusCode, strings.TrimSpace(string(data)))
}

// createJob submits a job spec through POST /v1/jobs; the gateway fills in the model's
// location and the output from its administrator's configuration.
func (c *gatewayClient) createJob(ctx context.Context, body map[string]any) (namespace, name string, err error) {
	resp, err := c.do(ctx, http.MethodPost, "/v1/jobs", body)
	if err != nil {
		return "", "", err
	}
	defer func() { _ = resp.Body.Close() }()
	var created struct{ Namespace, Name string }
	if err := json.NewDecoder(resp.Body).Decode(&created); err != nil {
		return "", "", fmt.Errorf("gateway's answer to POST /v1/jobs: %w", err)
	}
	return created.Namespace, created.Name, nil
}

// read calls each with the PNG of every image, fetched from GET /v1/jobs/{ns}/{name}/images/{i}.png.
func (c *gatewayClient) read(ctx context.Context, job *sdfleetv1alpha1.ImageGenerationJob, images []sdfleetv1alpha1.ImageStatus,
	each func(sdfleetv1alpha1.ImageStatus, io.Reader) error) error {
	for _, img := range images {
		if err := c.readImage(ctx, job, img, each); err != nil {
			return err
		}
	}
	return nil
}

func (c *gatewayClient) readImage(ctx context.Context, job *sdfleetv1alpha1.ImageGenerationJob, img sdfleetv1alpha1.ImageStatus,
	each func(sdfleetv1alpha1.ImageStatus, io.Reader) error) error {
	path := fmt.Sprintf("/v1/jobs/%s/%s/images/%d.png", url.PathEscape(job.Namespace), url.PathEscape(job.Name), img.Index)
	resp, err := c.do(ctx, http.MethodGet, path, nil)
	// The gateway reads jobs through an informer, which may be a moment behind the watch
	// that saw the image finish: a "not written yet" is asked again for a few seconds.
	for delay := 100 * time.Millisecond; isNotFound(err) && delay < 5*time.Second; delay *= 2 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		resp, err = c.do(ctx, http.MethodGet, path, nil)
	}
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	return each(img, resp.Body)
}

// where says on which node and GPU an image ran.
func where(img sdfleetv1alpha1.ImageStatus) string {
	switch {
	case img.Node == "":
		return "not placed"
	case img.GPUUUID != "" && img.GPUIndex != nil:
		return fmt.Sprintf("%s GPU %d (%s)", img.Node, *img.GPUIndex, img.GPUUUID)
	case img.GPUUUID != "":
		return fmt.Sprintf("%s GPU %s", img.Node, img.GPUUUID)
	}
	device := img.Device
	if device == "" {
		device = "cpu"
	}
	return img.Node + " " + strings.ToUpper(device)
}

// printDownloads prints one line per image: file, where it ran, its seed.
func printDownloads(out io.Writer, downloads []Download) {
	for _, d := range downloads {
		fmt.Fprintf(out, "%s\t%s\tseed %d\n", d.Path, where(d.Image), d.Image.Seed)
	}
}
