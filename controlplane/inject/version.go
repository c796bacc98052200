package inject

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"time"
)

// In-cluster service-account files and environment (what client-go's
// rest.InClusterConfig reads).
const (
	serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"
	envServiceHost    = "KUBERNETES_SERVICE_HOST"
	envServicePort    = "KUBERNETES_SERVICE_PORT"
)

// versionRE reads major and minor from a gitVersion ("v1.29.3",
// "v1.28.5-eks-5e0fdde", "v1.30.1+k3s1").
var versionRE = regexp.MustCompile(`^v?(\d+)\.(\d+)`)

// SupportsNativeSidecars reports whether a Kubernetes version runs init
// containers with restartPolicy Always as sidecars (1.29 and later; 1.28
// has them behind a feature gate that is off by default).
func SupportsNativeSidecars(gitVersion string) (bool, error) {
	m := versionRE.FindStringSubmatch(gitVersion)
	if m == nil {
		return false, fmt.Errorf("inject: Kubernetes version %q is not vMAJOR.MINOR[.PATCH]", gitVersion)
	}
	major, err1 := strconv.Atoi(m[1])
	minor, err2 := strconv.Atoi(m[2])
	if err1 != nil || err2 != nil {
		return false, fmt.Errorf("inject: Kubernetes version %q: numbers out of range", gitVersion)
	}
	return major > 1 || (major == 1 && minor >= 29), nil
}

// ServerVersion asks the API server at baseURL ("https://host:port") for its
// /version and returns its gitVersion. client carries the TLS trust (and
// token, if any); /version is readable by anyone by default.
func ServerVersion(ctx context.Context, client *http.Client, baseURL, token string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/version", nil)
	if err != nil {
		return "", fmt.Errorf("inject: Kubernetes version from %q: %w", baseURL, err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("inject: Kubernetes version: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", fmt.Errorf("inject: Kubernetes version from %s/version: %w", baseURL, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("inject: Kubernetes version from %s/version: %s", baseURL, resp.Status)
	}
	var v struct {
		GitVersion string `json:"gitVersion"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.GitVersion == "" {
		return "", fmt.Errorf("inject: Kubernetes version from %s/version: no gitVersion in %.200q", baseURL, body)
	}
	return v.GitVersion, nil
}

// InClusterVersion is ServerVersion for the cluster the process runs in,
// through the pod's service account (as client-go's InClusterConfig).
func InClusterVersion(ctx context.Context) (string, error) {
	host, port := os.Getenv(envServiceHost), os.Getenv(envServicePort)
	if host == "" || port == "" {
		return "", fmt.Errorf("inject: not running in a Kubernetes pod (%s and %s are unset): give the cluster's version explicitly", envServiceHost, envServicePort)
	}
	caPEM, err := os.ReadFile(serviceAccountDir + "/ca.crt")
	if err != nil {
		return "", fmt.Errorf("inject: the service account's CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return "", fmt.Errorf("inject: %s/ca.crt holds no PEM certificate", serviceAccountDir)
	}
	token, err := os.ReadFile(serviceAccountDir + "/token")
	if err != nil {
		return "", fmt.Errorf("inject: the service account's token: %w", err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	return ServerVersion(ctx, client, "https://"+net.JoinHostPort(host, port), string(trimSpace(token)))
}

// trimSpace drops trailing newlines of a file's content.
func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
