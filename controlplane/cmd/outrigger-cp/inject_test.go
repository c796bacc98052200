package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/outrigger-mesh/outrigger/controlplane/inject"
	"github.com/outrigger-mesh/outrigger/internal/consultest"
	"github.com/outrigger-mesh/outrigger/proxy/bootstrap"
	proxyserver "github.com/outrigger-mesh/outrigger/proxy/server"
)

func sidecarInitArgs(consulAddr, out string, extra ...string) []string {
	return append([]string{
		"-service", "web", "-service-id", "web-7f9-web", "-proxy-id", "web-7f9-web-sidecar-proxy",
		"-namespace", "shop", "-pod-ip", "10.1.2.3", "-service-port", "8080",
		"-upstreams", "orders:9191,payments:9292", "-xds-addr", "outrigger-cp.outrigger.svc:18000",
		"-consul-addr", consulAddr, "-out", out,
	}, extra...)
}

// TestSidecarInitWithConsul registers a pod in a real Consul agent and
// checks the registration and the bootstrap the proxy will load.
func TestSidecarInitWithConsul(t *testing.T) {
	agent := consultest.Start(t)
	out := filepath.Join(t.TempDir(), "bootstrap.yaml")
	var stdout, stderr bytes.Buffer
	if code := runSidecarInit(context.Background(), sidecarInitArgs(agent.Addr, out, "-outbound-port", "15001"), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "registered web-7f9-web and web-7f9-web-sidecar-proxy") {
		t.Errorf("stdout = %q", stdout.String())
	}
	b, err := bootstrap.Load(out, "")
	if err != nil {
		t.Fatalf("the proxy refuses the bootstrap: %v", err)
	}
	if b.Node.ID != "web-7f9-web-sidecar-proxy" || b.Node.Cluster != "web" || b.Admin != "0.0.0.0:19000" {
		t.Errorf("bootstrap node %+v admin %q", b.Node, b.Admin)
	}

	proxy, _, err := agent.Client.Agent().Service("web-7f9-web-sidecar-proxy", nil)
	if err != nil {
		t.Fatal(err)
	}
	if proxy.Kind != api.ServiceKindConnectProxy || proxy.Address != "10.1.2.3" || proxy.Port != inject.DefaultInboundPort ||
		proxy.Meta["outrigger_admin"] != "10.1.2.3:19000" || proxy.Meta["k8s-namespace"] != "shop" {
		t.Errorf("sidecar registration = %+v", proxy)
	}
	pc := proxy.Proxy
	if pc.DestinationServiceName != "web" || pc.DestinationServiceID != "web-7f9-web" || pc.LocalServicePort != 8080 ||
		pc.LocalServiceAddress != "127.0.0.1" || len(pc.Upstreams) != 2 || pc.Upstreams[1].DestinationName != "payments" ||
		pc.Upstreams[1].LocalBindPort != 9292 || pc.Mode != api.ProxyModeTransparent || pc.TransparentProxy.OutboundListenerPort != 15001 {
		t.Errorf("sidecar proxy config = %+v", pc)
	}
	svc, _, err := agent.Client.Agent().Service("web-7f9-web", nil)
	if err != nil || svc.Service != "web" || svc.Port != 8080 || svc.Address != "10.1.2.3" {
		t.Fatalf("service registration = %+v, %v", svc, err)
	}
	checks, err := agent.Client.Agent().Checks()
	if err != nil {
		t.Fatal(err)
	}
	if c := checks["web-7f9-web-sidecar-proxy:ready"]; c == nil || c.Type != "http" {
		t.Errorf("sidecar check = %+v", c)
	}
	// outrigger-cp bootstrap finds the same sidecar.
	if dest, err := (consulLookup{client: agent.Client, addr: agent.Addr}).ProxyDestination("web-7f9-web-sidecar-proxy"); err != nil || dest != "web" {
		t.Errorf("ProxyDestination = %q, %v", dest, err)
	}
	// The arguments the injector gives the init container, as the kubelet
	// expands them, are ones sidecar-init accepts.
	t.Run("injector's arguments", func(t *testing.T) {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "orders-5d8f", Labels: map[string]string{"app": "orders"},
				Annotations: map[string]string{inject.AnnotationInject: "true", inject.AnnotationUpstreams: "payments:9292",
					inject.AnnotationTransparent: "true"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Ports: []corev1.ContainerPort{{ContainerPort: 7070}}}}},
		}
		ops, err := inject.Patch(inject.Config{Image: "x", XDSAddr: "127.0.0.1:18000", ConsulAddr: agent.Addr, NativeSidecars: true}, pod, "shop", false)
		if err != nil {
			t.Fatal(err)
		}
		var init corev1.Container
		for _, op := range ops {
			if cs, ok := op.Value.([]corev1.Container); ok {
				init = cs[0]
			}
		}
		if init.Name != inject.ContainerInit {
			t.Fatalf("no init container in %+v", ops)
		}
		out := filepath.Join(t.TempDir(), "bootstrap.yaml")
		env := strings.NewReplacer("$(POD_NAME)", "orders-5d8f", "$(POD_NAMESPACE)", "shop", "$(POD_IP)", "10.1.2.4",
			"$(HOST_IP)", "127.0.0.1", inject.BootstrapFile, out)
		var args []string
		for _, a := range init.Args {
			args = append(args, env.Replace(a))
		}
		if init.Command[0] != "outrigger-cp" || args[0] != "sidecar-init" {
			t.Fatalf("init container runs %q %q", init.Command, args)
		}
		var stdout, stderr bytes.Buffer
		if code := runSidecarInit(context.Background(), args[1:], &stdout, &stderr); code != 0 {
			t.Fatalf("sidecar-init %q: exit %d: %s", args[1:], code, stderr.String())
		}
		p, _, err := agent.Client.Agent().Service("orders-5d8f-orders-sidecar-proxy", nil)
		if err != nil || p.Proxy.DestinationServiceName != "orders" || p.Proxy.LocalServicePort != 7070 ||
			len(p.Proxy.Upstreams) != 1 || p.Proxy.Upstreams[0].LocalBindPort != 9292 || p.Proxy.Mode != api.ProxyModeTransparent {
			t.Fatalf("registration = %+v, %v", p, err)
		}
		if b, err := bootstrap.Load(out, ""); err != nil || b.Node.ID != "orders-5d8f-orders-sidecar-proxy" {
			t.Fatalf("bootstrap: %+v, %v", b, err)
		}
	})

	// Running it again (a restarted init container) is harmless.
	if code := runSidecarInit(context.Background(), sidecarInitArgs(agent.Addr, out), &stdout, &stderr); code != 0 {
		t.Fatalf("second run: exit %d: %s", code, stderr.String())
	}
}

func TestSidecarInitConsulUnreachable(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := closed.Addr().String()
	closed.Close()
	out := filepath.Join(t.TempDir(), "bootstrap.yaml")
	var stdout, stderr bytes.Buffer
	if code := runSidecarInit(context.Background(), sidecarInitArgs(addr, out, "-timeout", "600ms"), &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(stderr.String(), "registering in Consul at "+addr+" (gave up after 600ms)") {
		t.Errorf("stderr = %q", stderr.String())
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a bootstrap was written without a registration: %v", err)
	}
}

func TestSidecarInitFlags(t *testing.T) {
	out := filepath.Join(t.TempDir(), "b.yaml")
	base := sidecarInitArgs("127.0.0.1:1", out)
	without := func(flag string) []string {
		var args []string
		for i := 0; i < len(base); i++ {
			if base[i] == flag {
				i++
				continue
			}
			args = append(args, base[i])
		}
		return args
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no service", without("-service"), "-service is required"},
		{"no proxy id", without("-proxy-id"), "-proxy-id is required"},
		{"no out", without("-out"), "-out is required"},
		{"bad pod ip", append(base, "-pod-ip", "pod"), `-pod-ip "pod" is not an IP address`},
		{"bad port", append(base, "-proxy-port", "0"), "-proxy-port 0 is not 1-65535"},
		{"bad service port", append(base, "-service-port", "70000"), "-service-port 70000 is not 0-65535"},
		{"bad upstream", append(base, "-upstreams", "orders"), `-upstreams: "orders" is not service:port`},
		{"bad timeout", append(base, "-timeout", "0s"), "-timeout 0s must be positive"},
		{"positional", append(base, "extra"), `unexpected argument "extra"`},
		{"bad xds address", append(base, "-xds-addr", "nope"), `-xds-addr "nope"`},
		{"admin not an IP", append(base, "-admin-addr", "localhost:19000"), "the admin listener needs an IP address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := runSidecarInit(context.Background(), tc.args, &stdout, &stderr); code != 1 {
				t.Fatalf("exit %d", code)
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr = %q, want %q", stderr.String(), tc.want)
			}
		})
	}
	var stdout, stderr bytes.Buffer
	if code := runSidecarInit(context.Background(), []string{"-help"}, &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "Usage:") {
		t.Errorf("-help: exit %d, %q", code, stderr.String())
	}
}

func TestWriteFileAtomicError(t *testing.T) {
	if err := writeFileAtomic(filepath.Join(t.TempDir(), "missing", "b.yaml"), []byte("x")); err == nil || !strings.Contains(err.Error(), "writing the bootstrap") {
		t.Fatalf("err = %v", err)
	}
}

func TestInjectOptions(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, ""},
		{[]string{"-inject-addr", ":8443", "-inject-cert", "c", "-inject-key", "k", "-inject-config", "f"}, ""},
		{[]string{"-inject-cert", "c"}, "need -inject-addr"},
		{[]string{"-inject-addr", ":8443", "-inject-config", "f"}, "needs -inject-cert and -inject-key"},
		{[]string{"-inject-addr", ":8443", "-inject-cert", "c", "-inject-key", "k"}, "needs -inject-config"},
		{[]string{"-inject-addr", ":8443", "-inject-cert", "c", "-inject-key", "k", "-inject-config", "f", "-inject-kube-version", "new"}, `-inject-kube-version: inject: Kubernetes version "new"`},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		o := &injectOptions{}
		injectFlags(fs, o)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		err := o.validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%q: err = %v, want %q", tc.args, err, tc.want)
		}
	}
}

// TestStartInjector serves the webhook as outrigger-cp does and sends it
// one AdmissionReview over TLS.
func TestStartInjector(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, cfgFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), filepath.Join(dir, "inject.yaml")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "injector"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	kder, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	os.WriteFile(cfgFile, []byte("image: outrigger:test\nxdsAddress: outrigger-cp:18000\n"), 0o600)

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	o := &injectOptions{addr: addr, cert: certFile, key: keyFile, config: cfgFile, kubeVersion: "v1.28.9"}
	logger := hclog.NewNullLogger()
	stop, err := startInjector(context.Background(), logger, o)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	pod := map[string]any{
		"metadata": map[string]any{"name": "web", "annotations": map[string]string{inject.AnnotationInject: "true"}},
		"spec":     map[string]any{"containers": []map[string]any{{"name": "app", "image": "web:1"}}},
	}
	raw, _ := json.Marshal(pod)
	body, _ := json.Marshal(map[string]any{
		"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
		"request": map[string]any{"uid": "u1", "kind": map[string]string{"version": "v1", "kind": "Pod"},
			"namespace": "shop", "operation": "CREATE", "object": json.RawMessage(raw)},
	})
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Post("https://"+addr+inject.Path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var review struct {
		Response struct {
			UID     string `json:"uid"`
			Allowed bool   `json:"allowed"`
			Patch   []byte `json:"patch"`
		} `json:"response"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&review); err != nil {
		t.Fatal(err)
	}
	if !review.Response.Allowed || review.Response.UID != "u1" || !strings.Contains(string(review.Response.Patch), `"path":"/spec/containers/0"`) {
		t.Errorf("response = %+v (patch %s); want the plain container of a 1.28 cluster", review.Response, review.Response.Patch)
	}

	// What stops it from starting.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	for _, tc := range []struct {
		name string
		o    injectOptions
		want string
	}{
		{"address in use", injectOptions{addr: busy.Addr().String(), cert: certFile, key: keyFile, config: cfgFile, kubeVersion: "v1.30.0"}, "address already in use"},
		{"missing config", injectOptions{addr: "127.0.0.1:0", cert: certFile, key: keyFile, config: filepath.Join(dir, "nope"), kubeVersion: "v1.30.0"}, "inject: configuration"},
		{"no version outside a cluster", injectOptions{addr: "127.0.0.1:0", cert: certFile, key: keyFile, config: cfgFile}, "or give -inject-kube-version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if stop, err := startInjector(context.Background(), logger, &tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
				if err == nil {
					stop()
				}
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// lockedBuffer collects a goroutine's log output for the test to read.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestInjectedPodBecomesReady plays an injected pod without Kubernetes: the
// init step (sidecar-init) registers the pod in a real Consul and writes the
// bootstrap; a real proxy started from that bootstrap gets its
// configuration from a real outrigger-cp and answers /ready with 200 (what
// the native sidecar's startup probe waits for); Consul's check of /ready
// then marks the sidecar passing.
func TestInjectedPodBecomesReady(t *testing.T) {
	agent := consultest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	cpLogs := &lockedBuffer{}
	cpDone := make(chan int, 1)
	go func() {
		cpDone <- run(ctx, []string{"-consul-addr", agent.Addr, "-xds-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0",
			"-log-format", "json"}, io.Discard, cpLogs)
	}()
	defer func() {
		cancel()
		<-cpDone
	}()
	xdsRE := regexp.MustCompile(`"xds":"(127\.0\.0\.1:\d+)"`)
	var xdsAddr string
	deadline := time.Now().Add(30 * time.Second)
	for xdsAddr == "" {
		if m := xdsRE.FindStringSubmatch(cpLogs.String()); m != nil {
			xdsAddr = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("outrigger-cp did not start:\n%s", cpLogs.String())
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}

	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("app")) }))
	defer app.Close()
	appPort := app.Listener.Addr().(*net.TCPAddr).Port
	adminPort, publicPort := freeLoopbackPort(t), freeLoopbackPort(t)
	out := filepath.Join(t.TempDir(), "bootstrap.yaml")
	var stdout, stderr bytes.Buffer
	args := []string{"-service", "web", "-service-id", "pod1-web", "-proxy-id", "pod1-web-sidecar-proxy",
		"-namespace", "shop", "-pod-ip", "127.0.0.1", "-service-port", strconv.Itoa(appPort),
		"-proxy-port", strconv.Itoa(publicPort), "-admin-addr", "127.0.0.1:" + strconv.Itoa(adminPort),
		"-xds-addr", xdsAddr, "-consul-addr", agent.Addr, "-out", out}
	if code := runSidecarInit(ctx, args, &stdout, &stderr); code != 0 {
		t.Fatalf("sidecar-init: exit %d: %s", code, stderr.String())
	}

	b, err := bootstrap.Load(out, "")
	if err != nil {
		t.Fatal(err)
	}
	proxyLogs := &lockedBuffer{}
	srv, err := proxyserver.New(proxyserver.Options{
		Logger:       hclog.New(&hclog.LoggerOptions{Output: proxyLogs, Level: hclog.Debug}),
		Bootstrap:    b,
		DrainTimeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	proxyCtx, stopProxy := context.WithCancel(ctx)
	proxyDone := make(chan error, 1)
	go func() { proxyDone <- srv.Run(proxyCtx) }()
	defer func() {
		stopProxy()
		<-proxyDone
	}()

	ready := "http://127.0.0.1:" + strconv.Itoa(adminPort) + "/ready"
	deadline = time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(ready)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the proxy's /ready did not answer 200 within 30 s (last: %v)\nproxy:\n%s\noutrigger-cp:\n%s", err, proxyLogs.String(), cpLogs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Consul's HTTP check of /ready passes: the sidecar becomes an endpoint.
	deadline = time.Now().Add(30 * time.Second)
	for {
		entries, _, err := agent.Client.Health().Connect("web", "", true, nil)
		if err == nil && len(entries) == 1 && entries[0].Service.ID == "pod1-web-sidecar-proxy" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sidecar is not passing in Consul within 30 s: %v %v", entries, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
