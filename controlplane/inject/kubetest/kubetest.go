// Package kubetest runs a real etcd and kube-apiserver on loopback for
// tests: the binaries scripts/install-kube-testenv.sh builds from the Go
// module proxy. There is no scheduler, controller manager or kubelet, so
// pods stay Pending: enough for admission (webhooks) and validation
// (server-side dry runs).
package kubetest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/internal/consulagent"
)

// repoRoot finds the repository from the working directory (a test runs in
// its package directory), falling back to this source file's location.
func repoRoot() (string, error) {
	root, err := consulagent.RepoRoot(".")
	if err == nil {
		return root, nil
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		if root, err2 := consulagent.RepoRoot(filepath.Dir(file)); err2 == nil {
			return root, nil
		}
	}
	return "", err
}

// assets returns the directory holding etcd and kube-apiserver:
// $KUBEBUILDER_ASSETS when it has both, else what
// scripts/install-kube-testenv.sh builds (cached; the first build takes
// minutes). The test is skipped, saying why, only when they cannot be had.
func assets(t testing.TB) string {
	t.Helper()
	has := func(dir string) bool {
		for _, b := range []string{"etcd", "kube-apiserver"} {
			if st, err := os.Stat(filepath.Join(dir, b)); err != nil || st.IsDir() {
				return false
			}
		}
		return true
	}
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" && has(dir) {
		return dir
	}
	root, err := repoRoot()
	if err != nil {
		t.Skipf("SKIP: no real kube-apiserver: %v", err)
	}
	script := filepath.Join(root, "scripts", "install-kube-testenv.sh")
	cmd := exec.Command("bash", script)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("SKIP: no real kube-apiserver: %s failed (%v); its output:\n%s", script, err, tail(stderr.String(), 2000))
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	dir := lines[len(lines)-1]
	if !has(dir) {
		t.Skipf("SKIP: no real kube-apiserver: %s printed %q, which lacks etcd or kube-apiserver", script, dir)
	}
	return dir
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// freePort finds a free loopback port below the ephemeral range, where a
// port picked now cannot be taken by an outgoing connection meanwhile.
func freePort(t testing.TB, avoid map[int]bool) int {
	t.Helper()
	for i := 0; i < 200; i++ {
		p := 20000 + int(time.Now().UnixNano()%10000) + i*7
		if avoid[p] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		avoid[p] = true
		return p
	}
	t.Fatal("no free port in 20000-30000")
	return 0
}

// process runs a binary for the test's lifetime, its output in a file.
func process(t testing.TB, dir, assets, name string, args ...string) (logPath string) {
	t.Helper()
	logPath = filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(assets, name), args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		f.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s output (tail):\n%s", name, tail(string(b), 3000))
		}
	})
	return logPath
}

// APIServer is a running kube-apiserver (with its etcd) and a minimal
// client of it, authenticated as a member of system:masters.
type APIServer struct {
	t testing.TB
	// URL is the API server's https://127.0.0.1:PORT.
	URL string
	// Token is a bearer token in group system:masters.
	Token string
	// Client trusts the API server's self-signed serving certificate.
	Client *http.Client
}

// Do sends obj (if not nil) as JSON (a PATCH as a JSON merge patch) and
// returns the status and body.
func (k *APIServer) Do(method, path string, obj any) (int, []byte) {
	k.t.Helper()
	var body io.Reader
	if obj != nil {
		b, err := json.Marshal(obj)
		if err != nil {
			k.t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, k.URL+path, body)
	if err != nil {
		k.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+k.Token)
	if obj != nil {
		ct := "application/json"
		if method == http.MethodPatch {
			ct = "application/merge-patch+json"
		}
		req.Header.Set("Content-Type", ct)
	}
	resp, err := k.Client.Do(req)
	if err != nil {
		k.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		k.t.Fatal(err)
	}
	return resp.StatusCode, b
}

// Must is Do that fails the test on anything but 2xx and decodes the
// answer into out (when not nil).
func (k *APIServer) Must(method, path string, obj, out any) {
	k.t.Helper()
	code, b := k.Do(method, path, obj)
	if code/100 != 2 {
		k.t.Fatalf("%s %s: %d %s", method, path, code, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			k.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

// Start runs etcd and kube-apiserver on loopback for the test's lifetime
// and returns a client with a system:masters token. The binaries come from
// $KUBEBUILDER_ASSETS when it has both, else from
// scripts/install-kube-testenv.sh (cached; the first build takes minutes);
// the test is skipped, saying why, only when they cannot be had.
func Start(t testing.TB) *APIServer {
	t.Helper()
	assets := assets(t)
	dir := t.TempDir()
	ports := map[int]bool{}
	etcdClient, etcdPeer, secure := freePort(t, ports), freePort(t, ports), freePort(t, ports)
	process(t, dir, assets, "etcd",
		"--name=test", "--data-dir="+filepath.Join(dir, "etcd"), "--log-level=error",
		fmt.Sprintf("--listen-client-urls=http://127.0.0.1:%d", etcdClient),
		fmt.Sprintf("--advertise-client-urls=http://127.0.0.1:%d", etcdClient),
		fmt.Sprintf("--listen-peer-urls=http://127.0.0.1:%d", etcdPeer),
		fmt.Sprintf("--initial-advertise-peer-urls=http://127.0.0.1:%d", etcdPeer),
		fmt.Sprintf("--initial-cluster=test=http://127.0.0.1:%d", etcdPeer))

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	pder, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	saKey, saPub, tokens := filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub"), filepath.Join(dir, "tokens.csv")
	os.WriteFile(saKey, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	os.WriteFile(saPub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pder}), 0o600)
	token := fmt.Sprintf("t%x", time.Now().UnixNano())
	os.WriteFile(tokens, []byte(token+`,admin,admin-uid,"system:masters"`+"\n"), 0o600)
	certDir := filepath.Join(dir, "certs")
	process(t, dir, assets, "kube-apiserver",
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", etcdClient),
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none",
		fmt.Sprintf("--secure-port=%d", secure), "--cert-dir="+certDir,
		"--service-account-key-file="+saPub, "--service-account-signing-key-file="+saKey,
		"--service-account-issuer=https://kubernetes.default.svc", "--token-auth-file="+tokens,
		"--authorization-mode=RBAC", "--service-cluster-ip-range=10.0.0.0/24",
		"--enable-admission-plugins=MutatingAdmissionWebhook", "--disable-admission-plugins=ServiceAccount",
		"--allow-privileged=true")

	k := &APIServer{t: t, URL: fmt.Sprintf("https://127.0.0.1:%d", secure), Token: token}
	deadline := time.Now().Add(45 * time.Second)
	for {
		// The serving certificate is self-signed into certDir at start.
		if caPEM, err := os.ReadFile(filepath.Join(certDir, "apiserver.crt")); err == nil {
			pool := x509.NewCertPool()
			if pool.AppendCertsFromPEM(caPEM) {
				k.Client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
					TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}}
				req, _ := http.NewRequest(http.MethodGet, k.URL+"/readyz", nil)
				req.Header.Set("Authorization", "Bearer "+token)
				if resp, err := k.Client.Do(req); err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						return k
					}
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("kube-apiserver not ready (/readyz) within 45 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
