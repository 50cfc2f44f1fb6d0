package kubectlplugin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	sdfleetv1alpha1 "github.com/sdfleet/sdfleet/api/v1alpha1"
	"github.com/sdfleet/sdfleet/kubectlplugin/readerpod"
)

// imageSource hands out the PNGs of a job's images: the gateway when one is named, else
// reader pods on the job's output volume (package readerpod).
type imageSource interface {
	read(ctx context.Context, job *sdfleetv1alpha1.ImageGenerationJob, images []sdfleetv1alpha1.ImageStatus,
		each func(sdfleetv1alpha1.ImageStatus, io.Reader) error) error
}

// podSource reads images through reader pods created with the caller's credentials.
type podSource struct{ copier *readerpod.Copier }

func (p podSource) read(ctx context.Context, job *sdfleetv1alpha1.ImageGenerationJob, images []sdfleetv1alpha1.ImageStatus,
	each func(sdfleetv1alpha1.ImageStatus, io.Reader) error) error {
	return p.copier.Copy(ctx, job, images, each)
}

// imageSource is the gateway of --gateway or $SDFLEET_GATEWAY, else reader pods.
func (o *Options) imageSource(g gatewayFlags) (imageSource, error) {
	if g.named() {
		return o.gateway(g)
	}
	cfg, err := o.Config.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	kube, err := o.kube()
	if err != nil {
		return nil, err
	}
	return podSource{copier: &readerpod.Copier{Kube: kube, Config: cfg, StartTimeout: g.readerTimeout, Log: o.ErrOut}}, nil
}

// Download is one image written to disk.
type Download struct {
	Path  string
	Image sdfleetv1alpha1.ImageStatus
}

// downloadImages writes every succeeded image of job into dir as <job>-<index>.png, each
// checked against the SHA-256 of the job's status.
func downloadImages(ctx context.Context, src imageSource, job *sdfleetv1alpha1.ImageGenerationJob, dir string) ([]Download, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("--out %s: %w", dir, err)
	}
	var succeeded []sdfleetv1alpha1.ImageStatus
	for _, img := range job.Status.Images {
		if img.Phase == sdfleetv1alpha1.ImageSucceeded {
			succeeded = append(succeeded, img)
		}
	}
	var done []Download
	err := src.read(ctx, job, succeeded, func(img sdfleetv1alpha1.ImageStatus, r io.Reader) error {
		path := filepath.Join(dir, fmt.Sprintf("%s-%d.png", job.Name, img.Index))
		if err := saveImage(job, img, r, path); err != nil {
			return err
		}
		done = append(done, Download{Path: path, Image: img})
		return nil
	})
	return done, err
}

// saveImage writes r to file through a temporary file, renamed only when its SHA-256 is the
// one of the job's status.
func saveImage(job *sdfleetv1alpha1.ImageGenerationJob, img sdfleetv1alpha1.ImageStatus, r io.Reader, file string) error {
	tmp, err := os.CreateTemp(filepath.Dir(file), ".download-*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	sum := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, sum), r); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("image %d of %s/%s: %w", img.Index, job.Namespace, job.Name, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if got := hex.EncodeToString(sum.Sum(nil)); img.SHA256 != "" && got != img.SHA256 {
		return fmt.Errorf("image %d of %s/%s: SHA-256 %s, but the job's status says %s", img.Index, job.Namespace, job.Name, got, img.SHA256)
	}
	return os.Rename(tmp.Name(), file)
}
