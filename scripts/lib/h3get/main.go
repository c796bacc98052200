// Command h3get makes one GET over HTTP/3 (QUIC) and prints the protocol
// and status of the answer, for scripts/demo-shop.sh to show that the edge
// gateway speaks HTTP/3 (curl in Debian 12 does not).
//
//	h3get -ca CERT.pem [-token JWT] [-host NAME] [-timeout 5s] https://HOST:PORT/PATH
//
// prints "HTTP/3.0 404 (37 bytes)" and exits 0 when an answer came, whatever
// its status; it exits 1 with the error when none came.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/h3"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "h3get: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("h3get", flag.ContinueOnError)
	caFile := fs.String("ca", "", "PEM file of the CA (or self-signed certificate) to trust (required)")
	token := fs.String("token", "", "bearer token to send")
	host := fs.String("host", "", "the request's authority (Host), when not the URL's")
	timeout := fs.Duration("timeout", 5*time.Second, "deadline of the request")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *caFile == "" {
		return errors.New("usage: h3get -ca CERT.pem [-token JWT] [-host NAME] [-timeout 5s] https://HOST:PORT/PATH")
	}
	pem, err := os.ReadFile(*caFile)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return fmt.Errorf("%s: no PEM certificate", *caFile)
	}
	// The proxy's own HTTP/3 client (proxy/h3 is the one quic-go importer).
	tr, err := h3.NewClient(h3.ClientOptions{TLS: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13}, ConnectTimeout: *timeout})
	if err != nil {
		return err
	}
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fs.Arg(0), nil)
	if err != nil {
		return err
	}
	if *host != "" {
		req.Host = *host
	}
	if *token != "" {
		req.Header.Set("Authorization", "Bearer "+*token)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("GET %s over HTTP/3: %w", fs.Arg(0), err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s over HTTP/3: reading the body: %w", fs.Arg(0), err)
	}
	_, err = fmt.Fprintf(out, "%s %d (%d bytes)\n", resp.Proto, resp.StatusCode, n)
	return err
}
