package inject

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

func review(t *testing.T, op admissionv1.Operation, kind string, object any) []byte {
	t.Helper()
	raw, err := json.Marshal(object)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       types.UID("uid-1"),
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: kind},
			Namespace: "shop",
			Operation: op,
			Object:    runtime.RawExtension{Raw: raw},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func post(t *testing.T, h http.Handler, target, contentType string, body []byte) (*httptest.ResponseRecorder, *admissionv1.AdmissionResponse) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, target, strings.NewReader(string(body)))
	req.Header.Set("Content-Type", contentType)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return rec, nil
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("response %q: %v", rec.Body, err)
	}
	if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" || out.Response == nil {
		t.Fatalf("response = %s", rec.Body)
	}
	if out.Response.UID != "uid-1" {
		t.Errorf("UID = %q, want the request's", out.Response.UID)
	}
	return rec, out.Response
}

func TestHandler(t *testing.T) {
	h, err := NewHandler(testConfig(true), nil)
	if err != nil {
		t.Fatal(err)
	}
	annotated := appPod(map[string]string{AnnotationInject: "true"})

	t.Run("injects a pod that opted in", func(t *testing.T) {
		_, resp := post(t, h, Path, "application/json", review(t, admissionv1.Create, "Pod", annotated))
		if resp == nil || !resp.Allowed || resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
			t.Fatalf("response = %+v", resp)
		}
		var ops []Operation
		if err := json.Unmarshal(resp.Patch, &ops); err != nil || len(ops) != 3 {
			t.Fatalf("patch %s: %v", resp.Patch, err)
		}
	})
	t.Run("namespace label via the query", func(t *testing.T) {
		_, resp := post(t, h, PathNamespaceEnabled, "application/json; charset=utf-8", review(t, admissionv1.Create, "Pod", appPod(nil)))
		if resp == nil || !resp.Allowed || resp.Patch == nil {
			t.Fatalf("response = %+v", resp)
		}
		_, resp = post(t, h, Path, "application/json", review(t, admissionv1.Create, "Pod", appPod(nil)))
		if resp == nil || !resp.Allowed || resp.Patch != nil {
			t.Fatalf("without the namespace label: response = %+v", resp)
		}
	})
	t.Run("update is allowed untouched", func(t *testing.T) {
		_, resp := post(t, h, Path, "application/json", review(t, admissionv1.Update, "Pod", annotated))
		if resp == nil || !resp.Allowed || resp.Patch != nil {
			t.Fatalf("response = %+v", resp)
		}
	})
	t.Run("other kinds are allowed untouched", func(t *testing.T) {
		_, resp := post(t, h, Path, "application/json", review(t, admissionv1.Create, "ConfigMap", map[string]string{"a": "b"}))
		if resp == nil || !resp.Allowed || resp.Patch != nil {
			t.Fatalf("response = %+v", resp)
		}
	})
	t.Run("bad annotation is denied with the reason", func(t *testing.T) {
		_, resp := post(t, h, Path, "application/json", review(t, admissionv1.Create, "Pod", appPod(map[string]string{AnnotationInject: "true", AnnotationUpstreams: "web:x"})))
		if resp == nil || resp.Allowed || resp.Patch != nil || resp.Result == nil {
			t.Fatalf("response = %+v", resp)
		}
		want := `outrigger sidecar injector: annotation outrigger.io/upstreams: "web:x": port "x" is not a number 1-65535`
		if resp.Result.Message != want || resp.Result.Code != http.StatusBadRequest {
			t.Errorf("result = %d %q, want 400 %q", resp.Result.Code, resp.Result.Message, want)
		}
	})
	t.Run("an object that is not a pod is denied", func(t *testing.T) {
		_, resp := post(t, h, Path, "application/json", review(t, admissionv1.Create, "Pod", map[string]any{"spec": "nope"}))
		if resp == nil || resp.Allowed || !strings.Contains(resp.Result.Message, "the object is not a Pod") {
			t.Fatalf("response = %+v", resp)
		}
	})

	for _, tc := range []struct {
		name        string
		method      string
		contentType string
		body        string
		want        int
		wantBody    string
	}{
		{"GET", http.MethodGet, "application/json", "", http.StatusMethodNotAllowed, "takes POST"},
		{"content type", http.MethodPost, "text/plain", "{}", http.StatusUnsupportedMediaType, `Content-Type "text/plain"`},
		{"not JSON", http.MethodPost, "application/json", "{", http.StatusBadRequest, "not an AdmissionReview"},
		{"no request", http.MethodPost, "application/json", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, http.StatusBadRequest, "has no request"},
		{"v1beta1", http.MethodPost, "application/json", `{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x"}}`, http.StatusBadRequest, "only admission.k8s.io/v1 is served"},
		{"too large", http.MethodPost, "application/json", `{"a":"` + strings.Repeat("x", maxReviewBytes) + `"}`, http.StatusRequestEntityTooLarge, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, Path, strings.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.contentType)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want || !strings.Contains(rec.Body.String(), tc.wantBody) {
				t.Fatalf("got %d %q, want %d containing %q", rec.Code, rec.Body, tc.want, tc.wantBody)
			}
		})
	}
}

func TestSupportsNativeSidecars(t *testing.T) {
	for _, tc := range []struct {
		v       string
		want    bool
		wantErr bool
	}{
		{"v1.29.0", true, false},
		{"v1.37.2", true, false},
		{"v1.28.5-eks-5e0fdde", false, false},
		{"v1.30.1+k3s1", true, false},
		{"1.31", true, false},
		{"v2.0.0", true, false},
		{"v1.9.11", false, false},
		{"v0.0.0-master+$Format:%H$", false, false},
		{"latest", false, true},
		{"v1.99999999999999999999.0", false, true},
	} {
		got, err := SupportsNativeSidecars(tc.v)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("SupportsNativeSidecars(%q) = %v, %v; want %v, error %v", tc.v, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestServerVersion(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("Authorization") {
		case "Bearer good":
			w.Write([]byte(`{"major":"1","minor":"29","gitVersion":"v1.29.4"}`))
		case "Bearer empty":
			w.Write([]byte(`{"major":"1"}`))
		default:
			http.Error(w, "no", http.StatusForbidden)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	if v, err := ServerVersion(ctx, srv.Client(), srv.URL, "good"); err != nil || v != "v1.29.4" {
		t.Errorf("ServerVersion = %q, %v", v, err)
	}
	if _, err := ServerVersion(ctx, srv.Client(), srv.URL, "empty"); err == nil || !strings.Contains(err.Error(), "no gitVersion") {
		t.Errorf("no gitVersion: err = %v", err)
	}
	if _, err := ServerVersion(ctx, srv.Client(), srv.URL, ""); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("forbidden: err = %v", err)
	}
	if _, err := ServerVersion(ctx, http.DefaultClient, srv.URL, "good"); err == nil {
		t.Error("an untrusted certificate was accepted")
	}
	if _, err := ServerVersion(ctx, srv.Client(), "://bad", ""); err == nil {
		t.Error("a bad URL was accepted")
	}
	t.Setenv(envServiceHost, "")
	if _, err := InClusterVersion(ctx); err == nil || !strings.Contains(err.Error(), "not running in a Kubernetes pod") {
		t.Errorf("InClusterVersion outside a pod: err = %v", err)
	}
}

// writeCert writes a fresh self-signed key pair for 127.0.0.1 and returns
// the certificate's PEM.
func writeCert(t *testing.T, certFile, keyFile, cn string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPEM
}

func TestServeReloadsCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeCert(t, certFile, keyFile, "first")
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	h, err := NewHandler(testConfig(true), nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- Serve(ctx, lis, certFile, keyFile, h) }()
	peerCN := func() string {
		conn, err := tls.Dial("tcp", lis.Addr().String(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if cn := peerCN(); cn != "first" {
		t.Fatalf("CN = %q", cn)
	}
	// A rotation: new files with a later modification time.
	writeCert(t, certFile, keyFile, "second")
	later := time.Now().Add(time.Minute)
	for _, f := range []string{certFile, keyFile} {
		if err := os.Chtimes(f, later, later); err != nil {
			t.Fatal(err)
		}
	}
	if cn := peerCN(); cn != "second" {
		t.Fatalf("after rotation CN = %q", cn)
	}
	// A broken rotation keeps the last good pair.
	if err := os.WriteFile(keyFile, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if cn := peerCN(); cn != "second" {
		t.Fatalf("after a bad rotation CN = %q", cn)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Get("https://" + lis.Addr().String() + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve after cancel = %v", err)
	}
}

func TestServeBadCertificate(t *testing.T) {
	dir := t.TempDir()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	err = Serve(context.Background(), lis, filepath.Join(dir, "missing.crt"), filepath.Join(dir, "missing.key"), http.NotFoundHandler())
	if err == nil || !strings.Contains(err.Error(), "webhook certificate") {
		t.Fatalf("err = %v", err)
	}
	if _, err := lis.Accept(); err == nil {
		t.Error("the listener was left open")
	}
	certFile, keyFile := filepath.Join(dir, "c"), filepath.Join(dir, "k")
	writeCert(t, certFile, keyFile, "x")
	os.WriteFile(keyFile, []byte("garbage"), 0o600)
	lis2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := Serve(context.Background(), lis2, certFile, keyFile, http.NotFoundHandler()); err == nil || !strings.Contains(err.Error(), "webhook certificate") {
		t.Fatalf("bad key: err = %v", err)
	}
}
