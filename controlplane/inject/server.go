package inject

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// certReloader serves the key pair in certFile/keyFile and reloads it when
// either file changes, so a rotated certificate (cert-manager, or the
// chart's Secret updated in place) is used without a restart.
type certReloader struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	modTime [2]time.Time
}

// newCertReloader loads the pair once; a bad pair is an error at start.
func newCertReloader(certFile, keyFile string) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile}
	if _, err := r.get(); err != nil {
		return nil, err
	}
	return r, nil
}

// get returns the current certificate, reloading it if the files changed.
// A reload that fails keeps the previous certificate.
func (r *certReloader) get() (*tls.Certificate, error) {
	c, errC := os.Stat(r.certFile)
	k, errK := os.Stat(r.keyFile)
	r.mu.Lock()
	defer r.mu.Unlock()
	if errC == nil && errK == nil && r.cert != nil && c.ModTime().Equal(r.modTime[0]) && k.ModTime().Equal(r.modTime[1]) {
		return r.cert, nil
	}
	if err := errors.Join(errC, errK); err != nil {
		if r.cert != nil {
			return r.cert, nil
		}
		return nil, fmt.Errorf("inject: webhook certificate: %w", err)
	}
	pair, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		if r.cert != nil {
			return r.cert, nil
		}
		return nil, fmt.Errorf("inject: webhook certificate %s / key %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert = &pair
	r.modTime = [2]time.Time{c.ModTime(), k.ModTime()}
	return r.cert, nil
}

// Serve serves h over TLS on lis (the key pair from certFile and keyFile,
// reloaded when they change) at Path, PathNamespaceEnabled and /healthz until ctx ends; it closes
// lis. It returns nil after a stop caused by ctx.
func Serve(ctx context.Context, lis net.Listener, certFile, keyFile string, h http.Handler) error {
	certs, err := newCertReloader(certFile, keyFile)
	if err != nil {
		lis.Close()
		return err
	}
	mux := http.NewServeMux()
	mux.Handle(Path, h)
	mux.Handle(PathNamespaceEnabled, h)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		TLSConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				return certs.get()
			},
		},
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(lis, "", "") }()
	select {
	case err := <-done:
		return fmt.Errorf("inject: webhook server: %w", err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := srv.Shutdown(sctx)
		<-done
		return err
	}
}
